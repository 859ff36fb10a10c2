{#- Entry point: on-run-end: "{{ qalita.record_results(results) }}"
    Writes this invocation's rows (and nothing about the project's other nodes) into
    <schema>.qalita_results and one row into <schema>.qalita_invocations. -#}

{% macro record_results(results) %}
  {%- if not execute or not var('qalita_enabled', true) -%}{{ return('') }}{%- endif -%}
  {#- compile, docs, parse, ls, run-operation... produce no outcomes worth keeping -#}
  {%- if (flags.WHICH | string) not in ('build', 'run', 'test', 'seed', 'snapshot', 'freshness', 'source') -%}
    {{ return('') }}
  {%- endif -%}
  {%- set recorded_at = modules.datetime.datetime.now(modules.pytz.utc).strftime('%Y-%m-%d %H:%M:%S.%f') -%}
  {%- set rows = qalita.result_rows(results, invocation_id, recorded_at) -%}
  {#- counted once over a list of strings (C-level list.count), not row by row in the loop;
      position 6 is status_normalised -#}
  {%- set statuses = rows | map(attribute=6) | list -%}
  {%- set counts = {} -%}
  {%- for status in ['passed', 'warned', 'failed', 'errored', 'skipped'] -%}
    {%- do counts.update({status: statuses.count(status)}) -%}
  {%- endfor -%}
  {%- set invocation = qalita.invocation_row(invocation_id, rows | length, counts, recorded_at) -%}
  {%- do adapter.dispatch('write_invocation', 'qalita')(invocation, rows) -%}
  {{ return('') }}
{% endmacro %}

{% macro hook_failed(message) %}
  {%- set text = 'qalita: could not record invocation ' ~ invocation_id ~ ' (' ~ message ~ '); '
                 ~ 'target/run_results.json still holds its results' -%}
  {%- if var('qalita_strict', false) -%}
    {%- do exceptions.raise_compiler_error(text) -%}
  {%- endif -%}
  {%- do exceptions.warn(text) -%}
{% endmacro %}

{#- DuckDB: one transaction per invocation; dbt-duckdb rolls back what on-run-end leaves open. -#}
{% macro duckdb__write_invocation(invocation, rows) %}
  {%- set database = qalita.results_database() -%}
  {%- set schema = qalita.results_schema() -%}
  {%- set statements = qalita.ddl_statements(database, schema) -%}
  {%- set inv_rel = qalita.relation(database, schema, 'qalita_invocations') -%}
  {%- set res_rel = qalita.relation(database, schema, 'qalita_results') -%}
  {%- do statements.append("delete from " ~ res_rel ~ " where invocation_id = '" ~ invocation_id ~ "'") -%}
  {%- do statements.append("delete from " ~ inv_rel ~ " where invocation_id = '" ~ invocation_id ~ "'") -%}
  {%- set insert_json_sql = adapter.dispatch('insert_json_sql', 'qalita') -%}
  {%- set columns = qalita.result_columns() -%}
  {%- for chunk in qalita.chunk_rows(rows) -%}
    {%- do statements.append(insert_json_sql(res_rel, columns, chunk)) -%}
  {%- endfor -%}
  {%- do statements.append(insert_json_sql(inv_rel, qalita.invocation_columns(), tojson([invocation]))) -%}
  {#- one round trip: every statement of the invocation in one transaction -#}
  {%- do run_query('begin transaction;\n' ~ statements | join(';\n') ~ ';\ncommit') -%}
{% endmacro %}

{#- PostgreSQL: every statement runs inside a DO block whose handler keeps the error in a session
    setting instead of aborting dbt's transaction; after a failure the remaining blocks do nothing,
    the invocation's partial rows are removed and one warning names the invocation. -#}
{% macro postgres__write_invocation(invocation, rows) %}
  {%- set database = qalita.results_database() -%}
  {%- set schema = qalita.results_schema() -%}
  {%- set inv_rel = qalita.relation(database, schema, 'qalita_invocations') -%}
  {%- set res_rel = qalita.relation(database, schema, 'qalita_results') -%}
  {#- concurrent invocations must not race on CREATE SCHEMA / TABLE: one lock per transaction -#}
  {%- set statements = ["perform pg_advisory_xact_lock(hashtext('qalita.record_results'))"] -%}
  {%- do statements.extend(qalita.ddl_statements(database, schema)) -%}
  {%- do statements.append("delete from " ~ res_rel ~ " where invocation_id = '" ~ invocation_id ~ "'") -%}
  {%- do statements.append("delete from " ~ inv_rel ~ " where invocation_id = '" ~ invocation_id ~ "'") -%}
  {%- set blocks = ["select set_config('qalita.error', '', false)", qalita.pg_guarded(statements)] -%}
  {%- set insert_json_sql = adapter.dispatch('insert_json_sql', 'qalita') -%}
  {%- set columns = qalita.result_columns() -%}
  {%- for chunk in qalita.chunk_rows(rows) -%}
    {%- do blocks.append(qalita.pg_guarded([insert_json_sql(res_rel, columns, chunk)])) -%}
  {%- endfor -%}
  {%- do blocks.append(qalita.pg_guarded([insert_json_sql(inv_rel, qalita.invocation_columns(), tojson([invocation]))])) -%}
  {#- one round trip; its last statement reports the first error, if any -#}
  {%- do blocks.append("select current_setting('qalita.error', true)") -%}
  {%- set error = run_query(blocks | join(';\n')).columns[0].values()[0] -%}
  {%- if error -%}
    {%- do run_query("rollback") -%}
    {%- do qalita.hook_failed(error) -%}
  {%- else -%}
    {%- do run_query("commit") -%}
  {%- endif -%}
{% endmacro %}

{% macro pg_guarded(statements) %}
  {%- set body = [] -%}
  {%- for sql in statements -%}
    {%- do body.append((sql if sql.startswith('perform ') else 'execute ' ~ qalita.dollar_quote(sql)) ~ ';') -%}
  {%- endfor -%}
  {{ return("do $qalita_do$ begin if coalesce(current_setting('qalita.error', true), '') <> '' then return; end if; "
            ~ body | join(' ')
            ~ " exception when others then perform set_config('qalita.error', sqlerrm, false); end $qalita_do$") }}
{% endmacro %}

{% macro dollar_quote(sql) %}
  {#- sql never contains `$` (sql_json escapes it in data), so this tag cannot be closed early -#}
  {{ return('$qalita_sql$' ~ sql ~ '$qalita_sql$') }}
{% endmacro %}
