{{ config(materialized='view') }}
{#- One row per parent-child entity pair per metric of the selected run. -#}
with

source as (
    {{ compass_run_rows('raw_contributions') }}
),

parsed as (
    select run_id, file_path, loaded_at, {{ json_parse('json_data') }} as doc
    from source
),

contributions as (
    select
        run_id,
        {{ json_text('doc', 'timestamp') }} as record_timestamp,
        {{ json_text('doc', 'parent_node_id') }} as parent_node_id,
        {{ json_text('doc', 'parent_node_file') }} as parent_node_file,
        {{ json_text('doc', 'child_node_id') }} as child_node_id,
        {{ json_text('doc', 'child_node_file') }} as child_node_file,
        {{ json_get('doc', 'parent_entity') }} as parent_entity,
        {{ json_get('doc', 'child_entity') }} as child_entity,
        {{ json_text('doc', 'parent_entity.medicareId') }} as parent_facility_id,
        {{ json_text('doc', 'parent_entity.vizientServiceLine') }} as parent_service_line,
        {{ json_text('doc', 'child_entity.medicareId') }} as child_facility_id,
        {{ json_text('doc', 'child_entity.vizientServiceLine') }} as child_service_line,
        {{ json_text('doc', 'child_entity.vizientSubServiceLine') }} as child_sub_service_line,
        {{ json_text('doc', 'child_entity.admissionStatus') }} as child_admission_status,
        {{ json_text('doc', 'child_entity.dischargeStatus') }} as child_discharge_status,
        {{ json_text('doc', 'child_entity.payerSegment') }} as child_payer_segment,
        {{ json_text('doc', 'child_entity.admissionSource') }} as child_admission_source,
        {{ json_text('doc', 'metric_id') }} as metric_id,
        {{ json_text('doc', 'method') }} as contribution_method,
        {{ json_number('doc', 'child_value') }} as child_value,
        {{ json_number('doc', 'parent_value') }} as parent_value,
        {{ json_text('doc', 'weight_field') }} as weight_field,
        {{ json_number('doc', 'weight_value') }} as weight_value,
        {{ json_number('doc', 'weight_share') }} as weight_share,
        {{ json_number('doc', 'weighted_child_value') }} as weighted_child_value,
        {{ json_number('doc', 'contribution_value') }} as contribution_value,
        {{ json_number('doc', 'raw_component') }} as raw_component,
        {{ json_number('doc', 'excess_over_parent') }} as excess_over_parent,
        {{ json_get('doc', 'parent_statistics') }} as parent_statistics,
        {{ json_get('doc', 'assumptions') }} as assumptions,
        {{ json_get('doc', 'fallbacks') }} as fallbacks,
        {{ json_get('doc', 'missing_inputs') }} as missing_inputs,
        {{ json_get('doc', 'dataset_row_locator') }} as dataset_row_locator,
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
