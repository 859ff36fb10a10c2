{#- The anomaly-label columns of a statistical method: (the statistic the anomaly applies_to,
    the column holding its tier). int_anomaly_labels pivots them, int_statistical_methods_agg and
    fct_signals carry them; the order is their column order. -#}
{% macro anomaly_labels() %}
  {{ return([
      ('simple_zscore', 'simple_zscore_anomaly'),
      ('robust_zscore', 'robust_zscore_anomaly'),
      ('latest_simple_zscore', 'latest_simple_zscore_anomaly'),
      ('mean_simple_zscore', 'mean_simple_zscore_anomaly'),
      ('latest_robust_zscore', 'latest_robust_zscore_anomaly'),
      ('mean_robust_zscore', 'mean_robust_zscore_anomaly'),
      ('slope_percentile', 'slope_anomaly'),
  ]) }}
{% endmacro %}

{#- The label column names alone, in the same order. -#}
{% macro anomaly_label_columns() %}
  {%- set columns = [] -%}
  {%- for applies_to, column in anomaly_labels() -%}{%- do columns.append(column) -%}{%- endfor -%}
  {{ return(columns) }}
{% endmacro %}
