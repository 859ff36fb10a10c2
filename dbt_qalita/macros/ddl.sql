{#- Tables create themselves and grow: CREATE ... IF NOT EXISTS, then ADD COLUMN for every column a
    newer package version knows and the table lacks (existing rows get NULL there). -#}

{% macro existing_columns(database, schema) %}
  {%- set sql -%}
    select lower(table_name), lower(column_name)
    from information_schema.columns
    where lower(table_schema) = lower('{{ schema }}')
      {% if database %}and lower(table_catalog) = lower('{{ database }}'){% endif %}
      and lower(table_name) in ('qalita_invocations', 'qalita_results')
  {%- endset -%}
  {%- set found = {'qalita_invocations': [], 'qalita_results': []} -%}
  {%- for row in run_query(sql).rows -%}
    {%- do found[row[0]].append(row[1]) -%}
  {%- endfor -%}
  {{ return(found) }}
{% endmacro %}

{% macro ddl_statements(database, schema) %}
  {#- The statements that bring both tables to this package's shape (none when they already are). -#}
  {%- set found = qalita.existing_columns(database, schema) -%}
  {%- set statements = [] -%}
  {%- if not found['qalita_invocations'] or not found['qalita_results'] -%}
    {%- do statements.append('create schema if not exists ' ~ adapter.quote(schema)) -%}
  {%- endif -%}
  {%- for table, columns in [('qalita_invocations', qalita.invocation_columns()),
                             ('qalita_results', qalita.result_columns())] -%}
    {%- set relation = qalita.relation(database, schema, table) -%}
    {%- if not found[table] -%}
      {%- set defs = [] -%}
      {%- for name, kind in columns -%}{%- do defs.append(name ~ ' ' ~ qalita.column_type(kind)) -%}{%- endfor -%}
      {%- do statements.append('create table if not exists ' ~ relation ~ ' (' ~ defs | join(', ') ~ ')') -%}
    {%- else -%}
      {%- for name, kind in columns if name not in found[table] -%}
        {%- do statements.append('alter table ' ~ relation ~ ' add column ' ~ name ~ ' ' ~ qalita.column_type(kind)) -%}
      {%- endfor -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(statements) }}
{% endmacro %}

{% macro relation(database, schema, table) %}
  {%- if database -%}
    {{ return(adapter.quote(database) ~ '.' ~ adapter.quote(schema) ~ '.' ~ table) }}
  {%- endif -%}
  {{ return(adapter.quote(schema) ~ '.' ~ table) }}
{% endmacro %}
