{#- Names and values that reach SQL text outside the JSON literal: the results schema and database
    (vars a user sets, which may hold `"`, `'` or `$`) and the invocation id. Doubling the quote
    character is the standard escape on both adapters. -#}

{% macro quote_identifier(name) %}
  {{ return('"' ~ (name | string).replace('"', '""') ~ '"') }}
{% endmacro %}

{% macro quote_literal(text) %}
  {{ return("'" ~ (text | string).replace("'", "''") ~ "'") }}
{% endmacro %}

{#- <database>.<schema>.<table> when a database is named (DuckDB may attach several), else
    <schema>.<table>; the table names are the package's own, plain lower-case words. -#}
{% macro relation(database, schema, table) %}
  {%- if database -%}
    {{ return(qalita.quote_identifier(database) ~ '.' ~ qalita.quote_identifier(schema) ~ '.' ~ table) }}
  {%- endif -%}
  {{ return(qalita.quote_identifier(schema) ~ '.' ~ table) }}
{% endmacro %}
