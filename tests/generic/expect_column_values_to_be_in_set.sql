{#- dbt_expectations' expect_column_values_to_be_in_set, same arguments; nulls are ignored. -#}
{% test expect_column_values_to_be_in_set(model, column_name, value_set, quote_values=true, row_condition=none) %}
select {{ column_name }} as tested_value
from {{ model }}
where {{ column_name }} is not null
  and {{ column_name }} not in (
    {%- for v in value_set -%}
      {%- if quote_values -%}'{{ v | replace("'", "''") }}'{%- else -%}{{ v }}{%- endif -%}
      {%- if not loop.last %}, {% endif -%}
    {%- endfor -%}
  )
{%- if row_condition %} and ({{ row_condition }}){% endif %}
{% endtest %}
