{#- Byte-order (C collation) sort key, so that ordered string_agg gives the same text on both
    adapters: PostgreSQL's default collation is locale-aware, DuckDB sorts by bytes already. No
    default: a byte-order collation has no portable spelling, and the canonical entity text hashed
    for joins depends on it. -#}
{% macro binary_sort(expr) %}{{ return(adapter.dispatch('binary_sort')(expr)) }}{% endmacro %}
{% macro default__binary_sort(expr) %}{{ compass_unsupported_adapter('binary_sort') }}{% endmacro %}
{% macro duckdb__binary_sort(expr) %}{{ expr }}{% endmacro %}
{% macro postgres__binary_sort(expr) %}{{ expr }} collate "C"{% endmacro %}

{#- Round to `places` decimals half away from zero on both adapters (decimal arithmetic:
    PostgreSQL has no round(double, int), DuckDB's double round may differ at .5 ties). -#}
{% macro round_decimal(expr, places) %}cast(round(cast({{ expr }} as numeric(38, 10)), {{ places }}) as double precision){% endmacro %}

{#- md5 over the text of the columns, NULL-safe: a surrogate key with no package. -#}
{% macro surrogate_key(columns) -%}
md5(
  {%- for c in columns %}
    coalesce(cast({{ c }} as varchar), '<null>'){% if not loop.last %} || '|' ||{% endif %}
  {%- endfor %}
)
{%- endmacro %}

{#- One column for a multi-column equi-join: md5 of the parts, NULL when any part is NULL (so it
    matches exactly the rows the equalities would). PostgreSQL multiplies the selectivities of the
    equalities of a multi-column join, estimates one row where there are thousands, and picks
    nested loops that rescan the inner side per row; on a single key it hashes. -#}
{% macro join_key(columns) -%}
md5({% for c in columns %}cast({{ c }} as varchar){% if not loop.last %} || '|' || {% endif %}{% endfor %})
{%- endmacro %}
