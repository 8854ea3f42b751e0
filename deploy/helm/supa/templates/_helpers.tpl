{{/* Names and blocks every template shares. */}}

{{- define "supa.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "supa.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway") */}}
{{- define "supa.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "supa.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "supa.secretName" -}}
{{- default (include "supa.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "supa.tenantManagerUrl" -}}
{{- printf "http://%s-tenant-manager:8001" (include "supa.fullname" .) -}}
{{- end -}}

{{- define "supa.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ .key }}
{{- end -}}

{{/* SUPA_REDIS_URL, and for the in-chart Redis its password apart, from the Secret. */}}
{{- define "supa.redisEnv" -}}
{{- if eq .Values.redis.mode "chart" -}}
- name: SUPA_REDIS_URL
  value: {{ printf "redis://%s-redis:6379/0" (include "supa.fullname" .) | quote }}
{{ include "supa.secretEnv" (dict "name" "SUPA_REDIS_PASSWORD" "secret" (include "supa.secretName" .) "key" "redis-password") }}
{{- else -}}
{{ include "supa.secretEnv" (dict "name" "SUPA_REDIS_URL" "secret" .Values.redis.external.existingSecret "key" .Values.redis.external.key) }}
{{- end -}}
{{- end -}}

{{/* The object store's settings, for the gateways and the tenant manager. */}}
{{- define "supa.storageEnv" -}}
- name: SUPA_STORAGE_BACKEND
  value: {{ .Values.storage.backend | quote }}
{{- if eq .Values.storage.backend "s3" }}
- name: SUPA_STORAGE_S3_BUCKET
  value: {{ .Values.storage.s3.bucket | quote }}
- name: SUPA_STORAGE_S3_REGION
  value: {{ .Values.storage.s3.region | quote }}
- name: SUPA_STORAGE_S3_FORCE_PATH_STYLE
  value: {{ .Values.storage.s3.forcePathStyle | quote }}
{{- with .Values.storage.s3.endpoint }}
- name: SUPA_STORAGE_S3_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.storage.s3.existingSecret }}
{{ include "supa.secretEnv" (dict "name" "AWS_ACCESS_KEY_ID" "secret" . "key" "AWS_ACCESS_KEY_ID") }}
{{ include "supa.secretEnv" (dict "name" "AWS_SECRET_ACCESS_KEY" "secret" . "key" "AWS_SECRET_ACCESS_KEY") }}
{{- end }}
{{- else }}
- name: SUPA_STORAGE_PATH
  value: /var/lib/supa/objects
{{- end }}
{{- end -}}

{{- define "supa.storageVolume" -}}
{{- if eq .Values.storage.backend "file" }}
- name: objects
  persistentVolumeClaim:
    claimName: {{ .Values.storage.file.existingClaim }}
{{- end }}
{{- end -}}

{{- define "supa.storageMount" -}}
{{- if eq .Values.storage.backend "file" }}
- name: objects
  mountPath: /var/lib/supa/objects
{{- end }}
{{- end -}}

{{/* What every Supa pod spec starts with. */}}
{{- define "supa.podDefaults" -}}
serviceAccountName: {{ include "supa.fullname" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The container of a standalone service: (dict "root" $ "s" service "kind" facts "image" ref) */}}
{{- define "supa.serviceContainer" -}}
- name: {{ .s.service }}
  image: {{ .image }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  command: {{ toJson .kind.command }}
  ports:
    - name: http1
      containerPort: {{ .kind.port }}
      protocol: TCP
  envFrom:
    - secretRef:
        name: {{ .s.envSecret }}
  env:
    {{- with .kind.portEnv }}
    - name: {{ . }}
      value: {{ $.kind.port | quote }}
    {{- end }}
    - name: SUPA_FUNCTIONS_DIR
      value: /tmp/supa-functions
    - name: DENO_DIR
      value: /tmp/deno
  {{- range list "readinessProbe" "livenessProbe" }}
  {{ . }}:
    {{- if $.kind.health }}
    httpGet:
      path: {{ $.kind.health }}
      port: {{ $.kind.port }}
    {{- else }}
    tcpSocket:
      port: {{ $.kind.port }}
    {{- end }}
    periodSeconds: 10
    timeoutSeconds: 3
  {{- end }}
  resources:
    {{- toYaml (default (dict "requests" (dict "cpu" "100m" "memory" "128Mi") "limits" (dict "cpu" "1" "memory" "512Mi")) .s.resources) | nindent 4 }}
  securityContext:
    {{- toYaml .root.Values.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end -}}
