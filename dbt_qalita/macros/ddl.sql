{#- Tables create themselves and grow: CREATE ... IF NOT EXISTS, then ADD COLUMN for every column a
    newer package version knows and the table lacks (existing rows get NULL there). -#}

{% macro existing_columns(database, schema) %}
  {{ return(adapter.dispatch('existing_columns', 'qalita')(database, schema)) }}
{% endmacro %}

{% macro duckdb__existing_columns(database, schema) %}
  {#- duckdb_columns() answers in ~1 ms where information_schema takes several -#}
  {%- set sql -%}
    select lower(table_name), lower(column_name)
    from duckdb_columns()
    where lower(schema_name) = lower('{{ schema }}')
      {% if database %}and lower(database_name) = lower('{{ database }}'){% endif %}
      and lower(table_name) in ('qalita_invocations', 'qalita_results')
  {%- endset -%}
  {{ return(qalita.columns_by_table(sql)) }}
{% endmacro %}

{% macro default__existing_columns(database, schema) %}
  {%- set sql -%}
    select lower(table_name), lower(column_name)
    from information_schema.columns
    where lower(table_schema) = lower('{{ schema }}')
      {% if database %}and lower(table_catalog) = lower('{{ database }}'){% endif %}
      and lower(table_name) in ('qalita_invocations', 'qalita_results')
  {%- endset -%}
  {{ return(qalita.columns_by_table(sql)) }}
{% endmacro %}

{% macro columns_by_table(sql) %}
  {%- set found = {'qalita_invocations': [], 'qalita_results': []} -%}
  {%- for row in run_query(sql).rows -%}
    {%- do found[row[0]].append(row[1]) -%}
  {%- endfor -%}
  {{ return(found) }}
{% endmacro %}

{% macro ddl_statements(database, schema) %}
  {{ return(adapter.dispatch('ddl_statements', 'qalita')(database, schema)) }}
{% endmacro %}

{#- DuckDB: no round trip to look first. IF NOT EXISTS makes every statement a no-op on an
    up-to-date table (~7 ms for all of them), cheaper than dbt's query overhead (~30 ms). -#}
{% macro duckdb__ddl_statements(database, schema) %}
  {%- set statements = ['create schema if not exists ' ~ ((adapter.quote(database) ~ '.') if database else '') ~ adapter.quote(schema)] -%}
  {%- for table, columns in [('qalita_invocations', qalita.invocation_columns()),
                             ('qalita_results', qalita.result_columns())] -%}
    {%- set relation = qalita.relation(database, schema, table) -%}
    {%- set defs = [] -%}
    {%- for name, kind in columns -%}{%- do defs.append(name ~ ' ' ~ qalita.column_type(kind)) -%}{%- endfor -%}
    {%- do statements.append('create table if not exists ' ~ relation ~ ' (' ~ defs | join(', ') ~ ')') -%}
    {%- for def in defs -%}
      {%- do statements.append('alter table ' ~ relation ~ ' add column if not exists ' ~ def) -%}
    {%- endfor -%}
  {%- endfor -%}
  {{ return(statements) }}
{% endmacro %}

{#- PostgreSQL: look first, because ALTER TABLE takes an exclusive lock even when it changes nothing. -#}
{% macro default__ddl_statements(database, schema) %}
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
