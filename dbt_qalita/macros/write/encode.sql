{#- Writing rows: JSON-encode the rows (lists, see result_rows), group them into chunks bounded by
    row count and by statement size, and insert each chunk as ONE string literal that the database
    expands (DuckDB from_json, PostgreSQL jsonb_array_elements). One literal per chunk keeps the SQL
    parser's work constant per chunk (multi-row VALUES is what makes DuckDB slow), and JSON escaping
    plus the two substitutions in sql_json() mean no name or message can close the literal. -#}

{#- Control characters \x00-\x1f other than tab, newline and carriage return are stored as U+FFFD
    (the Unicode replacement character), on both adapters and in every text column: PostgreSQL text
    cannot hold NUL at all (jsonb refuses the whole literal), and one rule for both keeps the tables
    alike. A lone UTF-16 surrogate (from undecodable bytes) becomes U+FFFD for the same reason.
    tojson writes these characters as \u00XX, \b or \f; an escaped backslash (`\\`) is first set aside
    as \x01, which JSON text cannot contain raw, so that `\\u0000` (a backslash followed by the text
    "u0000") is left as it is. -#}
{% macro replace_control_characters(rows_json) %}
  {%- if '\\u' not in rows_json and '\\b' not in rows_json and '\\f' not in rows_json -%}
    {{ return(rows_json) }}
  {%- endif -%}
  {%- set escape = '~(?:u00(?:0[0-8bcef]|1[0-9a-f])|[bf]|ud[89ab][0-9a-f]{2}(?!~ud[c-f][0-9a-f]{2})'
                   ~ '|(?<!~ud[89ab][0-9a-f]{2}~)ud[c-f][0-9a-f]{2})' -%}
  {%- set pattern = escape.replace('~', '\\\\') -%}
  {%- set text = modules.re.sub(pattern, '\\\\ufffd', rows_json.replace('\\\\', '\x01')) -%}
  {{ return(text.replace('\x01', '\\\\')) }}
{% endmacro %}

{% macro sql_json(rows_json) %}
  {#- `'` and `$` only ever occur inside JSON strings, where \u0027 / \u0024 decode to the same
      characters: the literal can then contain neither a quote nor a dollar-quote delimiter. -#}
  {{ return(qalita.replace_control_characters(rows_json).replace("'", "\\u0027").replace("$", "\\u0024")) }}
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
