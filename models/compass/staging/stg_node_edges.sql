with

nodes as (
    select
        canonical_node_id,
        run_id,
        raw_json
    from {{ ref('stg_nodes') }}
),

edges as (
    -- one row per element of the node's child list, then of its parent list
    {%- for direction in ['child', 'parent'] %}
        select
            nodes.canonical_node_id,
            {{ json_text(direction ~ '.value', 'id') }} as related_node_id,
            {{ json_text(direction ~ '.value', 'edge_type') }} as edge_type,
            '{{ direction }}' as edge_direction,
            nodes.run_id
        from nodes
        {{ json_array_rows('nodes.raw_json', 'canonical_' ~ direction ~ '_node_ids', direction) }}
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
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
