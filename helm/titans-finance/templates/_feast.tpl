{{/* feature_store.yaml for the feature server; shared by the ConfigMap and the pods' config checksum. */}}
{{- define "titans.feastConfig" -}}
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
offline_store:
  type: duckdb
entity_key_serialization_version: 3
{{- end }}
