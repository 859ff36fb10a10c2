{#- One row per parent-child contribution, ranked within its parent entity, with the share of
    the parent's total weight it carries. -#}
with

contributions as (
    select * from {{ ref('stg_contributions') }}
    where contribution_weight is not null
),

windowed as (
    select
        *,
        row_number() over (
            partition by {{ contribution_parent_grain() | join(', ') }}
            order by contribution_weight desc, contribution_id asc
        ) as contribution_rank,
        sum(weight_share) over (
            partition by {{ contribution_parent_grain() | join(', ') }}
        ) as total_weight_share
    from contributions
)

select
    contribution_id,
    run_id,
    parent_node_id,
    child_node_id,
    parent_facility_id,
    parent_service_line,
    child_facility_id,
    child_service_line,
    child_sub_service_line,
    child_admission_status,
    child_discharge_status,
    child_payer_segment,
    child_admission_source,
    metric_id,
    contribution_method,
    child_value,
    parent_value,
    weight_field,
    weight_value,
    weight_share,
    contribution_value,
    excess_over_parent,
    contribution_weight,
    contribution_direction,
    contribution_rank,
    total_weight_share,
    abs(total_weight_share - 1) <= 0.01 as weight_share_valid,
    case
        when total_weight_share <> 0
            then {{ round_decimal('weight_share / total_weight_share * 100', 2) }}
    end as contribution_pct,
    {{ surrogate_key(['parent_facility_id']) }} as parent_facility_sk,
    {{ surrogate_key(['child_facility_id']) }} as child_facility_sk,
    {{ surrogate_key(['metric_id']) }} as metric_sk,
    loaded_at,
    current_timestamp as dbt_updated_at
from windowed
