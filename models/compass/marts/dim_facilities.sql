{#- One row per facility seen in the selected run, enriched with the ref_facilities seed. -#}
with

entity_results as (
    select
        facility_id,
        system_name,
        service_line,
        encounters,
        feature_type,
        loaded_at
    from {{ ref('stg_entity_results') }}
    where facility_id is not null
),

reference as (
    select * from {{ ref('ref_facilities') }}
),

service_line_volume as (
    -- primary service line: the one with the most encounters (ties: first by name)
    select
        facility_id,
        service_line,
        row_number() over (
            partition by facility_id
            order by sum(encounters) desc, {{ binary_sort('service_line') }}
        ) as volume_rank
    from entity_results
    where service_line is not null and feature_type = 'aggregate'
    group by facility_id, service_line
),

facilities as (
    select
        facility_id,
        max(system_name) as system_name,
        max(encounters) as total_encounters,
        min(loaded_at) as first_seen_at,
        max(loaded_at) as last_seen_at
    from entity_results
    group by facility_id
)

select
    {{ surrogate_key(['facilities.facility_id']) }} as facility_sk,
    facilities.facility_id,
    facilities.system_name,
    coalesce(reference.facility_name, facilities.facility_id) as facility_name,
    reference.facility_type,
    coalesce(facilities.system_name, reference.health_system) as health_system,
    reference.region,
    reference.state,
    reference.bed_count,
    case
        when reference.bed_count < 100 then 'small'
        when reference.bed_count <= 300 then 'medium'
        when reference.bed_count > 300 then 'large'
    end as size_class,
    service_line_volume.service_line as primary_service_line,
    facilities.total_encounters,
    facilities.first_seen_at,
    facilities.last_seen_at,
    current_timestamp as dbt_updated_at
from facilities
left join reference
    on facilities.facility_id = reference.facility_id
left join service_line_volume
    on
        facilities.facility_id = service_line_volume.facility_id
        and service_line_volume.volume_rank = 1
