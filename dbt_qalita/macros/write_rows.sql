{#- Writing rows: JSON-encode each row once, group rows into chunks bounded by row count and by
    statement size, and insert each chunk as ONE string literal that the database expands
    (DuckDB from_json, PostgreSQL json_populate_recordset). One literal per chunk keeps the SQL
    parser's work constant per chunk (multi-row VALUES is what makes DuckDB slow), and JSON escaping
    plus the two substitutions in sql_json() mean no name or message can close the literal. -#}

{% macro sql_json(rows_json) %}
  {#- `'` and `$` only ever occur inside JSON strings, where \u0027 / \u0024 decode to the same
      characters: the literal can then contain neither a quote nor a dollar-quote delimiter. -#}
  {{ return(rows_json.replace("'", "\\u0027").replace("$", "\\u0024")) }}
{% endmacro %}

{% macro chunk_rows(rows) %}
  {%- set max_rows = var('qalita_batch_rows', 5000) | int -%}
  {%- set max_chars = var('qalita_batch_chars', 4000000) | int -%}
  {#- the common case, one chunk: a single tojson call instead of one per row -#}
  {%- if rows | length <= max_rows -%}
    {%- set whole = tojson(rows) -%}
    {%- if whole | length <= max_chars -%}{{ return([whole] if rows else []) }}{%- endif -%}
  {%- endif -%}
  {%- set chunks = [] -%}
  {%- set current = [] -%}
  {%- set ns = namespace(size=0) -%}
  {%- for row in rows -%}
    {%- set encoded = tojson(row) -%}
    {%- if current and (current | length >= max_rows or ns.size + encoded | length > max_chars) -%}
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

{% macro insert_json_sql(relation, columns, rows_json) %}
  {{ return(adapter.dispatch('insert_json_sql', 'qalita')(relation, columns, rows_json)) }}
{% endmacro %}

{% macro default__insert_json_sql(relation, columns, rows_json) %}
  {%- set names = columns | map(attribute=0) | join(', ') -%}
  {{ return('insert into ' ~ relation ~ ' (' ~ names ~ ') select ' ~ names
            ~ ' from json_populate_recordset(null::' ~ relation ~ ", '" ~ qalita.sql_json(rows_json) ~ "')") }}
{% endmacro %}

{% macro duckdb__insert_json_sql(relation, columns, rows_json) %}
  {%- set structure = {} -%}
  {%- set types = {'text': 'VARCHAR', 'int': 'INTEGER', 'bigint': 'BIGINT', 'double': 'DOUBLE',
                   'timestamp': 'TIMESTAMP'} -%}
  {%- for name, kind in columns -%}{%- do structure.update({name: types[kind]}) -%}{%- endfor -%}
  {%- set names = columns | map(attribute=0) | join(', ') -%}
  {%- set picks = [] -%}
  {%- for name, kind in columns -%}{%- do picks.append('r.' ~ name) -%}{%- endfor -%}
  {{ return('insert into ' ~ relation ~ ' (' ~ names ~ ') select ' ~ picks | join(', ')
            ~ " from (select unnest(from_json('" ~ qalita.sql_json(rows_json) ~ "', '"
            ~ tojson([structure]) ~ "')) as r)") }}
{% endmacro %}
