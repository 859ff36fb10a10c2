{#- The current UTC time as a timestamp without time zone, on every adapter. -#}
{% macro qalita_utc_now() %}
  {{ return(adapter.dispatch('qalita_utc_now')()) }}
{% endmacro %}

{% macro default__qalita_utc_now() %}(now() at time zone 'UTC'){% endmacro %}
