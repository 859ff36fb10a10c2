-- Within each parent entity, the children's weight shares add up to 1 (within 1%) and their
-- contribution percentages to 100 (within rounding).
select
    {%- for c in contribution_parent_grain() %}
    {{ c }},
    {%- endfor %}
    sum(weight_share) as total_share,
    sum(contribution_pct) as total_pct
from {{ ref('fct_contributions') }}
group by {{ contribution_parent_grain() | join(', ') }}
having abs(sum(weight_share) - 1) > 0.01 or abs(sum(contribution_pct) - 100) > 0.05 * count(*)
