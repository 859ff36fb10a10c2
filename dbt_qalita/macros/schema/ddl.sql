{#- Tables create themselves and grow: CREATE ... IF NOT EXISTS, then ADD COLUMN for every column a
    newer package version knows and the table lacks (existing rows get NULL there). Each writer
    decides from the catalog which of these statements to run: DuckDB in Jinja before its
    transaction (write/duckdb.sql), PostgreSQL inside its guarded block (write/postgres.sql). -#}

{#- The two tables with their columns, in the order the writers handle them. -#}
{% macro tables() %}
  {{ return([('qalita_invocations', qalita.invocation_columns()), ('qalita_results', qalita.result_columns())]) }}
{% endmacro %}

{% macro create_schema_sql(database, schema) %}
  {#- DuckDB may attach several databases; PostgreSQL names none (it has one per connection) -#}
  {%- set prefix = (qalita.quote_identifier(database) ~ '.') if database and target.type == 'duckdb' else '' -%}
  {{ return('create schema if not exists ' ~ prefix ~ qalita.quote_identifier(schema)) }}
{% endmacro %}

{% macro create_table_sql(relation, columns) %}
  {%- set defs = [] -%}
  {%- for name, kind in columns -%}{%- do defs.append(name ~ ' ' ~ qalita.column_type(kind)) -%}{%- endfor -%}
  {{ return('create table if not exists ' ~ relation ~ ' (' ~ defs | join(', ') ~ ')') }}
{% endmacro %}

{% macro add_column_sql(relation, name, kind) %}
  {#- IF NOT EXISTS: a concurrent invocation may have added it since the catalog was read -#}
  {{ return('alter table ' ~ relation ~ ' add column if not exists ' ~ name ~ ' ' ~ qalita.column_type(kind)) }}
{% endmacro %}

{#- The statements that bring both tables to this package's shape, given the columns each table
    has now (`found`: table name -> list of lower-case column names; empty when it is missing).
    None when they already have every column. -#}
{% macro ddl_changes(database, schema, found) %}
  {%- set statements = [] -%}
  {%- if not found['qalita_invocations'] or not found['qalita_results'] -%}
    {%- do statements.append(qalita.create_schema_sql(database, schema)) -%}
  {%- endif -%}
  {%- for table, columns in qalita.tables() -%}
    {%- set relation = qalita.relation(database, schema, table) -%}
    {%- if not found[table] -%}
      {%- do statements.append(qalita.create_table_sql(relation, columns)) -%}
    {%- else -%}
      {%- for name, kind in columns if name not in found[table] -%}
        {%- do statements.append(qalita.add_column_sql(relation, name, kind)) -%}
      {%- endfor -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(statements) }}
{% endmacro %}
