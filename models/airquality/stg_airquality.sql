-- depends_on: {{ ref('opendata_airquality') }}
-- (the source below is the seeded table; the ref orders `dbt build` after the seed)

with source as (

    select * from {{ source('openaq', 'opendata_airquality') }}

),

renamed as (

    select
        trim(city) as city,
        upper(trim(country)) as country,
        trim(location) as location,
        lower(trim(parameter)) as parameter,
        cast(trim(value) as double precision) as measurement_value,
        lower(trim(unit)) as unit,
        -- ISO-8601 with a trailing Z: drop the designator, the value is already UTC
        cast(replace(replace(trim(date_utc), 'T', ' '), 'Z', '') as timestamp) as measured_at_utc

    from source

)

select * from renamed
