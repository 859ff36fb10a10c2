-- One row per entity result, and every entity result that has methods is there.
with

expected as (
    select distinct entity_result_id from {{ ref('stg_statistical_methods') }}
),

aggregated as (
    select
        entity_result_id,
        count(*) as occurrences
    from {{ ref('int_statistical_methods_agg') }}
    group by entity_result_id
)

select
    coalesce(expected.entity_result_id, aggregated.entity_result_id) as entity_result_id,
    aggregated.occurrences
from expected
full outer join aggregated
    on expected.entity_result_id = aggregated.entity_result_id
where aggregated.occurrences is null or aggregated.occurrences <> 1 or expected.entity_result_id is null
