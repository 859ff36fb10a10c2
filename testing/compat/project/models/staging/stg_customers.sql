with customers as (
    select * from {{ ref('raw_customers') }}
)

select
    customer_id,
    name
from customers
