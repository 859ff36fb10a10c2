{#- One row per metric of the selected run (entity results and contributions), described by the
    metric_catalog seed, else by rules on the metric id. -#}
with

metric_ids as (
    select metric_id from {{ ref('stg_entity_results') }}
    where metric_id is not null
    union
    select metric_id from {{ ref('stg_contributions') }}
    where metric_id is not null
),

catalog as (
    select * from {{ ref('metric_catalog') }}
),

named as (
    select
        metric_id,
        lower(metric_id) as metric_key,
        -- losIndex -> "Los Index": underscores to spaces, a space before Index/Rate, then initcap
        {{ compass_initcap("replace(replace(replace(metric_id, '_', ' '), 'Index', ' Index'), 'Rate', ' Rate')") }} as fallback_name
    from metric_ids
)

select
    {{ surrogate_key(['named.metric_id']) }} as metric_sk,
    named.metric_id,
    coalesce(catalog.metric_name, trim(replace(named.fallback_name, '  ', ' '))) as metric_name,
    coalesce(catalog.description, 'Quality metric ' || named.metric_id || ' (not in the metric catalogue).') as description,
    coalesce(catalog.domain, {{ classify_metric_domain('named.metric_id') }}) as domain,
    coalesce(catalog.direction_preference, case
        when
            named.metric_key like '%los%' or named.metric_key like '%readmission%' or named.metric_key like '%mortality%'
            or named.metric_key like '%cost%' or named.metric_key like '%fall%' or named.metric_key like '%infection%'
            then 'lower_is_better'
        when named.metric_key like '%satisfaction%' or named.metric_key like '%compliance%' then 'higher_is_better'
        else 'context_dependent'
    end) as direction_preference,
    coalesce(catalog.unit_type, case
        when named.metric_key like '%index%' then 'index (ratio)'
        when named.metric_key like '%rate%' then 'percentage'
        when named.metric_key like '%cost%' then 'currency (USD)'
        when named.metric_key like '%days%' or named.metric_key like '%los%' then 'days'
        when named.metric_key like '%count%' then 'count'
        else 'numeric'
    end) as unit_type,
    coalesce(catalog.display_format, case
        when named.metric_key like '%rate%' then 'percent_1'
        else 'decimal_2'
    end) as display_format,
    current_timestamp as dbt_updated_at
from named
left join catalog
    on named.metric_id = catalog.metric_id
