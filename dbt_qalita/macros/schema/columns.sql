{#- The shape of the two tables. Adding a column here is a schema migration: the writers add
    missing columns to existing tables, so rows written by older package versions stay valid.
    Add it at the same position in the row builders (rows/), and bump schema_version() with every
    change. -#}

{% macro schema_version() %}{{ return(1) }}{% endmacro %}

{% macro package_version() %}{{ return('0.1.0') }}{% endmacro %}

{#- Each list is "name:type" words in row order: result_rows() and invocation_row() build rows
    as lists in exactly this order, and the inserts read them by position. One string per table
    keeps these templates tiny to compile (they are compiled once per dbt process, on the hook's clock). -#}

{% macro invocation_columns() %}
  {{ return(qalita.split_columns('
    invocation_id:text schema_version:int package_version:text
    project_name:text target_name:text adapter_type:text
    environment:text command:text dbt_version:text
    started_at:timestamp finished_at:timestamp
    results_total:int passed:int warned:int failed:int errored:int skipped:int
    selectors:text args:text
    git_sha:text git_branch:text ci_provider:text job_id:text run_id:text run_url:text
    recorded_at:timestamp')) }}
{% endmacro %}

{% macro result_columns() %}
  {{ return(qalita.split_columns('
    invocation_id:text unique_id:text resource_type:text name:text
    package_name:text status:text status_normalised:text
    failures:bigint rows_affected:bigint message:text
    execution_time:double started_at:timestamp completed_at:timestamp
    thread_id:text severity:text warn_if:text error_if:text
    test_name:text test_namespace:text test_type:text
    column_name:text attached_node:text tags:text
    materialization:text relation_name:text
    max_loaded_at:timestamp snapshotted_at:timestamp age:double
    freshness_criteria:text recorded_at:timestamp')) }}
{% endmacro %}

{#- Where `name` sits in a row of `columns` (the row builders and the counts read positions from
    here, never from a literal number). -#}
{% macro column_position(columns, name) %}
  {{ return((columns | map(attribute=0) | list).index(name)) }}
{% endmacro %}

{% macro split_columns(spec) %}
  {%- set columns = [] -%}
  {%- for word in spec.split() -%}{%- do columns.append(word.split(':')) -%}{%- endfor -%}
  {{ return(columns) }}
{% endmacro %}

{#- Logical type -> adapter type. -#}
{% macro column_type(kind) %}
  {{ return(adapter.dispatch('column_type', 'qalita')(kind)) }}
{% endmacro %}

{% macro default__column_type(kind) %}
  {{ return({'text': 'text', 'int': 'integer', 'bigint': 'bigint', 'double': 'double precision',
             'timestamp': 'timestamp'}[kind]) }}
{% endmacro %}

{% macro duckdb__column_type(kind) %}
  {{ return({'text': 'varchar', 'int': 'integer', 'bigint': 'bigint', 'double': 'double',
             'timestamp': 'timestamp'}[kind]) }}
{% endmacro %}

{#- Where the tables live: var qalita_schema, else <target schema>_qalita. -#}
{% macro results_schema() %}
  {{ return(var('qalita_schema', target.schema ~ '_qalita')) }}
{% endmacro %}

{% macro results_database() %}
  {{ return(var('qalita_database', target.database)) }}
{% endmacro %}
