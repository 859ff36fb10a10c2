{#- One row per invocation: what ran, where, and the CI run that ran it. -#}

{% macro ci_context() %}
  {#- The first CI system whose marker variable is set wins; vars qalita_<key> override all.
      Per provider: marker, git_sha, git_branch (first set), job_id parts, run_id, run_url. -#}
  {%- set e = env_var -%}
  {%- set gh_run = e('GITHUB_RUN_ID', '') -%}
  {%- set cloud_run = e('DBT_CLOUD_RUN_ID', '') -%}
  {%- set providers = [
      ('github_actions', 'GITHUB_ACTIONS', 'GITHUB_SHA', ['GITHUB_HEAD_REF', 'GITHUB_REF_NAME'],
       ['GITHUB_WORKFLOW', 'GITHUB_JOB'], 'GITHUB_RUN_ID',
       gh_run and e('GITHUB_SERVER_URL', 'https://github.com') ~ '/' ~ e('GITHUB_REPOSITORY', '') ~ '/actions/runs/' ~ gh_run),
      ('gitlab_ci', 'GITLAB_CI', 'CI_COMMIT_SHA', ['CI_COMMIT_REF_NAME'], ['CI_JOB_ID'], 'CI_PIPELINE_ID',
       e('CI_JOB_URL', '')),
      ('dbt_cloud', 'DBT_CLOUD_RUN_ID', 'DBT_CLOUD_GIT_SHA', ['DBT_CLOUD_GIT_BRANCH'], ['DBT_CLOUD_JOB_ID'],
       'DBT_CLOUD_RUN_ID', cloud_run and e('DBT_CLOUD_PROJECT_ID', '') and 'https://cloud.getdbt.com/deploy/'
       ~ e('DBT_CLOUD_ACCOUNT_ID', '') ~ '/projects/' ~ e('DBT_CLOUD_PROJECT_ID', '') ~ '/runs/' ~ cloud_run),
      ('airflow', 'AIRFLOW_CTX_DAG_RUN_ID', '', [], ['AIRFLOW_CTX_DAG_ID', 'AIRFLOW_CTX_TASK_ID'],
       'AIRFLOW_CTX_DAG_RUN_ID', ''),
      ('dagster', 'DAGSTER_RUN_ID', '', [], ['DAGSTER_JOB_NAME'], 'DAGSTER_RUN_ID', ''),
      ('ci', 'CI', '', [], [], '', ''),
  ] -%}
  {%- set ctx = {'ci_provider': none, 'git_sha': none, 'git_branch': none, 'job_id': none, 'run_id': none,
                 'run_url': none} -%}
  {%- for name, marker, sha, branches, job_parts, run, url in providers if e(marker, '') and not ctx.ci_provider -%}
    {%- set branch = [] -%}
    {%- for v in branches if e(v, '') and not branch -%}{%- do branch.append(e(v, '')) -%}{%- endfor -%}
    {%- set job = [] -%}
    {%- for v in job_parts if e(v, '') -%}{%- do job.append(e(v, '')) -%}{%- endfor -%}
    {%- do ctx.update({'ci_provider': name, 'git_sha': e(sha, '') if sha else '', 'git_branch': branch[0] if branch else '',
                       'job_id': job | join('/'), 'run_id': e(run, '') if run else '', 'run_url': url}) -%}
  {%- endfor -%}
  {%- for key in ctx -%}
    {%- set override = var('qalita_' ~ key, none) -%}
    {%- if override is not none -%}{%- do ctx.update({key: override | string}) -%}{%- endif -%}
    {%- if not ctx[key] -%}{%- do ctx.update({key: none}) -%}{%- endif -%}
  {%- endfor -%}
  {{ return(ctx) }}
{% endmacro %}

{% macro safe_args() %}
  {#- What was asked for, not dbt's whole flag set: a whitelist, so no secret (a password in
      --vars, a token in the command line) can reach the table. Vars keep their names only. -#}
  {%- set keep = ['which', 'select', 'exclude', 'selector', 'resource_types', 'exclude_resource_types',
                  'full_refresh', 'threads', 'target', 'state', 'defer', 'favor_state', 'empty',
                  'fail_fast', 'indirect_selection', 'store_failures', 'warn_error'] -%}
  {%- set given = invocation_args_dict or {} -%}
  {%- set args = {} -%}
  {%- for key in keep if given.get(key) is not none -%}
    {%- set value = given[key] -%}
    {%- if value is string or value is number or value is boolean -%}
      {%- do args.update({key: value}) -%}
    {%- else -%}
      {%- do args.update({key: value | map('string') | list}) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if given.get('vars') -%}
    {%- set vars_given = given['vars'] -%}
    {%- if vars_given is mapping -%}{%- do args.update({'vars': vars_given.keys() | list}) -%}{%- endif -%}
  {%- endif -%}
  {{ return(args) }}
{% endmacro %}

{% macro invocation_row(invocation_id, results_total, counts, recorded_at) %}
  {%- set args = qalita.safe_args() -%}
  {%- set select = (invocation_args_dict or {}).get('select') -%}
  {%- set row = {
      'invocation_id': invocation_id,
      'schema_version': qalita.schema_version(),
      'package_version': qalita.package_version(),
      'project_name': project_name,
      'target_name': target.name,
      'adapter_type': target.type,
      'environment': var('qalita_environment', target.name),
      'command': flags.WHICH,
      'dbt_version': dbt_version,
      'started_at': run_started_at.strftime('%Y-%m-%d %H:%M:%S.%f') if run_started_at else none,
      'finished_at': recorded_at,
      'results_total': results_total,
      'selectors': tojson((select | list) if select else []),
      'args': tojson(args, default='{}'),
      'recorded_at': recorded_at,
  } -%}
  {%- do row.update(counts) -%}
  {%- do row.update(qalita.ci_context()) -%}
  {#- as a list in invocation_columns() order, like the result rows -#}
  {%- set values = [] -%}
  {%- for name, kind in qalita.invocation_columns() -%}{%- do values.append(row.get(name)) -%}{%- endfor -%}
  {{ return(values) }}
{% endmacro %}
