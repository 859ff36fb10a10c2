{#- JSON access for the Compass models, identical on DuckDB and PostgreSQL.

    Paths are dotted strings whose all-digit segments are array indexes: 'metric.0.values'.
    Text extraction returns SQL text (NULL for a JSON null or a missing key); numbers are then
    cast by the caller, so '1.50' (PostgreSQL) and '1.5' (DuckDB) give the same double.

    JSON has no dbt cross-database macro: every dispatched macro here has a duckdb__ and a
    postgres__ body, and its default__ raises a compiler error naming the supported adapters
    (compass_unsupported_adapter). The macros without dispatch are plain SQL over those. -#}

{% macro compass_json_path_duckdb(path) -%}
  {%- set parts = [] -%}
  {%- for seg in path.split('.') if seg -%}
    {%- do parts.append('[' ~ seg ~ ']' if seg.isdigit() else '.' ~ seg) -%}
  {%- endfor -%}
  '${{ parts | join('') }}'
{%- endmacro %}

{% macro compass_json_path_postgres(path) -%}
  '{ {{- path.split('.') | reject('equalto', '') | join(',') -}} }'
{%- endmacro %}

{#- Text to the adapter's JSON type (parsed once; later extractions read the parsed value). -#}
{% macro json_parse(expr) %}{{ return(adapter.dispatch('json_parse')(expr)) }}{% endmacro %}
{% macro default__json_parse(expr) %}{{ compass_unsupported_adapter('json_parse') }}{% endmacro %}
{% macro duckdb__json_parse(expr) %}cast({{ expr }} as json){% endmacro %}
{#- jsonb: binary, so repeated extraction does not re-parse the text. -#}
{% macro postgres__json_parse(expr) %}cast({{ expr }} as jsonb){% endmacro %}

{#- A text column ready for extraction: jsonb on PostgreSQL; on DuckDB the text itself (its
    JSON functions read text directly, a cast to JSON would parse it once more). -#}
{% macro json_doc(expr) %}{{ return(adapter.dispatch('json_doc')(expr)) }}{% endmacro %}
{% macro default__json_doc(expr) %}{{ compass_unsupported_adapter('json_doc') }}{% endmacro %}
{% macro duckdb__json_doc(expr) %}{{ expr }}{% endmacro %}
{% macro postgres__json_doc(expr) %}cast({{ expr }} as jsonb){% endmacro %}

{#- A JSON value as text (scalars unquoted). -#}
{% macro json_text(doc, path) %}{{ return(adapter.dispatch('json_text')(doc, path)) }}{% endmacro %}
{% macro default__json_text(doc, path) %}{{ compass_unsupported_adapter('json_text') }}{% endmacro %}
{% macro duckdb__json_text(doc, path) %}json_extract_string({{ doc }}, {{ compass_json_path_duckdb(path) }}){% endmacro %}
{% macro postgres__json_text(doc, path) %}({{ doc }} #>> {{ compass_json_path_postgres(path) }}){% endmacro %}

{#- A JSON sub-document (SQL NULL when the key is missing). -#}
{% macro json_get(doc, path) %}{{ return(adapter.dispatch('json_get')(doc, path)) }}{% endmacro %}
{% macro default__json_get(doc, path) %}{{ compass_unsupported_adapter('json_get') }}{% endmacro %}
{% macro duckdb__json_get(doc, path) %}json_extract({{ doc }}, {{ compass_json_path_duckdb(path) }}){% endmacro %}
{% macro postgres__json_get(doc, path) %}({{ doc }} #> {{ compass_json_path_postgres(path) }}){% endmacro %}

{#- Typed scalars: the same cast on both adapters. -#}
{% macro json_number(doc, path) %}cast({{ json_text(doc, path) }} as double precision){% endmacro %}
{% macro json_integer(doc, path) %}cast(round(cast({{ json_text(doc, path) }} as double precision)) as bigint){% endmacro %}
{% macro json_boolean(doc, path) %}cast({{ json_text(doc, path) }} as boolean){% endmacro %}

{#- Length of a JSON array (NULL when the value is not an array). -#}
{% macro json_array_size(doc, path) %}{{ return(adapter.dispatch('json_array_size')(doc, path)) }}{% endmacro %}
{% macro default__json_array_size(doc, path) %}{{ compass_unsupported_adapter('json_array_size') }}{% endmacro %}
{% macro duckdb__json_array_size(doc, path) %}(case when json_type({{ doc }}, {{ compass_json_path_duckdb(path) }}) = 'ARRAY' then json_array_length({{ doc }}, {{ compass_json_path_duckdb(path) }}) end){% endmacro %}
{% macro postgres__json_array_size(doc, path) %}(case when jsonb_typeof({{ json_get(doc, path) }}) = 'array' then jsonb_array_length({{ json_get(doc, path) }}) end){% endmacro %}

{#- FROM-clause fragment: one row per element of the array at `path`, as `alias.value` (JSON)
    and, with with_index=true, `alias.idx` (0-based). Anything but an array gives no rows. -#}
{% macro json_array_rows(doc, path, alias, with_index=false) %}{{ return(adapter.dispatch('json_array_rows')(doc, path, alias, with_index)) }}{% endmacro %}
{% macro default__json_array_rows(doc, path, alias, with_index) %}{{ compass_unsupported_adapter('json_array_rows') }}{% endmacro %}
{#- DuckDB: the `[*]` wildcard returns a list (empty for a missing key or a non-array) that
    unnest expands natively; json_each is several times slower on large inputs. -#}
{% macro duckdb__json_array_rows(doc, path, alias, with_index) -%}
{%- set wildcard = compass_json_path_duckdb(path)[:-1] ~ "[*]'" -%}
cross join lateral (
    {%- if with_index %}
    select unnest(elements) as value, generate_subscripts(elements, 1) - 1 as idx
    from (select json_extract({{ doc }}, {{ wildcard }}) as elements) as listed
    {%- else %}
    select unnest(json_extract({{ doc }}, {{ wildcard }})) as value
    {%- endif %}
) as {{ alias }}
{%- endmacro %}
{% macro postgres__json_array_rows(doc, path, alias, with_index) -%}
cross join lateral (
    select e.value as value, cast(e.ord - 1 as integer) as idx
    from jsonb_array_elements(
        case when jsonb_typeof({{ json_get(doc, path) }}) = 'array' then {{ json_get(doc, path) }} else '[]'::jsonb end
    ) with ordinality as e(value, ord)
) as {{ alias }}
{%- endmacro %}

{#- A SELECT of `relation` with one row per element of the array at `path` of `doc`: the
    `carry` columns, then one typed column per field of `fields` = [(column, path in the
    element, kind)], kind text | number | integer | boolean | json. Anything but an array gives
    no rows. -#}
{% macro json_unnest_records(relation, carry, doc, path, fields) %}{{ return(adapter.dispatch('json_unnest_records')(relation, carry, doc, path, fields)) }}{% endmacro %}
{% macro default__json_unnest_records(relation, carry, doc, path, fields) %}{{ compass_unsupported_adapter('json_unnest_records') }}{% endmacro %}

{#- DuckDB: json_transform parses each array once into native structs (one pass for all fields),
    and a select-list unnest expands them. Not a LATERAL join: DuckDB would de-duplicate and
    hash-join on the (large) JSON text of the correlated column. -#}
{% macro duckdb__json_unnest_records(relation, carry, doc, path, fields) -%}
  {%- set duck_types = {'text': 'VARCHAR', 'number': 'DOUBLE', 'integer': 'DOUBLE', 'boolean': 'BOOLEAN', 'json': 'JSON'} -%}
  {%- set structure = {} -%}
  {%- for column, field_path, kind in fields -%}
    {%- set node = namespace(d=structure) -%}
    {%- for seg in field_path.split('.') -%}
      {%- if loop.last -%}
        {%- do node.d.update({seg: duck_types[kind]}) -%}
      {%- else -%}
        {%- if seg not in node.d -%}{%- do node.d.update({seg: {}}) -%}{%- endif -%}
        {%- set node.d = node.d[seg] -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- set array_path = compass_json_path_duckdb(path) -%}
select
    {%- for c in carry %}
    {{ c }},
    {%- endfor %}
    {%- for column, field_path, kind in fields %}
    {% if kind == 'integer' -%}
    cast(round(record."{{ field_path.split('.') | join('"."') }}") as bigint)
    {%- else -%}
    record."{{ field_path.split('.') | join('"."') }}"
    {%- endif %} as {{ column }}{% if not loop.last %},{% endif %}
    {%- endfor %}
from (
    select
        {%- for c in carry %}
        {{ c }},
        {%- endfor %}
        unnest(json_transform(
            case when json_type({{ doc }}, {{ array_path }}) = 'ARRAY' then json_extract({{ doc }}, {{ array_path }}) end,
            '{{ tojson([structure]) }}'
        )) as record
    from {{ relation }}
) as unnested
{%- endmacro %}

{% macro postgres__json_unnest_records(relation, carry, doc, path, fields) -%}
  {%- set pg_types = {'number': 'double precision', 'boolean': 'boolean'} -%}
select
    {%- for c in carry %}
    {{ c }},
    {%- endfor %}
    {%- for column, field_path, kind in fields %}
    {% if kind == 'json' -%}
    {{ json_get('e.value', field_path) }}
    {%- elif kind == 'integer' -%}
    cast(round(cast({{ json_text('e.value', field_path) }} as double precision)) as bigint)
    {%- elif kind in pg_types -%}
    cast({{ json_text('e.value', field_path) }} as {{ pg_types[kind] }})
    {%- else -%}
    {{ json_text('e.value', field_path) }}
    {%- endif %} as {{ column }}{% if not loop.last %},{% endif %}
    {%- endfor %}
from {{ relation }}
cross join lateral jsonb_array_elements(
    case when jsonb_typeof({{ json_get(doc, path) }}) = 'array' then {{ json_get(doc, path) }} else '[]'::jsonb end
) as e(value)
{%- endmacro %}

{#- FROM-clause fragment: one row per key of the object at `path`, as `alias.key` and
    `alias.value_text` (scalars unquoted). Anything but an object gives no rows. -#}
{% macro json_object_rows(doc, path, alias) %}{{ return(adapter.dispatch('json_object_rows')(doc, path, alias)) }}{% endmacro %}
{% macro default__json_object_rows(doc, path, alias) %}{{ compass_unsupported_adapter('json_object_rows') }}{% endmacro %}
{#- DuckDB: cast the object to a MAP and unnest its keys and values side by side. -#}
{% macro duckdb__json_object_rows(doc, path, alias) -%}
cross join lateral (
    select unnest(map_keys(entries)) as key, unnest(map_values(entries)) as value_text
    from (
        select case when json_type({{ doc }}, {{ compass_json_path_duckdb(path) }}) = 'OBJECT'
            then cast(json_extract({{ doc }}, {{ compass_json_path_duckdb(path) }}) as map(varchar, varchar)) end as entries
    ) as mapped
) as {{ alias }}
{%- endmacro %}
{% macro postgres__json_object_rows(doc, path, alias) -%}
cross join lateral (
    select e.key as key, e.value as value_text
    from jsonb_each_text(
        case when jsonb_typeof({{ json_get(doc, path) }}) = 'object' then {{ json_get(doc, path) }} else '{}'::jsonb end
    ) as e(key, value)
) as {{ alias }}
{%- endmacro %}

{#- Many fields of one document, parsed once: json_extract_fields(doc, fields) in a CTE marked
    `materialized`, then json_unpack(column, fields) in the next one reads every field from it.
    DuckDB: a list of the sub-documents (one parse of the text for all paths), read by position.
    PostgreSQL: the jsonb document itself, read by path (jsonb look-ups are cheap; a jsonb[] of
    the paths would cast the text once per path). The CTE must be materialized because
    PostgreSQL inlines a plain CTE and repeats its expression at every reference: the parse would
    then run once per field read downstream. -#}
{% macro json_extract_many(doc, paths) %}{{ return(adapter.dispatch('json_extract_many')(doc, paths)) }}{% endmacro %}
{% macro default__json_extract_many(doc, paths) %}{{ compass_unsupported_adapter('json_extract_many') }}{% endmacro %}
{% macro duckdb__json_extract_many(doc, paths) -%}
json_extract({{ doc }}, [{% for p in paths %}{{ compass_json_path_duckdb(p) }}{% if not loop.last %}, {% endif %}{% endfor %}])
{%- endmacro %}
{% macro postgres__json_extract_many(doc, paths) -%}
{{ doc }}
{%- endmacro %}

{#- DuckDB only: item n (1-based) of a json_extract_many list, as JSON and as text. -#}
{% macro duckdb_json_item(list, n) %}{{ list }}[{{ n }}]{% endmacro %}
{% macro duckdb_json_item_text(list, n) %}{{ json_text(list ~ '[' ~ n ~ ']', '') }}{% endmacro %}

{#- Select-list entries for `fields` = [(column, path, kind)], kind text | number | integer |
    boolean | json, read from a json_extract_fields(doc, fields) column named `list`. -#}
{% macro json_unpack(list, fields) %}{{ return(adapter.dispatch('json_unpack')(list, fields)) }}{% endmacro %}
{% macro default__json_unpack(list, fields) %}{{ compass_unsupported_adapter('json_unpack') }}{% endmacro %}
{% macro duckdb__json_unpack(list, fields) -%}
  {%- for column, path, kind in fields %}
    {{ json_typed(duckdb_json_item(list, loop.index), duckdb_json_item_text(list, loop.index), kind) }} as {{ column }}{% if not loop.last %},{% endif %}
  {%- endfor %}
{%- endmacro %}
{% macro postgres__json_unpack(list, fields) -%}
  {%- for column, path, kind in fields %}
    {{ json_typed(json_get(list, path), json_text(list, path), kind) }} as {{ column }}{% if not loop.last %},{% endif %}
  {%- endfor %}
{%- endmacro %}

{#- One field as its kind, given its JSON value and its text. -#}
{% macro json_typed(value, text, kind) -%}
  {%- if kind == 'json' %}{{ value }}
  {%- elif kind == 'number' %}cast({{ text }} as double precision)
  {%- elif kind == 'integer' %}cast(round(cast({{ text }} as double precision)) as bigint)
  {%- elif kind == 'boolean' %}cast({{ text }} as boolean)
  {%- else %}{{ text }}
  {%- endif %}
{%- endmacro %}

{#- json_extract_many over the paths of `fields` (same order as json_unpack reads them). -#}
{% macro json_extract_fields(doc, fields) -%}
  {%- set paths = [] -%}
  {%- for column, path, kind in fields -%}{%- do paths.append(path) -%}{%- endfor -%}
  {{ json_extract_many(doc, paths) }}
{%- endmacro %}

{#- A text value as a JSON string literal, for canonical JSON text built by string_agg. -#}
{% macro json_quote(expr) %}{{ return(adapter.dispatch('json_quote')(expr)) }}{% endmacro %}
{% macro default__json_quote(expr) %}{{ compass_unsupported_adapter('json_quote') }}{% endmacro %}
{% macro duckdb__json_quote(expr) %}cast(to_json(cast({{ expr }} as varchar)) as varchar){% endmacro %}
{% macro postgres__json_quote(expr) %}cast(to_jsonb(cast({{ expr }} as text)) as text){% endmacro %}

{#- JSON value to text (to aggregate or compare it; re-parse with json_parse). -#}
{% macro json_to_text(expr) %}cast({{ expr }} as varchar){% endmacro %}

{#- Aggregate one JSON object per row, built from (key, SQL expression) pairs, into a JSON
    array ordered by the expressions of `order_by` (a list). -#}
{% macro json_object_array_agg(pairs, order_by) %}{{ return(adapter.dispatch('json_object_array_agg')(pairs, order_by)) }}{% endmacro %}
{% macro default__json_object_array_agg(pairs, order_by) %}{{ compass_unsupported_adapter('json_object_array_agg') }}{% endmacro %}
{#- DuckDB: a list of native structs, sorted by list_sort on leading sort keys and rendered once
    by to_json (an ORDER BY inside the aggregate, or json_object per row, is several times slower
    on many groups). -#}
{% macro duckdb__json_object_array_agg(pairs, order_by) -%}
to_json(list_transform(list_sort(list(struct_pack(
    {%- for o in order_by %}sort_key_{{ loop.index }} := {{ o }}, {% endfor -%}
    item := struct_pack({% for k, v in pairs %}{{ k }} := {{ v }}{% if not loop.last %}, {% endif %}{% endfor %})
))), lambda entry: entry.item))
{%- endmacro %}
{% macro postgres__json_object_array_agg(pairs, order_by) -%}
jsonb_agg(jsonb_build_object({% for k, v in pairs %}'{{ k }}', {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}) order by {{ order_by | join(', ') }})
{%- endmacro %}
