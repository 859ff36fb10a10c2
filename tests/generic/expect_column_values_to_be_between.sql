{#- dbt_expectations' expect_column_values_to_be_between, same arguments: rows whose value lies
    outside [min_value, max_value] (strictly, when strictly=true) fail; nulls are ignored. -#}
{% test expect_column_values_to_be_between(model, column_name, min_value=none, max_value=none, row_condition=none, strictly=false) %}
{%- if min_value is none and max_value is none -%}
  {{ exceptions.raise_compiler_error("expect_column_values_to_be_between needs min_value or max_value") }}
{%- endif -%}
{%- set lo = '>' if strictly else '>=' -%}
{%- set hi = '<' if strictly else '<=' -%}

with tested as (
    select {{ column_name }} as tested_value
    from {{ model }}
    where {{ column_name }} is not null
    {%- if row_condition %} and ({{ row_condition }}){% endif %}
)

select tested_value
from tested
where not (
    1 = 1
    {%- if min_value is not none %} and tested_value {{ lo }} {{ min_value }}{% endif %}
    {%- if max_value is not none %} and tested_value {{ hi }} {{ max_value }}{% endif %}
)
{% endtest %}
