with readings as (

    select * from {{ ref('stg_airquality') }}

),

metrics as (

    select
        city,
        country,
        parameter,
        unit,
        count(*) as measurement_count,
        min(measurement_value) as min_value,
        max(measurement_value) as max_value,
        avg(measurement_value) as avg_value,
        min(measured_at_utc) as first_measured_at_utc,
        max(measured_at_utc) as last_measured_at_utc

    from readings
    group by city, country, parameter, unit

)

select * from metrics
