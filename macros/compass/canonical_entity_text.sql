{#- The canonical JSON text of an entity's fields: `{"id":"value",...}`, keys in byte order, the
    fields in `exclude` left out. An aggregate over (field_id, field_value) rows. stg_entity_results,
    stg_classifications and stg_global_statistics hash it, so it must be built by this one macro for
    the keys to join. -#}
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

{#- The fields that say who the entity is (facility, health system) rather than which slice of it:
    left out of the dimensions text, so an entity result, its classification and its peer group's
    facet describe the same slice with the same text. -#}
{% macro entity_identity_fields() %}{{ return(['medicareId', 'systemName']) }}{% endmacro %}

{#- The canonical text of an entity's dimensions (its fields but the identity ones). -#}
{% macro canonical_entity_dimensions_text(field_id, field_value) -%}
{{ canonical_entity_text(field_id, field_value, exclude=entity_identity_fields()) }}
{%- endmacro %}

{#- The join key of an entity slice, from its canonical dimensions text: entity_dimensions_hash,
    entity_key_hash and facet_values_hash must be the same function of the same text to match. -#}
{% macro entity_dimensions_hash(dimensions_text) %}md5({{ dimensions_text }}){% endmacro %}
