{{/* feature_store.yaml for the feature server; shared by the ConfigMap and the pods' config checksum. */}}
{{- define "titans.feastConfig" -}}
{{ include "titans.feastStores" . }}
offline_store:
  type: duckdb
entity_key_serialization_version: 3
{{- end }}

{{/* What every profile shares: the project, the registry and the online store. */}}
{{- define "titans.feastStores" -}}
{{- $feast := .Values.feast -}}
project: {{ $feast.project }}
provider: local
registry:
{{- if eq $feast.registry.type "sql" }}
  registry_type: sql
  path: ${FEAST_REGISTRY_URL}
{{- else }}
  registry_type: file
  path: {{ $feast.registry.path }}
{{- end }}
  cache_ttl_seconds: 60
online_store:
{{- if $feast.redis.enabled }}
  type: redis
  connection_string: "titans-redis.{{ .Release.Namespace }}.svc.cluster.local:6379,password=${REDIS_PASSWORD}"
{{- else }}
  type: sqlite
  path: /data/online_store.db
{{- end }}
{{- end }}

{{- /*
feature_store.spark.yaml, the opt-in Spark profile of the pipeline's feature steps (feast.spark.enabled):
the same registry and online store, Feast's Spark offline store for training sets, and one SparkApplication
per materialization (Feast's spark_application engine, through the Kubeflow Spark Operator). Steps select it
with TITANS_FEATURE_STORE_PROFILE=spark; the feature server and the predictors keep feature_store.yaml.
*/}}
{{- define "titans.feastSparkConfig" -}}
{{- $spark := .Values.feast.spark -}}
{{- $conf := merge (dict) $spark.sparkConf (dict "spark.sql.session.timeZone" "UTC" "spark.sql.execution.arrow.pyspark.enabled" "true") -}}
{{ include "titans.feastStores" . }}
offline_store:
  type: spark
  spark_conf:
    {{- range $key, $value := merge (dict) $conf (dict "spark.driver.memory" $spark.stepDriverMemory) }}
    {{ $key }}: {{ $value | toString | quote }}
    {{- end }}
batch_engine:
  type: spark_application
  image: {{ required "feast.spark.image: the SparkApplication image (Feast, titans, pyspark, a JRE)" $spark.image | quote }}
  namespace: {{ .Values.pipelineRunner.namespace }}
  service_account: {{ required "feast.spark.serviceAccount: the Spark Operator's driver service account" $spark.serviceAccount | quote }}
  spark_version: {{ $spark.sparkVersion | quote }}
  driver_cores: {{ $spark.driver.cores }}
  driver_memory: {{ $spark.driver.memory | quote }}
  executor_instances: {{ $spark.executor.instances }}
  executor_cores: {{ $spark.executor.cores }}
  executor_memory: {{ $spark.executor.memory | quote }}
  job_timeout_seconds: {{ $spark.jobTimeoutSeconds }}
  spark_conf:
    {{- range $key, $value := $conf }}
    {{ $key }}: {{ $value | toString | quote }}
    {{- end }}
entity_key_serialization_version: 3
{{- end }}
