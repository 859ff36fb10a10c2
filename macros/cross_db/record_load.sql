{#- Seeds carry no load time of their own: this post-hook logs one (table, loaded_at) row per load
    so that source freshness measures when the raw readings were really loaded. -#}
{% macro record_load() %}
  {%- set log_relation = this.schema ~ '.raw_load_log' -%}
  create table if not exists {{ log_relation }} (table_name varchar(256), loaded_at timestamp);
  insert into {{ log_relation }} (table_name, loaded_at)
  values ('{{ this.identifier }}', {{ qalita_utc_now() }})
{% endmacro %}
