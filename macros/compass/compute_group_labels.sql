{#- Display label of a group-by: the dimension *names* of an entity_dimensions JSON object,
    ordered by key and joined with ' / '; 'Facility-wide' when there are none. -#}
{% macro compute_groupby_label(dims) -%}
coalesce((
    select string_agg(
        case d.key
            when 'vizientServiceLine' then 'Service Line'
            when 'vizientSubServiceLine' then 'Sub-Service Line'
            when 'admissionSource' then 'Admission Source'
            when 'dischargeStatus' then 'Discharge Status'
            when 'primaryPayer' then 'Primary Payer'
            when 'patientAge' then 'Patient Age'
            when 'patientGender' then 'Patient Gender'
            else {{ compass_initcap("replace(d.key, '_', ' ')") }}
        end,
        ' / ' order by {{ binary_sort('d.key') }})
    from (select 1 as one) as anchor
    {{ json_object_rows(dims, '', 'd') }}
), 'Facility-wide')
{%- endmacro %}

{#- Display value of a group-by: the dimension *values*, ordered by key, joined with ' / '. -#}
{% macro compute_group_value(dims) -%}
coalesce((
    select string_agg(d.value_text, ' / ' order by {{ binary_sort('d.key') }})
    from (select 1 as one) as anchor
    {{ json_object_rows(dims, '', 'd') }}
), 'Facility-wide')
{%- endmacro %}

{#- initcap: PostgreSQL has it; DuckDB has no initcap, so capitalise each space-separated word. -#}
{% macro compass_initcap(expr) %}{{ return(adapter.dispatch('compass_initcap')(expr)) }}{% endmacro %}
{% macro default__compass_initcap(expr) %}{{ compass_unsupported_adapter('compass_initcap') }}{% endmacro %}
{% macro duckdb__compass_initcap(expr) -%}
(select string_agg(upper(left(w.word, 1)) || lower(substr(w.word, 2)), ' ' order by w.pos)
 from (select unnest(string_split({{ expr }}, ' ')) as word, generate_subscripts(string_split({{ expr }}, ' '), 1) as pos) as w)
{%- endmacro %}
{% macro postgres__compass_initcap(expr) %}initcap({{ expr }}){% endmacro %}
