{#- Quality domain of a metric id when the metric catalogue has none: case-insensitive
    substring rules, first match wins. Never returns Utilization (only the catalogue does). -#}
{% macro classify_metric_domain(metric_id) -%}
case
    when lower({{ metric_id }}) like '%los%' or lower({{ metric_id }}) like '%length%stay%' then 'Efficiency'
    when lower({{ metric_id }}) like '%readmission%' or lower({{ metric_id }}) like '%readmit%' then 'Effectiveness'
    when lower({{ metric_id }}) like '%mortality%' or lower({{ metric_id }}) like '%death%'
        or lower({{ metric_id }}) like '%infection%' or lower({{ metric_id }}) like '%sepsis%'
        or lower({{ metric_id }}) like '%fall%' then 'Safety'
    when lower({{ metric_id }}) like '%cost%' or lower({{ metric_id }}) like '%charge%' then 'Efficiency'
    when lower({{ metric_id }}) like '%wait%' or lower({{ metric_id }}) like '%throughput%' then 'Efficiency'
    else 'Other'
end
{%- endmacro %}
