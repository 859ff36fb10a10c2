{#- The canonical JSON text of an entity's fields: `{"id":"value",...}`, keys in byte order, the
    fields in `exclude` left out. An aggregate over (field_id, field_value) rows. stg_entity_results
    and stg_classifications both hash it, so it must be built by this one macro for the keys to join. -#}
{% macro canonical_entity_text(field_id, field_value, exclude=[]) %}
    '{' || coalesce(string_agg(
        {%- if exclude %}
        case
            when {{ field_id }} not in ({% for f in exclude %}'{{ f }}'{% if not loop.last %}, {% endif %}{% endfor %})
                then {{ json_quote(field_id) }} || ':' || {{ json_quote(field_value) }}
        end,
        {%- else %}
        {{ json_quote(field_id) }} || ':' || {{ json_quote(field_value) }},
        {%- endif %}
        ',' order by {{ binary_sort(field_id) }}
    ), '') || '}'
{%- endmacro %}
