{#- DuckDB writer. DuckDB has no exception handler in SQL and Jinja cannot catch a database error,
    so whatever can fail is checked before the write: the tables' shape is read from the catalog
    (a table that differs from the package's is reported as one warning and left untouched), and
    every value is cast with try_cast (a value that does not fit its type is stored as NULL).
    What remains is what no check can foresee: a full disk, the memory limit, a database file
    that became read-only. Then the hook fails and the artifacts still hold the results.
    One transaction per invocation; dbt-duckdb rolls back what on-run-end leaves open. -#}

{% macro duckdb__write_invocation(invocation, rows) %}
  {%- set database = qalita.results_database() -%}
  {%- set schema = qalita.results_schema() -%}
  {%- set catalog = qalita.duckdb_catalog(database, schema) -%}
  {%- set problems = qalita.duckdb_shape_problems(database, schema, catalog) -%}
  {%- if problems -%}
    {{ return(qalita.hook_failed(problems | join('; ') ~ '; the table was left as it is')) }}
  {%- endif -%}
  {%- set found = {} -%}
  {%- for table, columns in catalog['columns'].items() -%}{%- do found.update({table: columns.keys() | list}) -%}{%- endfor -%}
  {%- set statements = qalita.ddl_changes(database, schema, found) -%}
  {%- set inv_rel = qalita.relation(database, schema, 'qalita_invocations') -%}
  {%- set res_rel = qalita.relation(database, schema, 'qalita_results') -%}
  {%- set id = qalita.quote_literal(invocation_id) -%}
  {%- do statements.append('delete from ' ~ res_rel ~ ' where invocation_id = ' ~ id) -%}
  {%- do statements.append('delete from ' ~ inv_rel ~ ' where invocation_id = ' ~ id) -%}
  {%- set columns = qalita.result_columns() -%}
  {%- for chunk in qalita.chunk_rows(rows) -%}
    {%- do statements.append(qalita.duckdb__insert_json_sql(res_rel, columns, chunk)) -%}
  {%- endfor -%}
  {%- do statements.append(qalita.duckdb__insert_json_sql(inv_rel, qalita.invocation_columns(), tojson([invocation]))) -%}
  {#- one round trip: every statement of the invocation in one transaction -#}
  {%- do run_query('begin transaction;\n' ~ statements | join(';\n') ~ ';\ncommit') -%}
{% endmacro %}

{#- What the catalog says about the two tables, in one query (duckdb_columns() answers in ~1 ms
    where information_schema takes several):
    columns: table -> {column: (type, nullable, has a default)}; views: names of tables that are
    views; constraints: table -> [constraint text] (other than NOT NULL, read from the columns);
    indexed: tables with an index (DuckDB cannot ALTER a table that has one). -#}
{% macro duckdb_catalog(database, schema) %}
  {%- set where = 'lower(schema_name) = lower(' ~ qalita.quote_literal(schema) ~ ')'
                  ~ ((' and lower(database_name) = lower(' ~ qalita.quote_literal(database) ~ ')') if database else '')
                  ~ " and lower(table_name) in ('qalita_invocations', 'qalita_results')" -%}
  {%- set sql -%}
    select 'column', lower(table_name), lower(column_name), upper(data_type), is_nullable, column_default is not null
    from duckdb_columns() where {{ where }}
    union all
    select 'view', lower(view_name), null, null, null, null
    from duckdb_views() where {{ where.replace('table_name', 'view_name') }}
    union all
    select 'constraint', lower(table_name), constraint_type, constraint_text, null, null
    from duckdb_constraints() where {{ where }} and constraint_type <> 'NOT NULL'
    union all
    select 'index', lower(table_name), index_name, null, null, null
    from duckdb_indexes() where {{ where }}
  {%- endset -%}
  {%- set catalog = {'columns': {}, 'views': [], 'constraints': {}, 'indexed': []} -%}
  {%- for kind, table, a, b, nullable, has_default in run_query(sql).rows -%}
    {%- if kind == 'column' -%}
      {%- do catalog['columns'].setdefault(table, {}).update({a: (b, nullable, has_default)}) -%}
    {%- elif kind == 'view' -%}
      {%- do catalog['views'].append(table) -%}
    {%- elif kind == 'constraint' -%}
      {%- do catalog['constraints'].setdefault(table, []).append(b or a) -%}
    {%- else -%}
      {%- do catalog['indexed'].append(table) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(catalog) }}
{% endmacro %}

{#- Why the insert could fail on the tables as they are, one phrase per finding (none: it cannot,
    short of the disk or the memory). A missing column is no finding: the writer adds it. -#}
{% macro duckdb_shape_problems(database, schema, catalog) %}
  {%- set problems = [] -%}
  {%- for table, columns in qalita.tables() -%}
    {%- set name = schema ~ '.' ~ table -%}
    {%- set found = catalog['columns'].get(table, {}) -%}
    {%- set own = columns | map(attribute=0) | list -%}
    {%- if table in catalog['views'] -%}
      {%- do problems.append(name ~ ' is a view, not a table') -%}
    {%- elif found -%}
      {%- for column, kind in columns if column in found -%}
        {%- set type = found[column][0] -%}
        {%- set expected = qalita.column_type(kind) | upper -%}
        {%- if type != expected -%}
          {%- do problems.append(name ~ '.' ~ column ~ ' is ' ~ type ~ ', not ' ~ expected) -%}
        {%- elif not found[column][1] -%}
          {%- do problems.append(name ~ '.' ~ column ~ ' is NOT NULL') -%}
        {%- endif -%}
      {%- endfor -%}
      {%- for column, info in found.items() if column not in own and not info[1] and not info[2] -%}
        {%- do problems.append(name ~ '.' ~ column ~ ' is NOT NULL without a default and not a column of the package') -%}
      {%- endfor -%}
      {%- for constraint in catalog['constraints'].get(table, []) -%}
        {%- do problems.append(name ~ ' has a constraint the package does not create (' ~ constraint ~ ')') -%}
      {%- endfor -%}
      {%- if table in catalog['indexed'] and own | reject('in', found) | list -%}
        {%- do problems.append(name ~ ' lacks columns of this package version and has an index, so they cannot be added') -%}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(problems) }}
{% endmacro %}

{% macro duckdb__insert_json_sql(relation, columns, rows_json) %}
  {#- every value is read as VARCHAR (a JSON list as its JSON text), then cast by position;
      try_cast: a value that does not fit is NULL instead of failing the whole invocation -#}
  {%- set picks = [] -%}
  {%- for name, kind in columns -%}
    {%- do picks.append('r[' ~ loop.index ~ ']' if kind == 'text' else 'try_cast(r[' ~ loop.index ~ '] as ' ~ qalita.column_type(kind) ~ ')') -%}
  {%- endfor -%}
  {{ return('insert into ' ~ relation ~ ' (' ~ columns | map(attribute=0) | join(', ') ~ ') select '
            ~ picks | join(', ') ~ " from (select unnest(from_json('" ~ qalita.sql_json(rows_json)
            ~ "', '[[\"VARCHAR\"]]')) as r)") }}
{% endmacro %}
