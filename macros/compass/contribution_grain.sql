{#- The parent entity a contribution belongs to: its siblings (ranked together, whose weight
    shares add up to 1) are the contributions with the same values of these columns. -#}
{% macro contribution_parent_grain() %}
  {{ return(['run_id', 'parent_node_id', 'parent_facility_id', 'parent_service_line', 'metric_id']) }}
{% endmacro %}
