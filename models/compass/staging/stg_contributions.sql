{{ config(materialized='view') }}
{%- set fields = [
    ('record_timestamp', 'timestamp', 'text'),
    ('parent_node_id', 'parent_node_id', 'text'),
    ('parent_node_file', 'parent_node_file', 'text'),
    ('child_node_id', 'child_node_id', 'text'),
    ('child_node_file', 'child_node_file', 'text'),
    ('parent_entity', 'parent_entity', 'json'),
    ('child_entity', 'child_entity', 'json'),
    ('parent_facility_id', 'parent_entity.medicareId', 'text'),
    ('parent_service_line', 'parent_entity.vizientServiceLine', 'text'),
    ('child_facility_id', 'child_entity.medicareId', 'text'),
    ('child_service_line', 'child_entity.vizientServiceLine', 'text'),
    ('child_sub_service_line', 'child_entity.vizientSubServiceLine', 'text'),
    ('child_admission_status', 'child_entity.admissionStatus', 'text'),
    ('child_discharge_status', 'child_entity.dischargeStatus', 'text'),
    ('child_payer_segment', 'child_entity.payerSegment', 'text'),
    ('child_admission_source', 'child_entity.admissionSource', 'text'),
    ('metric_id', 'metric_id', 'text'),
    ('contribution_method', 'method', 'text'),
    ('child_value', 'child_value', 'number'),
    ('parent_value', 'parent_value', 'number'),
    ('weight_field', 'weight_field', 'text'),
    ('weight_value', 'weight_value', 'number'),
    ('weight_share', 'weight_share', 'number'),
    ('weighted_child_value', 'weighted_child_value', 'number'),
    ('contribution_value', 'contribution_value', 'number'),
    ('raw_component', 'raw_component', 'number'),
    ('excess_over_parent', 'excess_over_parent', 'number'),
    ('parent_statistics', 'parent_statistics', 'json'),
    ('assumptions', 'assumptions', 'json'),
    ('fallbacks', 'fallbacks', 'json'),
    ('missing_inputs', 'missing_inputs', 'json'),
    ('dataset_row_locator', 'dataset_row_locator', 'json'),
] -%}
{#- One row per parent-child entity pair per metric of the selected run. -#}
with

source as (
    {{ compass_run_rows('raw_contributions') }}
),

parsed as materialized (
    -- one parse of each document for every path
    select run_id, file_path, loaded_at, {{ json_extract_fields(json_doc('json_data'), fields) }} as extracted
    from source
),

contributions as (
    select
        run_id,
        {{ json_unpack('extracted', fields) }},
        file_path,
        loaded_at
    from parsed
)

select
    {{ surrogate_key(['run_id', 'parent_node_id', 'child_node_id', 'parent_facility_id', 'parent_service_line',
        'child_facility_id', 'child_service_line', 'child_sub_service_line', 'child_discharge_status',
        'child_admission_source', 'child_payer_segment', 'child_admission_status', 'metric_id']) }} as contribution_id,
    run_id,
    record_timestamp,
    parent_node_id,
    parent_node_file,
    child_node_id,
    child_node_file,
    parent_entity,
    child_entity,
    parent_facility_id,
    parent_service_line,
    child_facility_id,
    child_service_line,
    child_sub_service_line,
    child_admission_status,
    child_discharge_status,
    child_payer_segment,
    child_admission_source,
    metric_id,
    contribution_method,
    child_value,
    parent_value,
    weight_field,
    weight_value,
    weight_share,
    weighted_child_value,
    contribution_value,
    raw_component,
    excess_over_parent,
    abs(coalesce(excess_over_parent, 0)) * coalesce(weight_share, 0) as contribution_weight,
    case
        when excess_over_parent > 0 then 'positive'
        when excess_over_parent < 0 then 'negative'
        else 'neutral'
    end as contribution_direction,
    parent_statistics,
    assumptions,
    fallbacks,
    missing_inputs,
    dataset_row_locator,
    file_path,
    loaded_at
from contributions
where parent_node_id is not null and child_node_id is not null
