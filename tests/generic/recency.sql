{#- dbt_utils' recency, same arguments: fails when the newest `field` is older than `interval`
    `datepart`s before now (or when the table is empty). -#}
{% test recency(model, field, datepart, interval, ignore_time_component=false, group_by_columns=[]) %}
{%- set threshold = dbt.dateadd(datepart, interval * -1, qalita_utc_now()) -%}
{%- if ignore_time_component -%}{%- set threshold = 'cast(' ~ threshold ~ ' as date)' -%}{%- endif -%}
{%- set groups = group_by_columns | join(', ') -%}

with newest as (
    select
        {%- if groups %} {{ groups }},{% endif %}
        max({{ field }}) as most_recent
    from {{ model }}
    {%- if groups %} group by {{ groups }}{% endif %}
)

select *
from newest
where most_recent is null or most_recent < {{ threshold }}
{% endtest %}
