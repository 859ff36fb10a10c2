{#- The 9 anomaly tiers to the 4 action tiers; normal, no_score and anything else give NULL
    (no action). `high`/`low` are legacy labels of older runs. -#}
{% macro map_anomaly_to_severity(anomaly_classification) -%}
case
    when {{ anomaly_classification }} in ('extremely_high', 'extremely_low') then 'Critical'
    when {{ anomaly_classification }} in ('very_high', 'very_low') then 'High'
    when {{ anomaly_classification }} in ('moderately_high', 'moderately_low', 'high', 'low') then 'Moderate'
    when {{ anomaly_classification }} in ('slightly_high', 'slightly_low') then 'Watch'
end
{%- endmacro %}
