{#- One row per invocation: what ran, where, and the CI run that ran it. -#}

{% macro ci_context() %}
  {#- First CI system found wins; vars (qalita_git_sha, qalita_job_id, ...) override everything. -#}
  {%- set e = env_var -%}
  {%- set ctx = {'ci_provider': none, 'git_sha': none, 'git_branch': none,
                 'job_id': none, 'run_id': none, 'run_url': none} -%}
  {%- if e('GITHUB_ACTIONS', '') -%}
    {%- do ctx.update({'ci_provider': 'github_actions', 'git_sha': e('GITHUB_SHA', ''),
        'git_branch': e('GITHUB_HEAD_REF', '') or e('GITHUB_REF_NAME', ''),
        'job_id': e('GITHUB_WORKFLOW', '') ~ (('/' ~ e('GITHUB_JOB', '')) if e('GITHUB_JOB', '') else ''),
        'run_id': e('GITHUB_RUN_ID', ''),
        'run_url': (e('GITHUB_SERVER_URL', 'https://github.com') ~ '/' ~ e('GITHUB_REPOSITORY', '')
                    ~ '/actions/runs/' ~ e('GITHUB_RUN_ID', '')) if e('GITHUB_RUN_ID', '') else ''}) -%}
  {%- elif e('GITLAB_CI', '') -%}
    {%- do ctx.update({'ci_provider': 'gitlab_ci', 'git_sha': e('CI_COMMIT_SHA', ''),
        'git_branch': e('CI_COMMIT_REF_NAME', ''), 'job_id': e('CI_JOB_ID', ''),
        'run_id': e('CI_PIPELINE_ID', ''), 'run_url': e('CI_JOB_URL', '')}) -%}
  {%- elif e('DBT_CLOUD_RUN_ID', '') -%}
    {%- set acct = e('DBT_CLOUD_ACCOUNT_ID', '') -%}
    {%- set proj = e('DBT_CLOUD_PROJECT_ID', '') -%}
    {%- do ctx.update({'ci_provider': 'dbt_cloud', 'git_sha': e('DBT_CLOUD_GIT_SHA', ''),
        'git_branch': e('DBT_CLOUD_GIT_BRANCH', ''), 'job_id': e('DBT_CLOUD_JOB_ID', ''),
        'run_id': e('DBT_CLOUD_RUN_ID', ''),
        'run_url': ('https://cloud.getdbt.com/deploy/' ~ acct ~ '/projects/' ~ proj ~ '/runs/'
                    ~ e('DBT_CLOUD_RUN_ID', '')) if acct and proj else ''}) -%}
  {%- elif e('AIRFLOW_CTX_DAG_RUN_ID', '') -%}
    {%- do ctx.update({'ci_provider': 'airflow',
        'job_id': e('AIRFLOW_CTX_DAG_ID', '') ~ '.' ~ e('AIRFLOW_CTX_TASK_ID', ''),
        'run_id': e('AIRFLOW_CTX_DAG_RUN_ID', '')}) -%}
  {%- elif e('DAGSTER_RUN_ID', '') or e('DAGSTER_JOB_NAME', '') -%}
    {%- do ctx.update({'ci_provider': 'dagster', 'job_id': e('DAGSTER_JOB_NAME', ''),
        'run_id': e('DAGSTER_RUN_ID', '')}) -%}
  {%- elif e('CI', '') -%}
    {%- do ctx.update({'ci_provider': 'ci'}) -%}
  {%- endif -%}
  {%- for key in ['ci_provider', 'git_sha', 'git_branch', 'job_id', 'run_id', 'run_url'] -%}
    {%- set override = var('qalita_' ~ key, none) -%}
    {%- if override is not none -%}{%- do ctx.update({key: override | string}) -%}{%- endif -%}
    {%- if ctx[key] == '' -%}{%- do ctx.update({key: none}) -%}{%- endif -%}
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
      'started_at': qalita.ts(run_started_at),
      'finished_at': recorded_at,
      'results_total': results_total,
      'selectors': tojson((select | list) if select else []),
      'args': tojson(args, default='{}'),
      'recorded_at': recorded_at,
  } -%}
  {%- do row.update(counts) -%}
  {%- do row.update(qalita.ci_context()) -%}
  {{ return(row) }}
{% endmacro %}
