{{/*
Shared snippets. Object names are fixed by docs/contracts.md (titans-*), not derived from the release
name: the pipeline and the model servers address each other by these names.
*/}}

{{/* The models in a fixed order, so rendered output is stable. */}}
{{- define "titans.modelNames" -}}
category amount anomaly cashflow recommend
{{- end }}

{{- define "titans.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "titans.labels" -}}
helm.sh/chart: {{ include "titans.chart" . }}
app.kubernetes.io/name: titans-finance
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: titans-finance
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component; pass (dict "root" $ "component" "feast"). */}}
{{- define "titans.selectorLabels" -}}
app.kubernetes.io/name: titans-finance
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* repository@digest when a digest is set, else repository:tag; pass an images.* entry. */}}
{{- define "titans.image" -}}
{{- if .digest -}}
{{ .repository }}@{{ .digest }}
{{- else -}}
{{ .repository }}:{{ .tag }}
{{- end -}}
{{- end }}

{{/* Pod-level hardening: non-root, fixed ids, the runtime's default seccomp profile. */}}
{{- define "titans.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container-level hardening: read-only root filesystem, no privilege escalation, no capabilities. */}}
{{- define "titans.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Object-store settings as container env (boto3 and MLflow read these names). */}}
{{- define "titans.objectStoreEnv" -}}
- name: AWS_DEFAULT_REGION
  value: {{ .Values.objectStore.region | quote }}
{{- with .Values.objectStore.endpoint }}
- name: AWS_ENDPOINT_URL_S3
  value: {{ . | quote }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
- name: FEAST_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.objectStore.existingSecret }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_ACCESS_KEY_ID
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: AWS_SECRET_ACCESS_KEY
{{- end }}
{{- end }}

{{/* In-cluster URLs the components use to find each other. */}}
{{- define "titans.feastUrl" -}}
http://titans-feast.{{ .Release.Namespace }}.svc.cluster.local:6566
{{- end }}
{{/* MLflow credentials from mlflow.auth.existingSecret as <prefix>USERNAME and <prefix>PASSWORD. */}}
{{- define "titans.mlflowCredentialsEnv" -}}
{{- $auth := .root.Values.mlflow.auth -}}
- name: {{ .prefix }}USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ required "mlflow.auth.existingSecret: MLflow's basic auth needs the Secret holding its admin user" $auth.existingSecret }}
      key: {{ $auth.usernameKey }}
- name: {{ .prefix }}PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ $auth.passwordKey }}
{{- end }}

{{- define "titans.mlflowUrl" -}}
http://titans-mlflow.{{ .Release.Namespace }}.svc.cluster.local:5000
{{- end }}

{{- define "titans.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* NetworkPolicy peers: a namespace by its name label, and the model server pods. */}}
{{- define "titans.namespacePeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ . }}
{{- end }}
{{- define "titans.inferencePeer" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/component: inference
{{- end }}

{{/* Secrets feature_store.yaml refers to as ${VAR}: the SQL registry URL and the Redis password. */}}
{{- define "titans.feastEnv" -}}
{{- $feast := .Values.feast -}}
{{- if eq $feast.registry.type "sql" }}
- name: FEAST_REGISTRY_URL
  valueFrom:
    secretKeyRef:
      name: {{ $feast.registry.existingSecret }}
      key: {{ $feast.registry.secretKey }}
{{- end }}
{{- if $feast.redis.enabled }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "titans.redisSecret" . }}
      key: {{ $feast.redis.passwordKey }}
{{- end }}
{{- end }}

{{/* The Secret holding the in-chart Redis password (created before the install, never by the chart). */}}
{{- define "titans.redisSecret" -}}
{{- required "feast.redis.existingSecret: the in-chart Redis always has a password; name the Secret holding it" .Values.feast.redis.existingSecret -}}
{{- end -}}

{{/* The header a validated token's role claim is copied into for the mesh's rate limit (istio-rate-limit.yaml). */}}
{{- define "titans.rateRoleHeader" -}}
x-titans-rate-role
{{- end -}}

{{/* An Envoy token bucket from {requestsPerSecond, burst}: refilled every second, holding at most burst. */}}
{{- define "titans.tokenBucket" -}}
max_tokens: {{ .burst | int }}
tokens_per_fill: {{ .requestsPerSecond | int }}
fill_interval: 1s
{{- end -}}

{{/* One egress rule from {to: [peers], ports: [numbers]} (networkPolicy.egress.objectStore, .database). */}}
{{- define "titans.egressPeers" -}}
- to:
    {{- toYaml .to | nindent 4 }}
  ports:
    {{- range .ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- end -}}

{{/* Egress to the in-chart Redis. */}}
{{- define "titans.redisEgress" -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "titans.selectorLabels" (dict "root" . "component" "redis") | nindent 10 }}
  ports:
    - port: 6379
      protocol: TCP
{{- end -}}
