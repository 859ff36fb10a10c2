{#- One row per statistical method per entity result. -#}
with

entity_results as (
    select entity_result_id, canonical_node_id, run_id, facility_id, service_line, statistical_methods_json
    from {{ ref('stg_entity_results') }}
),

node_methods as (
    -- Node-level method summaries: the peer percentile trends of the trending methods.
    select
        nodes.canonical_node_id,
        {{ json_text('method.value', 'statistical_method') }} as statistical_method,
        {{ json_get('method.value', 'summary.global_statistics.percentile_trends') }} as percentile_trends
    from {{ ref('stg_nodes') }} as nodes
    {{ json_array_rows('nodes.raw_json', 'statistical_methods', 'method') }}
),

methods as (
    select
        entity_results.entity_result_id,
        entity_results.canonical_node_id,
        entity_results.run_id,
        entity_results.facility_id,
        entity_results.service_line,
        {{ json_text('method.value', 'statistical_method') }} as statistical_method,
        {{ json_get('method.value', 'statistics') }} as statistics,
        {{ json_get('method.value', 'runtime') }} as runtime,
        {{ json_get('method.value', 'anomalies') }} as anomalies_json
    from entity_results
    {{ json_array_rows('entity_results.statistical_methods_json', '', 'method') }}
),

final as (
    select
        {{ surrogate_key(['methods.entity_result_id', 'methods.statistical_method']) }} as statistical_method_id,
        methods.entity_result_id,
        methods.canonical_node_id,
        methods.run_id,
        methods.facility_id,
        methods.service_line,
        methods.statistical_method,
        case
            when methods.statistical_method like '%simple_zscore%' then 'simple_zscore'
            when methods.statistical_method like '%robust_zscore%' then 'robust_zscore'
            when methods.statistical_method like '%slope_percentile%' then 'slope_percentile'
            else split_part(methods.statistical_method, '__', 2)
        end as statistical_method_short_name,
        split_part(methods.statistical_method, '__', 3) as method_set,
        {{ json_text('methods.runtime', 'status') }} as runtime_status,
        {{ json_boolean('methods.runtime', 'summary.has_issues') }} as has_issues,
        {{ json_number('methods.statistics', 'simple_zscore') }} as simple_zscore,
        {{ json_number('methods.statistics', 'robust_zscore') }} as robust_zscore,
        {{ json_number('methods.statistics', 'percentile_rank') }} as percentile_rank,
        {{ json_number('methods.statistics', 'peer_mean') }} as peer_mean,
        {{ json_number('methods.statistics', 'peer_std') }} as peer_std,
        {{ json_number('methods.statistics', 'peer_median') }} as peer_median,
        {{ json_number('methods.statistics', 'peer_mad') }} as peer_mad,
        {{ json_integer('methods.runtime', 'anomaly_statistics.peer_count') }} as peer_count,
        coalesce({{ json_boolean('methods.statistics', 'suppressed') }}, false) as suppressed,
        {{ json_number('methods.statistics', 'latest_simple_zscore') }} as latest_simple_zscore,
        {{ json_number('methods.statistics', 'mean_simple_zscore') }} as mean_simple_zscore,
        {{ json_number('methods.statistics', 'latest_robust_zscore') }} as latest_robust_zscore,
        {{ json_number('methods.statistics', 'mean_robust_zscore') }} as mean_robust_zscore,
        {{ json_text('methods.statistics', 'latest_period') }} as latest_period,
        {{ json_number('methods.statistics', 'slope') }} as slope,
        {{ json_number('methods.statistics', 'slope_percentile') }} as slope_percentile,
        {{ json_number('methods.statistics', 'acceleration') }} as acceleration,
        {{ json_text('methods.statistics', 'trend_direction') }} as trend_direction,
        {{ json_text('methods.statistics', 'momentum') }} as momentum,
        coalesce(
            {{ json_get('methods.statistics', 'per_period_simple_zscores') }},
            {{ json_get('methods.statistics', 'per_period_robust_zscores') }}
        ) as monthly_z_scores,
        methods.anomalies_json,
        node_methods.percentile_trends,
        current_timestamp as dbt_updated_at
    from methods
    left join node_methods
        on methods.canonical_node_id = node_methods.canonical_node_id
        and methods.statistical_method = node_methods.statistical_method
)

select * from final
