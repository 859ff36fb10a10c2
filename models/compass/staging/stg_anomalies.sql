{#- One row per anomaly method per statistical method per entity result. -#}
{%- set fields = [
    ('anomaly_classification', 'anomaly', 'text'),
    ('anomaly_method', 'anomaly_method', 'text'),
    ('applies_to', 'applies_to', 'text'),
    ('statistic_value', 'statistic_value', 'number'),
    ('interpretation_rendered', 'interpretation.rendered', 'text'),
    ('interpretation_template_id', 'interpretation.template_id', 'text'),
] -%}
with

methods as (
    select
        statistical_method_id,
        entity_result_id,
        canonical_node_id,
        run_id,
        facility_id,
        service_line,
        anomalies_json
    from {{ ref('stg_statistical_methods') }}
),

profiles as (
    {{ json_unnest_records('methods', ['statistical_method_id', 'entity_result_id', 'canonical_node_id', 'run_id', 'facility_id', 'service_line'],
        'anomalies_json', '', [('anomaly_profile', 'anomaly_profile', 'text'), ('anomaly_methods', 'methods', 'json')]) }}
),

anomalies as (
    {{ json_unnest_records('profiles', ['statistical_method_id', 'entity_result_id', 'canonical_node_id', 'run_id', 'facility_id', 'service_line', 'anomaly_profile'],
        'anomaly_methods', '', fields) }}
)

select
    {{ surrogate_key(['statistical_method_id', 'anomaly_profile', 'anomaly_method', 'applies_to']) }} as anomaly_id,
    *,
    current_timestamp as dbt_updated_at
from anomalies
where anomaly_classification is not null
