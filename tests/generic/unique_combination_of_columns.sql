{#- dbt_utils' unique_combination_of_columns, same arguments: one failing row per duplicated key. -#}
{% test unique_combination_of_columns(model, combination_of_columns, quote_columns=false) %}
{%- set columns = [] -%}
{%- for column in combination_of_columns -%}
  {%- do columns.append(adapter.quote(column) if quote_columns else column) -%}
{%- endfor -%}
{%- set key = columns | join(', ') -%}

with grouped as (
    select {{ key }}, count(*) as occurrences
    from {{ model }}
    group by {{ key }}
)

select *
from grouped
where occurrences > 1
{% endtest %}
