-- Every raw entity line of the selected run lands once in staging (none dropped, none doubled).
with

raw_lines as (
    select count(*) as n from ({{ compass_run_rows('raw_entity_results') }}) as selected
),

staged as (
    select
        count(*) as n,
        count(distinct raw_entity_result_id) as distinct_n
    from {{ ref('stg_entity_results') }}
)

select
    raw_lines.n as raw_rows,
    staged.n as staged_rows,
    staged.distinct_n
from raw_lines
cross join staged
where raw_lines.n <> staged.n or staged.n <> staged.distinct_n
