{#- Writing rows: JSON-encode the rows (lists, see result_rows), group them into chunks bounded by
    row count and by statement size, and insert each chunk as ONE string literal that the database
    expands (DuckDB from_json, PostgreSQL jsonb_array_elements). One literal per chunk keeps the SQL
    parser's work constant per chunk (multi-row VALUES is what makes DuckDB slow), and JSON escaping
    plus the two substitutions in sql_json() mean no name or message can close the literal. -#}

{% macro sql_json(rows_json) %}
  {#- `'` and `$` only ever occur inside JSON strings, where \u0027 / \u0024 decode to the same
      characters: the literal can then contain neither a quote nor a dollar-quote delimiter. -#}
  {{ return(rows_json.replace("'", "\\u0027").replace("$", "\\u0024")) }}
{% endmacro %}

{% macro chunk_rows(rows) %}
  {#- Slices of at most qalita_batch_rows rows, each encoded by one tojson call; a slice whose JSON
      exceeds qalita_batch_chars (long messages) is split row by row in chunk_rows_bounded. -#}
  {%- set max_rows = [var('qalita_batch_rows', 5000) | int, 1] | max -%}
  {%- set max_chars = var('qalita_batch_chars', 4000000) | int -%}
  {%- set chunks = [] -%}
  {%- for start in range(0, rows | length, max_rows) -%}
    {%- set part = rows[start:start + max_rows] -%}
    {%- set whole = tojson(part) -%}
    {%- if whole | length <= max_chars -%}
      {%- do chunks.append(whole) -%}
    {%- else -%}
      {%- do chunks.extend(qalita.chunk_rows_bounded(part, max_chars)) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(chunks) }}
{% endmacro %}

{% macro chunk_rows_bounded(rows, max_chars) %}
  {%- set chunks = [] -%}
  {%- set current = [] -%}
  {%- set ns = namespace(size=0) -%}
  {%- for row in rows -%}
    {%- set encoded = tojson(row) -%}
    {%- if current and ns.size + encoded | length > max_chars -%}
      {%- do chunks.append('[' ~ current | join(',') ~ ']') -%}
      {%- do current.clear() -%}
      {%- set ns.size = 0 -%}
    {%- endif -%}
    {%- do current.append(encoded) -%}
    {%- set ns.size = ns.size + encoded | length + 1 -%}
  {%- endfor -%}
  {%- if current -%}{%- do chunks.append('[' ~ current | join(',') ~ ']') -%}{%- endif -%}
  {{ return(chunks) }}
{% endmacro %}

{#- insert_json_sql(relation, columns, rows_json): called through
    adapter.dispatch('insert_json_sql', 'qalita'); rows_json is a JSON array of row lists. -#}

{% macro default__insert_json_sql(relation, columns, rows_json) %}
  {#- jsonb, parsed once: on json every ->> would re-parse the element (7x slower for 1,000 rows) -#}
  {%- set casts = {'text': '', 'int': '::integer', 'bigint': '::bigint',
                   'double': '::double precision', 'timestamp': '::timestamp'} -%}
  {%- set picks = [] -%}
  {%- for name, kind in columns -%}{%- do picks.append('(r->>' ~ loop.index0 ~ ')' ~ casts[kind]) -%}{%- endfor -%}
  {{ return('insert into ' ~ relation ~ ' (' ~ columns | map(attribute=0) | join(', ') ~ ') select '
            ~ picks | join(', ') ~ " from jsonb_array_elements('" ~ qalita.sql_json(rows_json) ~ "'::jsonb) as e(r)") }}
{% endmacro %}

{% macro duckdb__insert_json_sql(relation, columns, rows_json) %}
  {#- every value is read as VARCHAR (a JSON list as its JSON text), then cast by position -#}
  {%- set picks = [] -%}
  {%- for name, kind in columns -%}
    {%- do picks.append('r[' ~ loop.index ~ ']' if kind == 'text' else 'cast(r[' ~ loop.index ~ '] as ' ~ kind ~ ')') -%}
  {%- endfor -%}
  {{ return('insert into ' ~ relation ~ ' (' ~ columns | map(attribute=0) | join(', ') ~ ') select '
            ~ picks | join(', ') ~ " from (select unnest(from_json('" ~ qalita.sql_json(rows_json)
            ~ "', '[[\"VARCHAR\"]]')) as r)") }}
{% endmacro %}
