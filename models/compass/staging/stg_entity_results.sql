{#- One row per entity x metric x node of the selected run. The big JSON document is parsed
    here once; later models read the small sub-documents kept as columns. -#}
with

source as (
    {{ compass_run_rows('raw_entity_results') }}
),

{%- set fields = [
    ('entity_fields', 'entity', 'json'),
    ('metric_id', 'metric.0.metadata.metric_id', 'text'),
    ('metric_values', 'metric.0.values', 'json'),
    ('metric_timeline', 'metric.0.values.timeline', 'json'),
    ('metadata', 'metadata', 'json'),
    ('metadata_system_name', 'metadata.systemName', 'text'),
    ('encounters', 'metadata.encounters', 'integer'),
    ('metadata_per_period', 'metadata.per_period', 'json'),
    ('statistical_methods_json', 'statistical_methods', 'json'),
] %}

parsed as materialized (
    -- one parse of each document for every path
    select
        id as raw_entity_result_id,
        run_id,
        canonical_node_id,
        file_path,
        loaded_at,
        {{ json_extract_fields(json_doc('json_data'), fields) }} as extracted
    from source
),

parts as materialized (
    select
        raw_entity_result_id,
        run_id,
        canonical_node_id,
        file_path,
        loaded_at,
        {{ json_unpack('extracted', fields) }}
    from parsed
),

entity_field_rows as (
    {{ json_unnest_records('parts', ['raw_entity_result_id'], 'entity_fields', '',
        [('field_id', 'id', 'text'), ('field_value', 'value', 'text')]) }}
),

entity_keys as (
    -- Canonical JSON text (keys in byte order, no spaces): the same bytes, hence the same md5,
    -- on both adapters and for stg_classifications' entity_key.
    select
        raw_entity_result_id,
        max(case when field_id = 'medicareId' then field_value end) as facility_id,
        max(case when field_id = 'systemName' then field_value end) as entity_system_name,
        max(case when field_id = 'vizientServiceLine' then field_value end) as service_line,
        max(case when field_id = 'vizientSubServiceLine' then field_value end) as sub_service_line,
        {{ canonical_entity_text('field_id', 'field_value') }} as entity_key_text,
        {{ canonical_entity_dimensions_text('field_id', 'field_value') }}
            as entity_dimensions_text
    from entity_field_rows
    group by raw_entity_result_id
),

timeline_points as (
    {{ json_unnest_records('parts', ['raw_entity_result_id'], 'metric_timeline', '',
        [('period', 'period', 'text'), ('point_value', 'value', 'number')]) }}
),

latest_points as (
    select
        raw_entity_result_id,
        point_value,
        row_number() over (partition by raw_entity_result_id order by period desc) as recency
    from timeline_points
    where point_value is not null
),

final as (
    select
        {{ surrogate_key(['parts.canonical_node_id', 'entity_keys.entity_key_text', 'parts.metric_id', 'parts.run_id']) }} as entity_result_id,
        parts.raw_entity_result_id,
        parts.canonical_node_id,
        parts.run_id,
        {{ extract_feature_type('parts.canonical_node_id') }} as feature_type,
        parts.entity_fields,
        coalesce(parts.metadata_system_name, entity_keys.entity_system_name) as system_name,
        entity_keys.facility_id,
        entity_keys.service_line,
        entity_keys.sub_service_line,
        entity_keys.entity_key_text,
        {{ json_parse('entity_keys.entity_dimensions_text') }} as entity_dimensions,
        {{ entity_dimensions_hash('entity_keys.entity_dimensions_text') }} as entity_dimensions_hash,
        parts.encounters,
        parts.metadata_per_period,
        parts.metric_id,
        case
            when parts.metric_timeline is null
                then {{ json_number('parts.metric_values', '') }}
            else latest_points.point_value
        end as metric_value,
        parts.metric_timeline,
        parts.statistical_methods_json,
        parts.metadata,
        parts.file_path,
        parts.loaded_at,
        current_timestamp as dbt_updated_at
    from parts
    left join entity_keys
        on parts.raw_entity_result_id = entity_keys.raw_entity_result_id
    left join latest_points
        on
            parts.raw_entity_result_id = latest_points.raw_entity_result_id
            and latest_points.recency = 1
)

select * from final
