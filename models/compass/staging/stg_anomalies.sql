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
    select statistical_method_id, entity_result_id, canonical_node_id, run_id, facility_id, service_line, anomalies_json
    from {{ ref('stg_statistical_methods') }}
),

profiles as (
    select
        methods.statistical_method_id,
        methods.entity_result_id,
        methods.canonical_node_id,
        methods.run_id,
        methods.facility_id,
        methods.service_line,
        {{ json_text('profile.value', 'anomaly_profile') }} as anomaly_profile,
        {{ json_get('profile.value', 'methods') }} as anomaly_methods
    from methods
    {{ json_array_rows('methods.anomalies_json', '', 'profile') }}
),

anomaly_documents as (
    select
        profiles.statistical_method_id,
        profiles.entity_result_id,
        profiles.canonical_node_id,
        profiles.run_id,
        profiles.facility_id,
        profiles.service_line,
        profiles.anomaly_profile,
        {{ json_extract_fields('anomaly.value', fields) }} as extracted
    from profiles
    {{ json_array_rows('profiles.anomaly_methods', '', 'anomaly') }}
),

anomalies as (
    select
        statistical_method_id,
        entity_result_id,
        canonical_node_id,
        run_id,
        facility_id,
        service_line,
        anomaly_profile,
        {{ json_unpack('extracted', fields) }}
    from anomaly_documents
)

select
    {{ surrogate_key(['statistical_method_id', 'anomaly_profile', 'anomaly_method', 'applies_to']) }} as anomaly_id,
    *,
    current_timestamp as dbt_updated_at
from anomalies
where anomaly_classification is not null
