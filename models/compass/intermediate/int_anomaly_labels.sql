{#- One row per statistical method: its anomaly tiers side by side, one column per statistic
    they apply to. -#}
{%- set labels = [
    ('simple_zscore', 'simple_zscore_anomaly'),
    ('robust_zscore', 'robust_zscore_anomaly'),
    ('latest_simple_zscore', 'latest_simple_zscore_anomaly'),
    ('mean_simple_zscore', 'mean_simple_zscore_anomaly'),
    ('latest_robust_zscore', 'latest_robust_zscore_anomaly'),
    ('mean_robust_zscore', 'mean_robust_zscore_anomaly'),
    ('slope_percentile', 'slope_anomaly'),
] -%}
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
    {%- for applies_to, column in labels %}
        max(case when applies_to = '{{ applies_to }}' then anomaly_classification end) as {{ column }},
    {%- endfor %}
    current_timestamp as dbt_updated_at
from anomalies
group by statistical_method_id, entity_result_id
