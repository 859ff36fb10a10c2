{#- Entry point: on-run-end: "{{ qalita.record_results(results) }}"
    Writes this invocation's rows (and nothing about the project's other nodes) into
    <schema>.qalita_results and one row into <schema>.qalita_invocations.
    rows/ builds the rows, schema/ knows the tables, write/ writes them per adapter. -#}

{% macro record_results(results) %}
  {%- if not execute or not var('qalita_enabled', true) -%}{{ return('') }}{%- endif -%}
  {#- compile, docs, parse, ls, run-operation... produce no outcomes worth keeping -#}
  {%- if (flags.WHICH | string) not in ('build', 'run', 'test', 'seed', 'snapshot', 'freshness', 'source') -%}
    {{ return('') }}
  {%- endif -%}
  {%- set recorded_at = modules.datetime.datetime.now(modules.pytz.utc).strftime('%Y-%m-%d %H:%M:%S.%f') -%}
  {%- set rows = qalita.result_rows(results, invocation_id, recorded_at) -%}
  {#- counted once over a list of strings (C-level list.count), not row by row in the loop -#}
  {%- set position = qalita.column_position(qalita.result_columns(), 'status_normalised') -%}
  {%- set statuses = rows | map(attribute=position) | list -%}
  {%- set counts = {} -%}
  {%- for status in ['passed', 'warned', 'failed', 'errored', 'skipped'] -%}
    {%- do counts.update({status: statuses.count(status)}) -%}
  {%- endfor -%}
  {%- set invocation = qalita.invocation_row(invocation_id, rows | length, counts, recorded_at) -%}
  {%- do adapter.dispatch('write_invocation', 'qalita')(invocation, rows) -%}
  {{ return('') }}
{% endmacro %}

{#- The failure policy: one warning naming the invocation, dbt's exit code untouched; with the var
    qalita_strict: true an error instead (the hook fails, and with it the run). -#}
{% macro hook_failed(message) %}
  {%- set text = 'qalita: could not record invocation ' ~ invocation_id ~ ' (' ~ message ~ '); '
                 ~ 'target/run_results.json still holds its results' -%}
  {%- if var('qalita_strict', false) -%}
    {%- do exceptions.raise_compiler_error(text) -%}
  {%- endif -%}
  {%- do exceptions.warn(text) -%}
  {{ return('') }}
{% endmacro %}
