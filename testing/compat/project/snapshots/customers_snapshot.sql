{% snapshot customers_snapshot %}

{{ config(target_schema=target.schema, unique_key='customer_id', strategy='check',
          check_cols=['name']) }}

select customer_id, name from {{ ref('raw_customers') }}

{% endsnapshot %}
