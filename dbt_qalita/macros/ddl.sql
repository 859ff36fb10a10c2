{#- Tables create themselves and grow: CREATE ... IF NOT EXISTS, then ADD COLUMN for every column a
    newer package version knows and the table lacks (existing rows get NULL there). -#}

{#- existing_columns(database, schema): called through adapter.dispatch('existing_columns', 'qalita') -#}

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

{% macro postgres__existing_columns(database, schema) %}
  {#- the catalog itself: information_schema.columns is a view that costs ~8 ms here -#}
  {%- set sql -%}
    select lower(c.relname), lower(a.attname)
    from pg_catalog.pg_attribute as a
    join pg_catalog.pg_class as c on c.oid = a.attrelid
    join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
    where lower(n.nspname) = lower('{{ schema }}')
      and lower(c.relname) in ('qalita_invocations', 'qalita_results')
      and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped
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

{#- Look first (one catalog query): in the steady state there is nothing to do, while issuing
    CREATE / ALTER ... IF NOT EXISTS for every column costs a statement each (DuckDB) or an exclusive
    lock even when it changes nothing (PostgreSQL). -#}
{% macro ddl_statements(database, schema) %}
  {#- The statements that bring both tables to this package's shape (none when they already are:
      then the builder below is not even compiled). -#}
  {%- set found = adapter.dispatch('existing_columns', 'qalita')(database, schema) -%}
  {%- set missing = (qalita.invocation_columns() | map(attribute=0) | reject('in', found['qalita_invocations']) | list)
                    + (qalita.result_columns() | map(attribute=0) | reject('in', found['qalita_results']) | list) -%}
  {{ return(qalita.ddl_changes(database, schema, found) if missing else []) }}
{% endmacro %}

{% macro ddl_changes(database, schema, found) %}
  {%- set statements = [] -%}
  {%- if not found['qalita_invocations'] or not found['qalita_results'] -%}
    {#- DuckDB may attach several databases; PostgreSQL names none (it has one per connection) -#}
    {%- set prefix = (adapter.quote(database) ~ '.') if database and target.type == 'duckdb' else '' -%}
    {%- do statements.append('create schema if not exists ' ~ prefix ~ adapter.quote(schema)) -%}
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
        {#- IF NOT EXISTS: a concurrent invocation may have added it since we looked -#}
        {%- do statements.append('alter table ' ~ relation ~ ' add column if not exists ' ~ name ~ ' ' ~ qalita.column_type(kind)) -%}
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
