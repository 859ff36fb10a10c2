{#- PostgreSQL writer. One round trip, every statement inside a guarded DO block whose handler keeps
    the error in a session setting instead of aborting the transaction: an error raised to the
    client while dbt renders an on-run-end hook is not caught by dbt (the run exits 2), and Jinja
    has no way to catch it either, so nothing the hook sends may fail at the top level.
    The handler names query_canceled explicitly: PL/pgSQL's `WHEN OTHERS` matches every error
    except query_canceled (a statement_timeout, a lock_timeout is lock_not_available, an
    administrator's pg_cancel_backend) and assert_failure.
    After a failure the remaining blocks do nothing, the transaction is rolled back (nothing
    half-written) and one warning names the invocation. -#}

{% macro postgres__write_invocation(invocation, rows) %}
  {%- set bounds = qalita.pg_bounds() -%}
  {%- if bounds is string -%}
    {{ return(qalita.hook_failed(bounds)) }}
  {%- endif -%}
  {%- set database = qalita.results_database() -%}
  {%- set schema = qalita.results_schema() -%}
  {%- set inv_rel = qalita.relation(database, schema, 'qalita_invocations') -%}
  {%- set res_rel = qalita.relation(database, schema, 'qalita_results') -%}
  {%- set id = qalita.quote_literal(invocation_id) -%}
  {#- concurrent invocations must not race on CREATE SCHEMA / TABLE: one lock per transaction -#}
  {%- set first = ["perform pg_advisory_xact_lock(hashtext('qalita.record_results'));",
                   qalita.pg_ddl(database, schema),
                   qalita.pg_execute('delete from ' ~ res_rel ~ ' where invocation_id = ' ~ id),
                   qalita.pg_execute('delete from ' ~ inv_rel ~ ' where invocation_id = ' ~ id)] -%}
  {%- set blocks = [qalita.pg_start(bounds), qalita.pg_guarded(first)] -%}
  {%- set columns = qalita.result_columns() -%}
  {%- for chunk in qalita.chunk_rows(rows) -%}
    {%- do blocks.append(qalita.pg_guarded([qalita.pg_execute(qalita.postgres__insert_json_sql(res_rel, columns, chunk))])) -%}
  {%- endfor -%}
  {%- do blocks.append(qalita.pg_guarded([qalita.pg_execute(qalita.postgres__insert_json_sql(
        inv_rel, qalita.invocation_columns(), tojson([invocation])))])) -%}
  {#- its last statement reports the first error, if any -#}
  {%- do blocks.append("select current_setting('qalita.error', true)") -%}
  {#- Its own transaction, begun and ended in SQL: run_query opens none through dbt, and psycopg2's
      implicit one ends with an SQL commit (a second hook's statements would each commit alone).
      When psycopg2 has one open, `begin` is only a notice. -#}
  {%- set error = run_query('begin;\n' ~ blocks | join(';\n')).columns[0].values()[0] -%}
  {%- do run_query('rollback' if error else 'commit') -%}
  {%- if error -%}
    {%- do qalita.hook_failed(error) -%}
  {%- endif -%}
{% endmacro %}

{#- The hook's own bounds, in milliseconds: var qalita_lock_timeout (default 5s), the longest it
    waits for any lock (the advisory lock, the results tables), and var qalita_statement_timeout
    (default 30s), the longest any of its statements runs. A stricter limit already set for the
    session (on the role, the database or in PGOPTIONS) is kept. '0' means no bound of the hook's
    own. Returns a message when a var is not a duration. -#}
{% macro pg_bounds() %}
  {%- set units = {'us': 0.001, 'ms': 1, 's': 1000, 'min': 60000, 'h': 3600000, 'd': 86400000} -%}
  {%- set bounds = {} -%}
  {%- for setting, default in [('lock_timeout', '5s'), ('statement_timeout', '30s')] -%}
    {%- set name = 'qalita_' ~ setting -%}
    {%- set given = var(name, default) | string -%}
    {%- set parsed = modules.re.fullmatch('\\s*([0-9]+(?:\\.[0-9]+)?)\\s*(us|ms|s|min|h|d)?\\s*', given) -%}
    {%- if not parsed -%}
      {{ return('var ' ~ name ~ " is '" ~ given ~ "', not a duration such as '5s', '500ms' or '0' for none") }}
    {%- endif -%}
    {%- set ms = (parsed.group(1) | float) * units[parsed.group(2) or 'ms'] -%}
    {%- do bounds.update({setting: ([ms | round(0, 'ceil') | int, 1] | max) if ms > 0 else 0}) -%}
  {%- endfor -%}
  {{ return(bounds) }}
{% endmacro %}

{#- The round trip's first statement: clears the error of a previous invocation in this session and
    sets the bounds for this transaction only (set_config(..., true) is SET LOCAL). pg_settings gives
    the current values in milliseconds, '0' being none. -#}
{% macro pg_start(bounds) %}
  {%- set parts = ["set_config('qalita.error', '', false)"] -%}
  {%- for setting, ms in bounds.items() if ms -%}
    {%- do parts.append("set_config('" ~ setting ~ "', (select case when setting::bigint > 0 and setting::bigint < "
                        ~ ms ~ " then setting else '" ~ ms ~ "' end from pg_catalog.pg_settings where name = '"
                        ~ setting ~ "'), true)") -%}
  {%- endfor -%}
  {{ return('select ' ~ parts | join(', ')) }}
{% endmacro %}

{#- PL/pgSQL that brings both tables to the package's shape, reading the catalog inside the guard
    (a separate catalog query would be one more statement that can fail unguarded). In the steady
    state it only reads the catalog: CREATE / ALTER ... IF NOT EXISTS would take an exclusive lock
    even when they change nothing. -#}
{% macro pg_ddl(database, schema) %}
  {%- set body = [] -%}
  {%- for table, columns in qalita.tables() -%}
    {%- set relation = qalita.relation(database, schema, table) -%}
    {%- set names = columns | map(attribute=0) | list -%}
    {%- set changes = [qalita.pg_execute(qalita.create_schema_sql(database, schema)),
                       qalita.pg_execute(qalita.create_table_sql(relation, columns))] -%}
    {%- for name, kind in columns -%}
      {%- do changes.append(qalita.pg_execute(qalita.add_column_sql(relation, name, kind))) -%}
    {%- endfor -%}
    {#- the catalog is looked up by schema.table: to_regclass refuses a database-qualified name -#}
    {%- do body.append("if (select count(*) from pg_catalog.pg_attribute where attrelid = to_regclass("
                       ~ qalita.quote_literal(qalita.relation(none, schema, table))
                       ~ ") and attnum > 0 and not attisdropped and attname = any(array["
                       ~ "'" ~ names | join("', '") ~ "'"
                       ~ "])) < " ~ names | length ~ " then " ~ changes | join(' ') ~ " end if;") -%}
  {%- endfor -%}
  {{ return(body | join(' ')) }}
{% endmacro %}

{#- One statement run by EXECUTE, dollar-quoted with a tag that does not occur in it: data never
    holds `$` (sql_json escapes it) but the schema or database name may. -#}
{% macro pg_execute(sql) %}
  {%- set ns = namespace(tag='$qalita_sql$', n=0) -%}
  {%- for _ in range(100) if ns.tag in sql -%}
    {%- set ns.n = ns.n + 1 -%}
    {%- set ns.tag = '$qalita_sql' ~ ns.n ~ '$' -%}
  {%- endfor -%}
  {{ return('execute ' ~ ns.tag ~ sql ~ ns.tag ~ ';') }}
{% endmacro %}

{% macro pg_guarded(body) %}
  {%- set code = "begin if coalesce(current_setting('qalita.error', true), '') <> '' then return; end if; "
                 ~ body | join(' ')
                 ~ " exception when query_canceled or others then perform set_config('qalita.error', sqlerrm, false); end" -%}
  {%- set ns = namespace(tag='$qalita_do$', n=0) -%}
  {%- for _ in range(100) if ns.tag in code -%}
    {%- set ns.n = ns.n + 1 -%}
    {%- set ns.tag = '$qalita_do' ~ ns.n ~ '$' -%}
  {%- endfor -%}
  {{ return('do ' ~ ns.tag ~ ' ' ~ code ~ ' ' ~ ns.tag) }}
{% endmacro %}

{% macro postgres__insert_json_sql(relation, columns, rows_json) %}
  {#- jsonb, parsed once: on json every ->> would re-parse the element (7x slower for 1,000 rows) -#}
  {%- set casts = {'text': '', 'int': '::integer', 'bigint': '::bigint',
                   'double': '::double precision', 'timestamp': '::timestamp'} -%}
  {%- set picks = [] -%}
  {%- for name, kind in columns -%}{%- do picks.append('(r->>' ~ loop.index0 ~ ')' ~ casts[kind]) -%}{%- endfor -%}
  {{ return('insert into ' ~ relation ~ ' (' ~ columns | map(attribute=0) | join(', ') ~ ') select '
            ~ picks | join(', ') ~ " from jsonb_array_elements('" ~ qalita.sql_json(rows_json) ~ "'::jsonb) as e(r)") }}
{% endmacro %}
