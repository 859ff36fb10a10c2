with

nodes as (
    select
        canonical_node_id,
        run_id,
        raw_json
    from {{ ref('stg_nodes') }}
),

children as (
    select
        nodes.canonical_node_id,
        {{ json_text('child.value', 'id') }} as related_node_id,
        {{ json_text('child.value', 'edge_type') }} as edge_type,
        'child' as edge_direction,
        nodes.run_id
    from nodes
    {{ json_array_rows('nodes.raw_json', 'canonical_child_node_ids', 'child') }}
),

parents as (
    select
        nodes.canonical_node_id,
        {{ json_text('parent.value', 'id') }} as related_node_id,
        {{ json_text('parent.value', 'edge_type') }} as edge_type,
        'parent' as edge_direction,
        nodes.run_id
    from nodes
    {{ json_array_rows('nodes.raw_json', 'canonical_parent_node_ids', 'parent') }}
),

edges as (
    select * from children
    union all
    select * from parents
)

select
    {{ surrogate_key(['canonical_node_id', 'related_node_id', 'edge_direction', 'run_id']) }} as edge_id,
    canonical_node_id,
    related_node_id,
    edge_type,
    edge_direction,
    run_id,
    current_timestamp as dbt_updated_at
from edges
where related_node_id is not null
