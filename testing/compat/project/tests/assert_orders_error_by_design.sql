-- Errors by design: the column does not exist.
select no_such_column from {{ ref('stg_orders') }}
