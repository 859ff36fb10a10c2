{#- dbt results -> rows. This loop is the hook's hot path: it runs once per result, so it is one
    macro with everything inlined (a macro call costs more than the rest of a row) and touches
    neither the database nor the manifest graph. A row is a list in result_columns() order: the
    JSON then carries no key names, which halves what is built, sent, logged and parsed. -#}

{% macro ts(value) %}
  {#- UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' (naive): both adapters cast that text. -#}
  {%- if value is none or value == '' -%}{{ return(none) }}{%- endif -%}
  {%- if value is string -%}
    {{ return(value.replace('T', ' ').replace('Z', '').split('+')[0]) }}
  {%- endif -%}
  {%- if value.tzinfo is not none -%}
    {%- set value = value.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
  {%- endif -%}
  {{ return(value.strftime('%Y-%m-%d %H:%M:%S.%f')) }}
{% endmacro %}

{% macro result_rows(results, invocation_id, recorded_at) %}
  {#- raw dbt status -> normalised; a freshness `error` (older than error_after) is a finding, so
      `failed`, while a freshness `runtime error` (the check itself broke) is `errored` -#}
  {%- set statuses = {'pass': 'passed', 'success': 'passed', 'no-op': 'passed', 'warn': 'warned',
                      'fail': 'failed', 'error': 'errored', 'runtime error': 'errored',
                      'skipped': 'skipped'} -%}
  {#- the test and freshness parts of a row, as long as their column runs in result_columns() -#}
  {%- set columns = qalita.result_columns() -%}
  {%- set no_test = [none] * (qalita.column_position(columns, 'attached_node')
                              - qalita.column_position(columns, 'severity') + 1) -%}
  {%- set no_freshness = [none] * (qalita.column_position(columns, 'freshness_criteria')
                                   - qalita.column_position(columns, 'max_loaded_at') + 1) -%}
  {%- set rows = [] -%}
  {#- Every `a.b` costs a sandboxed getattr (the bulk of a row's time): each is read once. -#}
  {%- for result in results -%}
    {%- set node = result.node -%}
    {%- if node -%}
    {%- set resource_type = node.resource_type | string -%}
    {%- set status = result.status | string -%}
    {#- timing datetimes are naive UTC; `execute`, the step that ran the node, comes last -#}
    {%- set timing = result.timing -%}
    {%- set t = timing[-1] if timing else none -%}
    {%- if t and t.name != 'execute' -%}{%- set t = none -%}{%- endif -%}
    {%- set started = t.started_at if t else none -%}
    {%- set completed = t.completed_at if t else none -%}
    {%- set cfg = node.config -%}
    {%- set message = result.message -%}
    {%- set relation_name = node.relation_name -%}
    {%- set test = no_test -%}
    {%- if resource_type == 'test' or resource_type == 'unit_test' -%}
      {#- singular tests and unit tests have neither test_metadata nor column_name. A unit test's
          subject is the model it tests, tested_node_unique_id (the compiled unit test's
          depends_on lists its fixture inputs); source and singular tests carry no attached_node:
          their first dependency is the subject -#}
      {%- set meta = (node.test_metadata or none) if resource_type == 'test' else none -%}
      {%- if resource_type == 'unit_test' -%}
        {%- set attached = node.tested_node_unique_id -%}
      {%- else -%}
        {%- set attached = node.attached_node if meta else none -%}
      {%- endif -%}
      {%- if not attached -%}{%- set attached = (node.depends_on.nodes or [none])[0] -%}{%- endif -%}
      {%- set severity = cfg.severity -%}
      {#- severity warn_if error_if test_name test_namespace test_type column_name attached_node -#}
      {%- set test = [
          (severity | lower) if severity else none, cfg.warn_if, cfg.error_if,
          meta.name if meta else node.name, meta.namespace if meta else none,
          ('generic' if meta else 'singular') if resource_type == 'test' else 'unit',
          node.column_name if meta else none, attached] -%}
    {%- endif -%}
    {%- set freshness = no_freshness -%}
    {%- if resource_type == 'source' -%}
      {#- a freshness runtime error carries no max_loaded_at, snapshotted_at or age -#}
      {%- set max_loaded_at = result.max_loaded_at -%}
      {%- set snapshotted_at = result.snapshotted_at -%}
      {%- set age = result.age -%}
      {#- max_loaded_at, snapshotted_at, age, freshness_criteria -#}
      {%- set freshness = [
          qalita.ts(max_loaded_at) if max_loaded_at is defined else none,
          qalita.ts(snapshotted_at) if snapshotted_at is defined else none,
          age if age is defined else none,
          tojson(node.freshness.to_dict()) if node.freshness else none] -%}
    {%- endif -%}
    {#- in result_columns() order: invocation_id unique_id resource_type name package_name status
        status_normalised failures rows_affected message execution_time started_at completed_at
        thread_id, the test part, tags materialization relation_name, the freshness part,
        recorded_at. Control characters in any text are handled once per chunk (write/encode.sql). -#}
    {%- do rows.append([
        invocation_id, node.unique_id, resource_type, node.name, node.package_name, status,
        'failed' if status == 'error' and resource_type == 'source' else statuses.get(status, status),
        result.failures, (result.adapter_response or {}).get('rows_affected'),
        message, result.execution_time, (started | string) if started else none,
        (completed | string) if completed else none, result.thread_id]
      + test + [node.tags or [], cfg.materialized if cfg else none,
                relation_name if relation_name is defined else none]
      + freshness + [recorded_at]) -%}
    {%- endif -%}
  {%- endfor -%}
  {#- a row builder out of step with the column list would shift every column after the slip -#}
  {%- if rows and rows[0] | length != columns | length -%}
    {%- do exceptions.raise_compiler_error('qalita: a result row has ' ~ rows[0] | length ~ ' values for '
                                           ~ columns | length ~ ' columns') -%}
  {%- endif -%}
  {{ return(rows) }}
{% endmacro %}
