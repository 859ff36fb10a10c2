{#- The insight-graph run the Compass models read: var('run_id') when set, else the run loaded
    last (by loaded_at, then run_id). Raw tables keep the history of runs. -#}
{% macro compass_selected_run() -%}
  {%- set run_id = var('run_id', none) -%}
  {%- if run_id -%}
    '{{ run_id | string | replace("'", "''") }}'
  {%- else -%}
    (select latest.run_id from (
        select run_id from {{ source('compass_raw', 'raw_node_results') }}
        order by loaded_at desc, run_id desc
        limit 1
    ) as latest)
  {%- endif -%}
{%- endmacro %}

{#- The rows of one raw table that belong to the selected run. -#}
{% macro compass_run_rows(table_name) -%}
select * from {{ source('compass_raw', table_name) }}
where run_id = {{ compass_selected_run() }}
{%- endmacro %}
