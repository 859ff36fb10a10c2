{#- One row per day, 2020-01-01 to 2030-12-31: MetricFlow's daily time spine. -#}
with

days as (
    {{ dbt.date_spine('day', "cast('2020-01-01' as date)", "cast('2031-01-01' as date)") }}
)

select cast(date_day as date) as date_day
from days
