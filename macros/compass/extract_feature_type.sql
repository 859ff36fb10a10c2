{#- The feature type of an insight-graph node, from its canonical id
    `<metric>__<group-by fields>__<time grain>`: 'aggregate' for the whole-period node
    (grain aggregate_time_period), 'temporal' for a time-grained one (dischargeMonth, ...),
    'unknown' when the id does not follow the pattern. The README of the original listed this
    macro but never defined it; here stg_nodes, stg_entity_results and fct_signals use it. -#}
{% macro extract_feature_type(canonical_node_id) -%}
case
    when {{ canonical_node_id }} is null or split_part({{ canonical_node_id }}, '__', 3) = '' then 'unknown'
    when split_part({{ canonical_node_id }}, '__', 3) = 'aggregate_time_period' then 'aggregate'
    else 'temporal'
end
{%- endmacro %}
