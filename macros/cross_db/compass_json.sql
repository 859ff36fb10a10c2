{#- JSON access for the Compass models, identical on DuckDB and PostgreSQL.

    Paths are dotted strings whose all-digit segments are array indexes: 'metric.0.values'.
    Text extraction returns SQL text (NULL for a JSON null or a missing key); numbers are then
    cast by the caller, so '1.50' (PostgreSQL) and '1.5' (DuckDB) give the same double. -#}

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
{% macro default__json_parse(expr) %}cast({{ expr }} as json){% endmacro %}
{#- jsonb: binary, so repeated extraction does not re-parse the text. -#}
{% macro postgres__json_parse(expr) %}cast({{ expr }} as jsonb){% endmacro %}

{#- A JSON value as text (scalars unquoted). -#}
{% macro json_text(doc, path) %}{{ return(adapter.dispatch('json_text')(doc, path)) }}{% endmacro %}
{% macro default__json_text(doc, path) %}json_extract_string({{ doc }}, {{ compass_json_path_duckdb(path) }}){% endmacro %}
{% macro postgres__json_text(doc, path) %}({{ doc }} #>> {{ compass_json_path_postgres(path) }}){% endmacro %}

{#- A JSON sub-document (SQL NULL when the key is missing). -#}
{% macro json_get(doc, path) %}{{ return(adapter.dispatch('json_get')(doc, path)) }}{% endmacro %}
{% macro default__json_get(doc, path) %}json_extract({{ doc }}, {{ compass_json_path_duckdb(path) }}){% endmacro %}
{% macro postgres__json_get(doc, path) %}({{ doc }} #> {{ compass_json_path_postgres(path) }}){% endmacro %}

{#- Typed scalars: the same cast on both adapters. -#}
{% macro json_number(doc, path) %}cast({{ json_text(doc, path) }} as double precision){% endmacro %}
{% macro json_integer(doc, path) %}cast(round(cast({{ json_text(doc, path) }} as double precision)) as bigint){% endmacro %}
{% macro json_boolean(doc, path) %}cast({{ json_text(doc, path) }} as boolean){% endmacro %}

{#- Length of a JSON array (NULL when the value is not an array). -#}
{% macro json_array_size(doc, path) %}{{ return(adapter.dispatch('json_array_size')(doc, path)) }}{% endmacro %}
{% macro default__json_array_size(doc, path) %}(case when json_type({{ doc }}, {{ compass_json_path_duckdb(path) }}) = 'ARRAY' then json_array_length({{ doc }}, {{ compass_json_path_duckdb(path) }}) end){% endmacro %}
{% macro postgres__json_array_size(doc, path) %}(case when jsonb_typeof({{ json_get(doc, path) }}) = 'array' then jsonb_array_length({{ json_get(doc, path) }}) end){% endmacro %}

{#- FROM-clause fragment: one row per element of the array at `path`, as `alias.value` (JSON)
    and `alias.idx` (0-based). Anything but an array gives no rows. -#}
{% macro json_array_rows(doc, path, alias) %}{{ return(adapter.dispatch('json_array_rows')(doc, path, alias)) }}{% endmacro %}
{% macro default__json_array_rows(doc, path, alias) -%}
cross join lateral (
    select cast(e.key as integer) as idx, e.value as value
    from json_each({{ doc }}, {{ compass_json_path_duckdb(path) }}) as e
    where json_type({{ doc }}, {{ compass_json_path_duckdb(path) }}) = 'ARRAY'
) as {{ alias }}
{%- endmacro %}
{% macro postgres__json_array_rows(doc, path, alias) -%}
cross join lateral (
    select cast(e.ord - 1 as integer) as idx, e.value as value
    from jsonb_array_elements(
        case when jsonb_typeof({{ json_get(doc, path) }}) = 'array' then {{ json_get(doc, path) }} else '[]'::jsonb end
    ) with ordinality as e(value, ord)
) as {{ alias }}
{%- endmacro %}

{#- FROM-clause fragment: one row per key of the object at `path`, as `alias.key` and
    `alias.value_text` (scalars unquoted). Anything but an object gives no rows. -#}
{% macro json_object_rows(doc, path, alias) %}{{ return(adapter.dispatch('json_object_rows')(doc, path, alias)) }}{% endmacro %}
{% macro default__json_object_rows(doc, path, alias) -%}
cross join lateral (
    select e.key as key, json_extract_string(e.value, '$') as value_text
    from json_each({{ doc }}, {{ compass_json_path_duckdb(path) }}) as e
    where json_type({{ doc }}, {{ compass_json_path_duckdb(path) }}) = 'OBJECT'
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

{#- A text value as a JSON string literal, for canonical JSON text built by string_agg. -#}
{% macro json_quote(expr) %}{{ return(adapter.dispatch('json_quote')(expr)) }}{% endmacro %}
{% macro default__json_quote(expr) %}cast(to_json(cast({{ expr }} as varchar)) as varchar){% endmacro %}
{% macro postgres__json_quote(expr) %}cast(to_jsonb(cast({{ expr }} as text)) as text){% endmacro %}

{#- JSON value to text (to aggregate or compare it; re-parse with json_parse). -#}
{% macro json_to_text(expr) %}cast({{ expr }} as varchar){% endmacro %}

{#- Build a JSON object from (key, SQL expression) pairs. -#}
{% macro json_object_of(pairs) %}{{ return(adapter.dispatch('json_object_of')(pairs)) }}{% endmacro %}
{% macro default__json_object_of(pairs) %}json_object({% for k, v in pairs %}'{{ k }}', {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}){% endmacro %}
{% macro postgres__json_object_of(pairs) %}jsonb_build_object({% for k, v in pairs %}'{{ k }}', {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}){% endmacro %}

{#- Aggregate JSON values into an ordered JSON array. -#}
{% macro json_array_agg(expr, order_by) %}{{ return(adapter.dispatch('json_array_agg')(expr, order_by)) }}{% endmacro %}
{#- DuckDB's json_group_array is a macro that takes no ORDER BY: aggregate a list, then to JSON. -#}
{% macro default__json_array_agg(expr, order_by) %}to_json(list({{ expr }} order by {{ order_by }})){% endmacro %}
{% macro postgres__json_array_agg(expr, order_by) %}jsonb_agg({{ expr }} order by {{ order_by }}){% endmacro %}
