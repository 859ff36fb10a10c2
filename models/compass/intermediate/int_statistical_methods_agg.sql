{#- One row per entity result: its statistical methods folded into columns (the primary
    z-scores, the temporal and slope statistics, the anomaly tiers) and one JSON array. -#}
{%- set label_columns = anomaly_label_columns() -%}
{%- set method_fields = [
    ('method_id', 'statistical_method_id'),
    ('method_name', 'statistical_method_short_name'),
    ('method_full', 'statistical_method'),
    ('simple_zscore', 'simple_zscore'),
    ('robust_zscore', 'robust_zscore'),
    ('percentile_rank', 'percentile_rank'),
    ('peer_mean', 'peer_mean'),
    ('peer_std', 'peer_std'),
    ('peer_count', 'peer_count'),
    ('suppressed', 'suppressed'),
    ('latest_simple_zscore', 'latest_simple_zscore'),
    ('mean_simple_zscore', 'mean_simple_zscore'),
    ('latest_robust_zscore', 'latest_robust_zscore'),
    ('mean_robust_zscore', 'mean_robust_zscore'),
    ('slope', 'slope'),
    ('slope_percentile', 'slope_percentile'),
    ('acceleration', 'acceleration'),
    ('trend_direction', 'trend_direction'),
    ('momentum', 'momentum'),
] -%}
{#- each method's object in the JSON array ends with its anomaly labels -#}
{%- for c in label_columns -%}{%- do method_fields.append((c, c)) -%}{%- endfor -%}
with

methods as (
    select * from {{ ref('stg_statistical_methods') }}
),

labels as (
    select * from {{ ref('int_anomaly_labels') }}
),

joined as (
    select
        methods.*,
        {%- for c in label_columns %}
            labels.{{ c }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from methods
    left join labels
        on methods.statistical_method_id = labels.statistical_method_id
)

select
    joined.entity_result_id,
    max(canonical_node_id) as canonical_node_id,
    max(run_id) as run_id,
    {{ json_object_array_agg(method_fields, [binary_sort('statistical_method_short_name'), binary_sort('statistical_method')]) }}
        as statistical_methods,
    max(case when joined.statistical_method_short_name = 'simple_zscore' then joined.simple_zscore end) as primary_simple_zscore,
    max(case when joined.statistical_method_short_name = 'simple_zscore' then joined.percentile_rank end) as primary_percentile_rank,
    max(case when joined.statistical_method_short_name = 'simple_zscore' then joined.peer_mean end) as primary_peer_mean,
    max(case when joined.statistical_method_short_name = 'simple_zscore' then joined.peer_std end) as primary_peer_std,
    max(case when joined.statistical_method_short_name = 'simple_zscore' then joined.peer_count end) as primary_peer_count,
    max(case when joined.statistical_method_short_name = 'robust_zscore' then joined.robust_zscore end) as primary_robust_zscore,
    max(latest_simple_zscore) as latest_simple_zscore,
    max(mean_simple_zscore) as mean_simple_zscore,
    max(latest_robust_zscore) as latest_robust_zscore,
    max(mean_robust_zscore) as mean_robust_zscore,
    max(case when joined.statistical_method_short_name = 'slope_percentile' then slope end) as slope,
    max(case when joined.statistical_method_short_name = 'slope_percentile' then slope_percentile end) as slope_percentile,
    max(case when joined.statistical_method_short_name = 'slope_percentile' then acceleration end) as acceleration,
    max(case when joined.statistical_method_short_name = 'slope_percentile' then trend_direction end) as trend_direction,
    max(case when joined.statistical_method_short_name = 'slope_percentile' then momentum end) as momentum,
    -- the simple per-period z-scores when present, else the robust ones
    {{ json_parse("max(case when statistical_method like '%trending_simple_zscore%' then " ~ json_to_text('monthly_z_scores') ~ " end)") }} as monthly_simple_z_scores,
    {{ json_parse("max(case when statistical_method like '%trending_robust_zscore%' then " ~ json_to_text('monthly_z_scores') ~ " end)") }} as monthly_robust_z_scores,
    {{ json_parse("max(case when statistical_method like '%trending%' then " ~ json_to_text('percentile_trends') ~ " end)") }} as peer_percentile_trends,
    {%- for c in label_columns %}
        max({{ c }}) as {{ c }},
    {%- endfor %}
    bool_or(joined.suppressed) as any_suppressed,
    current_timestamp as dbt_updated_at
from joined
group by joined.entity_result_id
