{#- One row per node x entity x metric classification of the selected run; suppressed
    classifications (no score) are left out. -#}
with

source as (
    {{ compass_run_rows('raw_classifications') }}
),

parsed as (
    select id as raw_classification_id, run_id, file_path, loaded_at, {{ json_parse('json_data') }} as doc
    from source
),

key_rows as (
    select
        parsed.raw_classification_id,
        entity_key.key as field_id,
        entity_key.value_text as field_value
    from parsed
    {{ json_object_rows('parsed.doc', 'entity_key', 'entity_key') }}
),

entity_keys as (
    -- The same canonical text as stg_entity_results.entity_dimensions_text, so the hashes join.
    select
        raw_classification_id,
        '{' || coalesce(string_agg(
            {{ json_quote('field_id') }} || ':' || {{ json_quote('field_value') }},
            ',' order by {{ binary_sort('field_id') }}), '') || '}' as entity_key_text,
        '{' || coalesce(string_agg(
            case when field_id not in ('medicareId', 'systemName')
                then {{ json_quote('field_id') }} || ':' || {{ json_quote('field_value') }} end,
            ',' order by {{ binary_sort('field_id') }}), '') || '}' as entity_dimensions_text
    from key_rows
    group by raw_classification_id
),

classifications as (
    select
        parsed.run_id,
        {{ json_text('parsed.doc', 'node_id') }} as canonical_node_id,
        {{ json_get('parsed.doc', 'entity_key') }} as entity_key,
        coalesce(entity_keys.entity_key_text, '{}') as entity_key_text,
        {{ json_text('parsed.doc', 'metric_id') }} as metric_id,
        {{ json_text('parsed.doc', 'classification_version') }} as classification_version,
        {{ json_text('parsed.doc', 'signal_type') }} as signal_type,
        {{ json_integer('parsed.doc', 'severity') }} as severity,
        {{ json_get('parsed.doc', 'severity_range') }} as severity_range,
        {{ json_get('parsed.doc', 'inputs') }} as inputs,
        {{ json_get('parsed.doc', 'derived_indicators') }} as derived_indicators,
        {{ json_text('parsed.doc', 'classification_reasoning') }} as classification_reasoning,
        {{ json_get('parsed.doc', 'severity_calculation') }} as severity_calculation,
        coalesce({{ json_boolean('parsed.doc', 'suppressed') }}, false) as suppressed,
        {{ json_integer('parsed.doc', 'period_count') }} as period_count,
        {{ json_text('parsed.doc', 'magnitude_tier') }} as magnitude_tier,
        {{ json_text('parsed.doc', 'trajectory_tier') }} as trajectory_tier,
        {{ json_text('parsed.doc', 'consistency_tier') }} as consistency_tier,
        {{ round_decimal(json_number('parsed.doc', 'coefficient_of_variation'), 4) }} as coefficient_of_variation,
        {{ json_text('parsed.doc', 'entity_key.systemName') }} as system_name,
        {{ json_text('parsed.doc', 'entity_key.medicareId') }} as facility_id,
        {{ json_text('parsed.doc', 'entity_key.vizientServiceLine') }} as service_line,
        md5(coalesce(entity_keys.entity_dimensions_text, '{}')) as entity_key_hash,
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
