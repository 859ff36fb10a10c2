{%- set fields = [
    ('canonical_node_id', 'node_id', 'text'),
    ('entity_key', 'entity_key', 'json'),
    ('metric_id', 'metric_id', 'text'),
    ('classification_version', 'classification_version', 'text'),
    ('signal_type', 'signal_type', 'text'),
    ('severity', 'severity', 'integer'),
    ('severity_range', 'severity_range', 'json'),
    ('inputs', 'inputs', 'json'),
    ('derived_indicators', 'derived_indicators', 'json'),
    ('classification_reasoning', 'classification_reasoning', 'text'),
    ('severity_calculation', 'severity_calculation', 'json'),
    ('suppressed_flag', 'suppressed', 'boolean'),
    ('period_count', 'period_count', 'integer'),
    ('magnitude_tier', 'magnitude_tier', 'text'),
    ('trajectory_tier', 'trajectory_tier', 'text'),
    ('consistency_tier', 'consistency_tier', 'text'),
    ('coefficient_of_variation', 'coefficient_of_variation', 'number'),
    ('system_name', 'entity_key.systemName', 'text'),
    ('facility_id', 'entity_key.medicareId', 'text'),
    ('service_line', 'entity_key.vizientServiceLine', 'text'),
] -%}
{#- One row per node x entity x metric classification of the selected run; suppressed
    classifications (no score) are left out. -#}
with

source as (
    {{ compass_run_rows('raw_classifications') }}
),

extracted as materialized (
    -- one parse of each document for every path
    select
        id as raw_classification_id,
        run_id,
        file_path,
        loaded_at,
        {{ json_extract_fields(json_doc('json_data'), fields) }} as extracted
    from source
),

unpacked as (
    select raw_classification_id, run_id, file_path, loaded_at, {{ json_unpack('extracted', fields) }}
    from extracted
),

parsed as materialized (
    select * from unpacked
    where not coalesce(suppressed_flag, false)
),

key_rows as (
    select
        parsed.raw_classification_id,
        entity_key.key as field_id,
        entity_key.value_text as field_value
    from parsed
    {{ json_object_rows('parsed.entity_key', '', 'entity_key') }}
),

entity_keys as (
    -- The same canonical text as stg_entity_results.entity_dimensions_text, so the hashes join.
    select
        raw_classification_id,
        {{ canonical_entity_text('field_id', 'field_value') }} as entity_key_text,
        {{ canonical_entity_dimensions_text('field_id', 'field_value') }}
            as entity_dimensions_text
    from key_rows
    group by raw_classification_id
),

classifications as (
    select
        parsed.run_id,
        parsed.canonical_node_id,
        parsed.entity_key,
        coalesce(entity_keys.entity_key_text, '{}') as entity_key_text,
        parsed.metric_id,
        parsed.classification_version,
        parsed.signal_type,
        parsed.severity,
        parsed.severity_range,
        parsed.inputs,
        parsed.derived_indicators,
        parsed.classification_reasoning,
        parsed.severity_calculation,
        coalesce(parsed.suppressed_flag, false) as suppressed,
        parsed.period_count,
        parsed.magnitude_tier,
        parsed.trajectory_tier,
        parsed.consistency_tier,
        {{ round_decimal('parsed.coefficient_of_variation', 4) }} as coefficient_of_variation,
        parsed.system_name,
        parsed.facility_id,
        parsed.service_line,
        {{ entity_dimensions_hash("coalesce(entity_keys.entity_dimensions_text, '{}')") }} as entity_key_hash,
        parsed.file_path,
        parsed.loaded_at
    from parsed
    left join entity_keys
        on parsed.raw_classification_id = entity_keys.raw_classification_id
)

select
    {{ surrogate_key(['run_id', 'canonical_node_id', 'entity_key_text', 'metric_id']) }} as classification_id,
    *,
    current_timestamp as dbt_updated_at
from classifications
where not suppressed
