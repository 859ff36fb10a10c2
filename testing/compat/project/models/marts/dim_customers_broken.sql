-- Errors by design (a column that does not exist): its test is then skipped.
with customers as (
    select * from {{ ref('stg_customers') }}
)

select
    customer_id,
    no_such_column
from customers
