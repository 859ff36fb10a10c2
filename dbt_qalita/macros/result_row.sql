{#- dbt results -> rows (dicts keyed by result_columns()). This loop is the hook's hot path: it runs
    once per result, so it is one macro with everything inlined (a macro call costs more than the
    rest of a row), touches neither the database nor the manifest graph, and counts statuses as it
    goes. -#}

{% macro status_map() %}
  {#- raw dbt status -> normalised status; a freshness `error` (older than error_after) is a
      finding, so it is `failed`, while a freshness `runtime error` is `errored`. -#}
  {{ return({'pass': 'passed', 'success': 'passed', 'no-op': 'passed', 'warn': 'warned',
             'fail': 'failed', 'error': 'errored', 'runtime error': 'errored',
             'skipped': 'skipped'}) }}
{% endmacro %}

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
  {%- set statuses = qalita.status_map() -%}
  {%- set fmt = '%Y-%m-%d %H:%M:%S.%f' -%}
  {%- set nul = '\x00' -%}
  {%- set counts = {'passed': 0, 'warned': 0, 'failed': 0, 'errored': 0, 'skipped': 0} -%}
  {%- set rows = [] -%}
  {%- for result in results if result.node is defined and result.node is not none -%}
    {%- set node = result.node -%}
    {%- set resource_type = node.resource_type | string -%}
    {%- set status = result.status | string -%}
    {%- set normalised = statuses.get(status) -%}
    {%- if status == 'error' and resource_type == 'source' -%}{%- set normalised = 'failed' -%}{%- endif -%}
    {%- if normalised in counts -%}{%- do counts.update({normalised: counts[normalised] + 1}) -%}{%- endif -%}
    {#- timing datetimes are naive UTC; `execute`, the step that ran the node, comes last -#}
    {%- set t = result.timing[-1] if result.timing else none -%}
    {%- if t is not none and t.name != 'execute' -%}{%- set t = none -%}{%- endif -%}
    {%- set cfg = node.config -%}
    {%- set message = result.message -%}
    {%- set row = {
        'invocation_id': invocation_id,
        'unique_id': node.unique_id,
        'resource_type': resource_type,
        'name': node.name,
        'package_name': node.package_name,
        'status': status,
        'status_normalised': normalised or status,
        'failures': result.failures,
        'rows_affected': (result.adapter_response or {}).get('rows_affected'),
        'message': message.replace(nul, '') if message is string else message,
        'execution_time': result.execution_time,
        'started_at': t.started_at.strftime(fmt) if t and t.started_at else none,
        'completed_at': t.completed_at.strftime(fmt) if t and t.completed_at else none,
        'thread_id': result.thread_id,
        'tags': node.tags or [],
        'materialization': cfg.materialized if cfg is not none else none,
        'relation_name': node.relation_name if node.relation_name is defined else none,
        'recorded_at': recorded_at,
    } -%}
    {%- if resource_type == 'test' or resource_type == 'unit_test' -%}
      {#- singular tests and unit tests have neither test_metadata nor column_name -#}
      {%- set meta = (node.test_metadata or none) if resource_type == 'test' else none -%}
      {#- source tests and unit tests carry no attached_node: their first dependency is the subject -#}
      {%- set attached = node.attached_node if resource_type == 'test' else none -%}
      {%- if not attached -%}{%- set attached = (node.depends_on.nodes or [none])[0] -%}{%- endif -%}
      {%- do row.update({
          'severity': (cfg.get('severity') or '') | lower or none,
          'warn_if': cfg.get('warn_if'),
          'error_if': cfg.get('error_if'),
          'test_name': meta.name if meta else node.name,
          'test_namespace': meta.namespace if meta else none,
          'test_type': ('generic' if meta else 'singular') if resource_type == 'test' else 'unit',
          'column_name': node.column_name if meta else none,
          'attached_node': attached,
      }) -%}
    {%- elif resource_type == 'source' -%}
      {#- a freshness runtime error carries no max_loaded_at, snapshotted_at or age -#}
      {%- do row.update({
          'max_loaded_at': qalita.ts(result.max_loaded_at) if result.max_loaded_at is defined else none,
          'snapshotted_at': qalita.ts(result.snapshotted_at) if result.snapshotted_at is defined else none,
          'age': result.age if result.age is defined else none,
          'freshness_criteria': tojson(node.freshness.to_dict()) if node.freshness else none,
      }) -%}
    {%- endif -%}
    {%- do rows.append(row) -%}
  {%- endfor -%}
  {{ return({'rows': rows, 'counts': counts}) }}
{% endmacro %}
