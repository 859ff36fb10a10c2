{#- The adapters the Compass SQL is written for. Each dispatched macro of macros/cross_db/ and
    macros/compass/ has a duckdb__ and a postgres__ body; its default__ is portable SQL or this
    error, so another adapter fails at compile time instead of running DuckDB SQL. -#}
{% macro compass_supported_adapters() %}{{ return(['duckdb', 'postgres']) }}{% endmacro %}

{% macro compass_unsupported_adapter(macro_name) %}
  {{ exceptions.raise_compiler_error(
      macro_name ~ ": not implemented for the '" ~ adapter.type() ~ "' adapter; the Quality Compass "
      ~ "macros support " ~ compass_supported_adapters() | join(" and ")
      ~ " (add a " ~ adapter.type() ~ "__" ~ macro_name ~ " macro to support another)") }}
{% endmacro %}
