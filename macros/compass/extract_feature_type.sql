{#- Parts of an insight-graph node's canonical id `<metric>__<group-by fields>__<time grain>`
    (empty text when the id has fewer parts). -#}
{% macro node_groupby_fields(canonical_node_id) %}split_part({{ canonical_node_id }}, '__', 2){% endmacro %}
{% macro node_time_grain(canonical_node_id) %}split_part({{ canonical_node_id }}, '__', 3){% endmacro %}

{#- The feature type of a node, from its time grain: 'aggregate' for the whole-period node
    (grain aggregate_time_period), 'temporal' for a time-grained one (dischargeMonth, ...),
    'unknown' when the id does not follow the pattern. stg_nodes, stg_entity_results and
    fct_signals use it. -#}
{% macro extract_feature_type(canonical_node_id) -%}
case
    when {{ canonical_node_id }} is null or {{ node_time_grain(canonical_node_id) }} = '' then 'unknown'
    when {{ node_time_grain(canonical_node_id) }} = 'aggregate_time_period' then 'aggregate'
    else 'temporal'
end
{%- endmacro %}
