{#- Any other adapter: one clear error instead of dbt's "no macro found". -#}

{% macro default__write_invocation(invocation, rows) %}
  {%- do exceptions.raise_compiler_error(
        "qalita: the qalita package records results on duckdb and postgres only, not on "
        ~ target.type ~ " (target '" ~ target.name ~ "'); remove its on-run-end hook from this "
        ~ "project or set the var qalita_enabled: false for this target") -%}
{% endmacro %}
