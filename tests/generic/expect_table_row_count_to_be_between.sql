{#- dbt_expectations' expect_table_row_count_to_be_between, same arguments: one failing row when
    the table's row count is outside [min_value, max_value]. -#}
{% test expect_table_row_count_to_be_between(model, min_value=none, max_value=none, row_condition=none, strictly=false) %}
{%- set lo = '>' if strictly else '>=' -%}
{%- set hi = '<' if strictly else '<=' -%}

with counted as (
    select count(*) as row_count
    from {{ model }}
    {%- if row_condition %} where {{ row_condition }}{% endif %}
)

select row_count
from counted
where not (
    1 = 1
    {%- if min_value is not none %} and row_count {{ lo }} {{ min_value }}{% endif %}
    {%- if max_value is not none %} and row_count {{ hi }} {{ max_value }}{% endif %}
)
{% endtest %}
