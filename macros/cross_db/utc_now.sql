{#- The current UTC time as a timestamp without time zone. Time zone conversion has no dbt
    cross-database macro (dbt.current_timestamp() keeps the session's zone): one body per
    supported adapter, the same SQL on both. -#}
{% macro qalita_utc_now() %}
  {{ return(adapter.dispatch('qalita_utc_now')()) }}
{% endmacro %}

{% macro default__qalita_utc_now() %}{{ compass_unsupported_adapter('qalita_utc_now') }}{% endmacro %}
{% macro duckdb__qalita_utc_now() %}(now() at time zone 'UTC'){% endmacro %}
{% macro postgres__qalita_utc_now() %}(now() at time zone 'UTC'){% endmacro %}
