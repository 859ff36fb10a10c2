{#- One row per facet per statistical method per node: the peer-group (global) statistics an
    entity's z-score was computed against. facet_values_hash matches entity_dimensions_hash. -#}
with

nodes as (
    select
        canonical_node_id,
        run_id,
        loaded_at,
        raw_json
    from {{ ref('stg_nodes') }}
),

methods as (
    select
        nodes.canonical_node_id,
        nodes.run_id,
        nodes.loaded_at,
        {{ json_text('method.value', 'statistical_method') }} as statistical_method_full,
        {{ json_get('method.value', 'summary.global_statistics.facets') }} as facets
    from nodes
    {{ json_array_rows('nodes.raw_json', 'statistical_methods', 'method') }}
),

facets as (
    select
        methods.canonical_node_id,
        methods.run_id,
        methods.loaded_at,
        methods.statistical_method_full,
        facet.idx as facet_index,
        {{ json_get('facet.value', 'facet_values') }} as facet_values,
        {{ json_get('facet.value', 'method_statistics') }} as stats,
        {{ json_get('facet.value', 'facet_counts') }} as counts
    from methods
    {{ json_array_rows('methods.facets', '', 'facet', with_index=true) }}
),

facet_value_rows as (
    select
        facets.canonical_node_id,
        facets.statistical_method_full,
        facets.facet_index,
        facet_value.key as field_id,
        facet_value.value_text as field_value
    from facets
    {{ json_object_rows('facets.facet_values', '', 'facet_value') }}
),

facet_keys as (
    select
        canonical_node_id,
        statistical_method_full,
        facet_index,
        -- the same canonical text as stg_entity_results.entity_dimensions_text, so the hashes join
        {{ canonical_entity_dimensions_text('field_id', 'field_value') }} as facet_values_text
    from facet_value_rows
    group by canonical_node_id, statistical_method_full, facet_index
),

final as (
    select
        facets.canonical_node_id,
        facets.run_id,
        facets.statistical_method_full,
        {{ statistical_method_short_name('facets.statistical_method_full') }} as statistical_method_short_name,
        {{ statistical_method_set('facets.statistical_method_full') }} as method_set,
        facets.facet_values,
        coalesce(facet_keys.facet_values_text, '{}') as facet_values_text,
        {{ json_number('facets.stats', 'global_metric_mean') }} as global_metric_mean,
        {{ json_number('facets.stats', 'global_metric_std') }} as global_metric_std,
        {{ json_number('facets.stats', 'global_metric_median') }} as global_metric_median,
        {{ json_number('facets.stats', 'global_mad') }} as global_mad,
        {{ json_integer('facets.stats', 'min_peer_count') }} as min_peer_count,
        {{ json_number('facets.stats', 'std_floor') }} as std_floor,
        {{ json_boolean('facets.stats', 'std_floor_applied') }} as std_floor_applied,
        {{ json_integer('facets.counts', 'record_count') }} as facet_record_count,
        {{ json_integer('facets.counts', 'entity_count') }} as facet_entity_count,
        {{ json_integer('facets.counts', 'entity_with_statistics_count') }} as facet_entity_with_stats_count,
        facets.loaded_at
    from facets
    left join facet_keys
        on
            facets.canonical_node_id = facet_keys.canonical_node_id
            and facets.statistical_method_full = facet_keys.statistical_method_full
            and facets.facet_index = facet_keys.facet_index
)

select
    {{ surrogate_key(['canonical_node_id', 'statistical_method_full', 'facet_values_text', 'run_id']) }} as global_stat_id,
    *,
    {{ entity_dimensions_hash('facet_values_text') }} as facet_values_hash,
    current_timestamp as dbt_updated_at
from final
where global_metric_mean is not null
