{#- One row per statistical method per entity result. -#}
{%- set fields = [
    ('statistical_method', 'statistical_method', 'text'),
    ('runtime_status', 'runtime.status', 'text'),
    ('has_issues', 'runtime.summary.has_issues', 'boolean'),
    ('simple_zscore', 'statistics.simple_zscore', 'number'),
    ('robust_zscore', 'statistics.robust_zscore', 'number'),
    ('percentile_rank', 'statistics.percentile_rank', 'number'),
    ('peer_mean', 'statistics.peer_mean', 'number'),
    ('peer_std', 'statistics.peer_std', 'number'),
    ('peer_median', 'statistics.peer_median', 'number'),
    ('peer_mad', 'statistics.peer_mad', 'number'),
    ('peer_count', 'runtime.anomaly_statistics.peer_count', 'integer'),
    ('suppressed_flag', 'statistics.suppressed', 'boolean'),
    ('latest_simple_zscore', 'statistics.latest_simple_zscore', 'number'),
    ('mean_simple_zscore', 'statistics.mean_simple_zscore', 'number'),
    ('latest_robust_zscore', 'statistics.latest_robust_zscore', 'number'),
    ('mean_robust_zscore', 'statistics.mean_robust_zscore', 'number'),
    ('latest_period', 'statistics.latest_period', 'text'),
    ('slope', 'statistics.slope', 'number'),
    ('slope_percentile', 'statistics.slope_percentile', 'number'),
    ('acceleration', 'statistics.acceleration', 'number'),
    ('trend_direction', 'statistics.trend_direction', 'text'),
    ('momentum', 'statistics.momentum', 'text'),
    ('per_period_simple_zscores', 'statistics.per_period_simple_zscores', 'json'),
    ('per_period_robust_zscores', 'statistics.per_period_robust_zscores', 'json'),
    ('anomalies_json', 'anomalies', 'json'),
] -%}
with

entity_results as (
    select
        entity_result_id,
        canonical_node_id,
        run_id,
        facility_id,
        service_line,
        statistical_methods_json
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
-- one typed record per method, all its fields read in one pass
    {{ json_unnest_records('entity_results', ['entity_result_id', 'canonical_node_id', 'run_id', 'facility_id', 'service_line'],
        'statistical_methods_json', '', fields) }}
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
        {{ statistical_method_short_name('methods.statistical_method') }} as statistical_method_short_name,
        {{ statistical_method_set('methods.statistical_method') }} as method_set,
        methods.runtime_status,
        methods.has_issues,
        methods.simple_zscore,
        methods.robust_zscore,
        methods.percentile_rank,
        methods.peer_mean,
        methods.peer_std,
        methods.peer_median,
        methods.peer_mad,
        methods.peer_count,
        coalesce(methods.suppressed_flag, false) as suppressed,
        methods.latest_simple_zscore,
        methods.mean_simple_zscore,
        methods.latest_robust_zscore,
        methods.mean_robust_zscore,
        methods.latest_period,
        methods.slope,
        methods.slope_percentile,
        methods.acceleration,
        methods.trend_direction,
        methods.momentum,
        coalesce(methods.per_period_simple_zscores, methods.per_period_robust_zscores) as monthly_z_scores,
        methods.anomalies_json,
        node_methods.percentile_trends,
        current_timestamp as dbt_updated_at
    from methods
    left join node_methods
        on
            methods.canonical_node_id = node_methods.canonical_node_id
            and methods.statistical_method = node_methods.statistical_method
)

select * from final
