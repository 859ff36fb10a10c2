{#- One row per signal: an entity x metric x node of the selected run that has a (not
    suppressed) classification, with its z-scores, anomaly tier, severity and trend. -#}
{#- The trend statistics of an aggregate node's signal are those of its temporal node when it has
    one, else its own; an anomaly label follows the statistic it applies to. -#}
{%- set temporal_statistics = ['latest_simple_zscore', 'mean_simple_zscore', 'latest_robust_zscore',
    'mean_robust_zscore', 'slope', 'slope_percentile', 'acceleration', 'trend_direction', 'momentum',
    'peer_percentile_trends'] -%}
{%- set temporal_first = temporal_statistics | list -%}
{%- set own_labels = [] -%}
{%- for applies_to, column in anomaly_labels() -%}
    {%- do (temporal_first if applies_to in temporal_statistics else own_labels).append(column) -%}
{%- endfor -%}
with

entity_results as (
    select
        *,
        {{ join_key(['run_id', 'canonical_node_id', 'metric_id', 'facility_id', 'entity_dimensions_hash']) }} as classification_key,
        {{ join_key(['run_id', 'canonical_node_id', 'entity_dimensions_hash']) }} as facet_key
    from {{ ref('stg_entity_results') }}
),

methods as (
    select * from {{ ref('int_statistical_methods_agg') }}
),

global_statistics as (
    -- The real method name is statistical_method__robust_zscore__aggregate_time_period: match
    -- on its parts (short name and method set), not on the bare name 'robust_zscore'.
    select
        {{ join_key(['run_id', 'canonical_node_id', 'facet_values_hash']) }} as facet_key,
        global_metric_mean,
        global_metric_std
    from {{ ref('stg_global_statistics') }}
    where
        statistical_method_short_name = 'robust_zscore'
        and method_set = 'aggregate_time_period'
),

trend_edges as (
    select
        canonical_node_id as aggregate_node_id,
        related_node_id as temporal_node_id,
        run_id
    from {{ ref('stg_node_edges') }}
    where
        edge_type = 'trends_to'
        and edge_direction = 'child'
        and {{ extract_feature_type('related_node_id') }} = 'temporal'
),

temporal_stats as (
    select
        {{ join_key(['entity_results.run_id', 'entity_results.canonical_node_id', 'entity_results.facility_id', 'entity_results.entity_dimensions_hash']) }} as temporal_key,
        entity_results.metric_timeline,
        entity_results.metadata_per_period,
        coalesce(methods.monthly_simple_z_scores, methods.monthly_robust_z_scores) as monthly_z_scores,
        {%- for c in temporal_first %}
            methods.{{ c }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from entity_results
    inner join methods
        on entity_results.entity_result_id = methods.entity_result_id
    where entity_results.feature_type = 'temporal'
),

classifications as (
    select
        *,
        {{ join_key(['run_id', 'canonical_node_id', 'metric_id', 'facility_id', 'entity_key_hash']) }} as classification_key
    from {{ ref('stg_classifications') }}
),

metric_catalog as (
    select
        metric_id,
        domain
    from {{ ref('metric_catalog') }}
),

signals as (
    select
        {{ surrogate_key(['entity_results.run_id', 'entity_results.canonical_node_id', 'entity_results.entity_result_id']) }} as signal_id,
        entity_results.run_id,
        entity_results.canonical_node_id,
        trend_edges.temporal_node_id,
        entity_results.system_name,
        entity_results.facility_id,
        entity_results.service_line,
        entity_results.sub_service_line,
        entity_results.metric_id,
        entity_results.metric_value,
        coalesce(global_statistics.global_metric_mean, methods.primary_peer_mean) as benchmark_value,
        methods.statistical_methods,
        methods.primary_simple_zscore as simple_zscore,
        methods.primary_robust_zscore as robust_zscore,
        methods.primary_simple_zscore as z_score,
        methods.simple_zscore_anomaly as anomaly_classification,
        {{ map_anomaly_to_severity('methods.simple_zscore_anomaly') }} as severity,
        {%- for c in temporal_first %}
            coalesce(temporal_stats.{{ c }}, methods.{{ c }}) as {{ c }},
        {%- endfor %}
        {%- for c in own_labels %}
            methods.{{ c }},
        {%- endfor %}
        methods.primary_percentile_rank as percentile_rank,
        methods.primary_peer_mean as peer_mean,
        methods.primary_peer_std as peer_std,
        methods.primary_peer_count as peer_count,
        entity_results.encounters,
        global_statistics.global_metric_mean,
        global_statistics.global_metric_std,
        coalesce(metric_catalog.domain, {{ classify_metric_domain('entity_results.metric_id') }}) as domain,
        entity_results.entity_dimensions,
        entity_results.entity_dimensions_hash,
        temporal_stats.metric_timeline as metric_trend_timeline,
        coalesce(temporal_stats.monthly_z_scores, methods.monthly_simple_z_scores, methods.monthly_robust_z_scores) as monthly_z_scores,
        classifications.signal_type as simplified_signal_type,
        classifications.severity as simplified_severity,
        classifications.severity_range as simplified_severity_range,
        classifications.inputs as simplified_inputs,
        classifications.derived_indicators as simplified_indicators,
        classifications.classification_reasoning as simplified_reasoning,
        classifications.severity_calculation as simplified_severity_calculation,
        classifications.magnitude_tier,
        classifications.trajectory_tier,
        classifications.consistency_tier,
        classifications.coefficient_of_variation,
        {{ surrogate_key(['entity_results.facility_id']) }} as facility_sk,
        {{ surrogate_key(['entity_results.metric_id']) }} as metric_sk,
        entity_results.metadata,
        coalesce(temporal_stats.metadata_per_period, entity_results.metadata_per_period) as metadata_per_period,
        -- when the run was loaded: stable across rebuilds of the same run
        entity_results.loaded_at as detected_at
    from entity_results
    inner join methods
        on entity_results.entity_result_id = methods.entity_result_id
    inner join classifications
        on entity_results.classification_key = classifications.classification_key
    left join global_statistics
        on entity_results.facet_key = global_statistics.facet_key
    left join trend_edges
        on
            entity_results.canonical_node_id = trend_edges.aggregate_node_id
            and entity_results.run_id = trend_edges.run_id
    left join temporal_stats
        on {{ join_key(['entity_results.run_id', 'trend_edges.temporal_node_id', 'entity_results.facility_id', 'entity_results.entity_dimensions_hash']) }} = temporal_stats.temporal_key
    left join metric_catalog
        on entity_results.metric_id = metric_catalog.metric_id
    where
        not coalesce(methods.any_suppressed, false)
        and classifications.signal_type is not null
)

select
    signal_id,
    run_id,
    canonical_node_id,
    temporal_node_id,
    system_name,
    facility_id,
    service_line,
    sub_service_line,
    metric_id,
    metric_value,
    benchmark_value,
    case
        when benchmark_value is not null and benchmark_value <> 0
            then {{ round_decimal('(metric_value - benchmark_value) / benchmark_value * 100', 2) }}
    end as variance_percent,
    statistical_methods,
    simple_zscore,
    robust_zscore,
    z_score,
    case when z_score > 0 then 'above' when z_score < 0 then 'below' end as direction,
    anomaly_classification,
    severity,
    latest_simple_zscore,
    mean_simple_zscore,
    latest_robust_zscore,
    mean_robust_zscore,
    percentile_rank,
    peer_mean,
    peer_std,
    peer_count,
    encounters,
    global_metric_mean,
    global_metric_std,
    simplified_signal_type || ' (severity: ' || cast(simplified_severity as varchar) || ')' as description,
    domain,
    entity_dimensions,
    entity_dimensions_hash,
    {{ compute_groupby_label('entity_dimensions') }} as groupby_label,
    {{ compute_group_value('entity_dimensions') }} as group_value,
    metric_trend_timeline,
    monthly_z_scores,
    slope,
    slope_percentile,
    acceleration,
    trend_direction,
    momentum,
    peer_percentile_trends,
    {%- for c in anomaly_label_columns() %}
        {{ c }},
    {%- endfor %}
    simplified_signal_type,
    simplified_severity,
    simplified_severity_range,
    simplified_inputs,
    simplified_indicators,
    simplified_reasoning,
    simplified_severity_calculation,
    magnitude_tier,
    trajectory_tier,
    consistency_tier,
    coefficient_of_variation,
    facility_sk,
    metric_sk,
    metadata,
    metadata_per_period,
    detected_at,
    current_timestamp as dbt_updated_at
from signals
