{#- Post-hook of the marts: refresh the planner statistics of the table just built.
    PostgreSQL: ANALYZE. DuckDB: a documented no-op (it maintains its statistics on write);
    an empty hook is skipped by dbt. -#}
{% macro analyze_table(relation=none) %}
  {{ return(adapter.dispatch('analyze_table')(relation or this)) }}
{% endmacro %}
{% macro default__analyze_table(relation) %}{% endmacro %}
{% macro postgres__analyze_table(relation) %}analyze {{ relation }}{% endmacro %}

{#- `dbt run-operation vacuum_analyze_table --args '{table_name: fct_signals, schema_name: public_marts}'`
    PostgreSQL: VACUUM ANALYZE outside a transaction (VACUUM refuses to run inside one).
    DuckDB: a documented no-op (nothing to reclaim that VACUUM would; it only logs). -#}
{% macro vacuum_analyze_table(table_name, schema_name=none) %}
  {%- set schema_name = schema_name or target.schema -%}
  {%- set relation = adapter.get_relation(database=target.database, schema=schema_name, identifier=table_name) -%}
  {%- if relation is none -%}
    {{ exceptions.raise_compiler_error("vacuum_analyze_table: no table " ~ schema_name ~ "." ~ table_name) }}
  {%- endif -%}
  {{ return(adapter.dispatch('vacuum_analyze_table')(relation)) }}
{% endmacro %}
{% macro default__vacuum_analyze_table(relation) %}
  {{ log("vacuum_analyze_table: " ~ relation ~ ": nothing to do on " ~ target.type, info=true) }}
{% endmacro %}
{% macro postgres__vacuum_analyze_table(relation) %}
  {%- call statement('vacuum_analyze', auto_begin=false) -%}
    vacuum analyze {{ relation }}
  {%- endcall -%}
  {{ log("vacuum_analyze_table: vacuum analyze " ~ relation ~ ": done", info=true) }}
{% endmacro %}
