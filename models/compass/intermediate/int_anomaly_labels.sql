{#- One row per statistical method: its anomaly tiers side by side, one column per statistic
    they apply to. -#}
with

anomalies as (
    select
        statistical_method_id,
        entity_result_id,
        applies_to,
        anomaly_classification
    from {{ ref('stg_anomalies') }}
)

select
    statistical_method_id,
    entity_result_id,
    {%- for applies_to, column in anomaly_labels() %}
        max(case when applies_to = '{{ applies_to }}' then anomaly_classification end) as {{ column }},
    {%- endfor %}
    current_timestamp as dbt_updated_at
from anomalies
group by statistical_method_id, entity_result_id
