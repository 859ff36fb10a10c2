{#- One dbt result -> one row (a dict keyed by result_columns()). Runs once per result, so it avoids
    anything that touches the database or the manifest graph. -#}

{% macro normalise_status(status, resource_type) %}
  {%- set s = (status or '') | string | lower -%}
  {%- if s in ('pass', 'success', 'no-op') -%}{{ return('passed') }}
  {%- elif s == 'warn' -%}{{ return('warned') }}
  {%- elif s == 'fail' -%}{{ return('failed') }}
  {#- a freshness `error` means the source is older than error_after: a finding, not a crash -#}
  {%- elif s == 'error' and resource_type == 'source' -%}{{ return('failed') }}
  {%- elif s in ('error', 'runtime error') -%}{{ return('errored') }}
  {%- elif s == 'skipped' -%}{{ return('skipped') }}
  {%- else -%}{{ return(s or none) }}
  {%- endif -%}
{% endmacro %}

{% macro ts(value) %}
  {#- UTC timestamps as 'YYYY-MM-DD HH:MM:SS.ffffff' (naive): both adapters cast that text. -#}
  {%- if value is none or value == '' -%}{{ return(none) }}{%- endif -%}
  {%- if value is string -%}
    {%- set v = value.replace('T', ' ').replace('Z', '') -%}
    {%- if '+' in v -%}{%- set v = v.split('+')[0] -%}{%- endif -%}
    {{ return(v) }}
  {%- endif -%}
  {%- if value.tzinfo is not none -%}
    {%- set value = value.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
  {%- endif -%}
  {{ return(value.strftime('%Y-%m-%d %H:%M:%S.%f')) }}
{% endmacro %}

{% macro clean_text(value) %}
  {#- PostgreSQL text cannot hold NUL; everything else is kept as is. -#}
  {%- if value is none -%}{{ return(none) }}{%- endif -%}
  {{ return((value | string).replace('\x00', '')) }}
{% endmacro %}

{% macro result_row(result, invocation_id, recorded_at) %}
  {%- set node = result.node -%}
  {%- set resource_type = node.resource_type | string -%}
  {%- set status = result.status | string -%}
  {#- the `execute` step's timing; a namespace because Jinja loops do not leak `set` -#}
  {%- set timing = namespace(started=none, completed=none) -%}
  {%- for t in (result.timing or []) if t.name == 'execute' -%}
    {%- set timing.started = t.started_at -%}
    {%- set timing.completed = t.completed_at -%}
  {%- endfor -%}
  {%- set response = result.adapter_response or {} -%}
  {%- set cfg = node.config -%}
  {%- set row = {
      'invocation_id': invocation_id,
      'unique_id': node.unique_id,
      'resource_type': resource_type,
      'name': qalita.clean_text(node.name),
      'package_name': node.package_name,
      'status': status,
      'status_normalised': qalita.normalise_status(status, resource_type),
      'failures': result.failures,
      'rows_affected': response.get('rows_affected'),
      'message': qalita.clean_text(result.message),
      'execution_time': result.execution_time,
      'started_at': qalita.ts(timing.started),
      'completed_at': qalita.ts(timing.completed),
      'thread_id': result.thread_id,
      'tags': tojson(node.tags or []),
      'materialization': cfg.get('materialized') if cfg is not none else none,
      'relation_name': node.relation_name if node.relation_name is defined else none,
      'recorded_at': recorded_at,
  } -%}
  {%- if resource_type in ('test', 'unit_test') -%}
    {%- set meta = node.test_metadata if node.test_metadata is defined else none -%}
    {%- set attached = node.attached_node if node.attached_node is defined else none -%}
    {#- source tests and unit tests carry no attached_node: their first dependency is the subject -#}
    {%- if not attached -%}
      {%- set attached = (node.depends_on.nodes or [none])[0] -%}
    {%- endif -%}
    {%- do row.update({
        'severity': (cfg.get('severity') or '') | lower or none,
        'warn_if': cfg.get('warn_if'),
        'error_if': cfg.get('error_if'),
        'test_name': qalita.clean_text(meta.name if meta else node.name),
        'test_namespace': meta.namespace if meta else none,
        'test_type': ('generic' if meta else 'singular') if resource_type == 'test' else 'unit',
        'column_name': qalita.clean_text(node.column_name if node.column_name is defined else none),
        'attached_node': attached,
    }) -%}
  {%- elif resource_type == 'source' -%}
    {%- set criteria = node.freshness if node.freshness is defined else none -%}
    {%- do row.update({
        'max_loaded_at': qalita.ts(result.max_loaded_at if result.max_loaded_at is defined else none),
        'snapshotted_at': qalita.ts(result.snapshotted_at if result.snapshotted_at is defined else none),
        'age': result.age if result.age is defined else none,
        'freshness_criteria': tojson(criteria.to_dict()) if criteria else none,
    }) -%}
  {%- endif -%}
  {{ return(row) }}
{% endmacro %}
