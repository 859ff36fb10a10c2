with

source as (
    {{ compass_run_rows('raw_node_results') }}
),

parsed as (
    select
        run_id,
        file_path,
        loaded_at,
        {{ json_parse('json_data') }} as raw_json
    from source
),

final as (
    select
        {{ json_text('raw_json', 'canonical_node_id') }} as canonical_node_id,
        run_id,
        {{ json_text('raw_json', 'metric_id') }} as metric_id,
        {{ json_text('raw_json', 'dataset_path') }} as dataset_path,
        {{ json_text('raw_json', 'summary.entity_scope.display_name') }} as entity_scope_name,
        {{ json_text('raw_json', 'summary.entity_scope.comparison_group') }} as comparison_group,
        coalesce({{ json_array_size('raw_json', 'canonical_child_node_ids') }}, 0) as child_count,
        coalesce({{ json_array_size('raw_json', 'canonical_parent_node_ids') }}, 0) as parent_count,
        {{ json_text('raw_json', 'entity_results_path') }} as entity_results_path,
        {{ json_integer('raw_json', 'entity_results_count') }} as entity_results_count,
        raw_json,
        file_path,
        loaded_at,
        current_timestamp as dbt_updated_at
    from parsed
)

select
    *,
    {{ node_groupby_fields('canonical_node_id') }} as groupby_fields,
    {{ node_time_grain('canonical_node_id') }} as time_grain,
    {{ extract_feature_type('canonical_node_id') }} as feature_type
from final
where canonical_node_id is not null
