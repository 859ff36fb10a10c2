-- One signal per entity x metric x node of a run: no method or edge fan-out.
select
    run_id,
    canonical_node_id,
    metric_id,
    facility_id,
    entity_dimensions_hash,
    count(*) as occurrences
from {{ ref('fct_signals') }}
group by run_id, canonical_node_id, metric_id, facility_id, entity_dimensions_hash
having count(*) > 1
