{#- Parts of a statistical method's full name `statistical_method__<name>__<method set>`,
    e.g. statistical_method__trending_simple_zscore__trending_time_period. -#}

{#- Short name: the z-score and slope families by substring (so trending_simple_zscore is a
    simple_zscore, its trending variant), else the middle part of the name. -#}
{% macro statistical_method_short_name(method) -%}
case
    when {{ method }} like '%simple_zscore%' then 'simple_zscore'
    when {{ method }} like '%robust_zscore%' then 'robust_zscore'
    when {{ method }} like '%slope_percentile%' then 'slope_percentile'
    else split_part({{ method }}, '__', 2)
end
{%- endmacro %}

{#- Method set: aggregate_time_period or trending_time_period. -#}
{% macro statistical_method_set(method) -%}
split_part({{ method }}, '__', 3)
{%- endmacro %}
