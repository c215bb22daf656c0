{{/* Chart name, overridable. */}}
{{- define "flagrelay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name alone when it already contains the chart's. */}}
{{- define "flagrelay.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "flagrelay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels that select the pods: Deployment, Service, PodDisruptionBudget and
ServiceMonitor all use exactly these, and the pod template carries them. Never change them
on upgrade (a Deployment's selector is immutable). */}}
{{- define "flagrelay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flagrelay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "flagrelay.labels" -}}
helm.sh/chart: {{ include "flagrelay.chart" . }}
{{ include "flagrelay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "flagrelay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flagrelay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag, the tag defaulting to appVersion and ending in "-fips" for the FIPS image. */}}
{{- define "flagrelay.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag | toString }}
{{- if and .Values.image.fips (not (hasSuffix "-fips" $tag)) }}
{{- $tag = printf "%s-fips" $tag }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/* Ports the relay listens on, read from the config so they cannot disagree with it. */}}
{{- define "flagrelay.httpPort" -}}
{{- dig "server" "port" 1031 .Values.config }}
{{- end }}

{{- define "flagrelay.monitoringPort" -}}
{{- dig "server" "monitoringPort" "" .Values.config }}
{{- end }}

{{/* The named container port that serves /health, /ready and /metrics. */}}
{{- define "flagrelay.monitoringPortName" -}}
{{- if include "flagrelay.monitoringPort" . }}monitoring{{ else }}http{{ end }}
{{- end }}

{{/* The rendered config file; the checksum/config annotation hashes it. */}}
{{- define "flagrelay.configFile" -}}
{{- $config := deepCopy .Values.config }}
{{- $server := get $config "server" | default dict }}
{{- if not (hasKey $server "shutdownDelay") }}
{{- $_ := set $server "shutdownDelay" (printf "%ds" (int .Values.shutdownDelaySeconds)) }}
{{- end }}
{{- $_ := set $config "server" $server }}
{{- with .Values.fleet }}
{{- if .enabled }}
{{- $redis := dict }}
{{- with .redis.url }}{{- $_ := set $redis "url" . }}{{- end }}
{{- if .redis.sentinel.masterName }}
{{- $_ := set $redis "sentinel" (dict "masterName" .redis.sentinel.masterName "nodes" .redis.sentinel.nodes) }}
{{- end }}
{{- with .redis.caCertPath }}{{- $_ := set $redis "caCertPath" . }}{{- end }}
{{- with .redis.clientCertPath }}{{- $_ := set $redis "clientCertPath" . }}{{- end }}
{{- with .redis.clientKeyPath }}{{- $_ := set $redis "clientKeyPath" . }}{{- end }}
{{- $name := .name | default (include "flagrelay.fullname" $) }}
{{- $_ := set $config "fleet" (dict "name" $name "redis" $redis "convergenceTimeout" .convergenceTimeout "leaseTtl" .leaseTtl) }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* The rendered flag document: a YAML string as given, else the map ({} = zero flags). */}}
{{- define "flagrelay.flagsFile" -}}
{{- if kindIs "string" .Values.flags }}
{{- .Values.flags }}
{{- else }}
{{- toYaml (.Values.flags | default dict) }}
{{- end }}
{{- end }}

{{/* A list value (or an already comma-separated string) as the comma list the relay's
FLAGRELAY_ variables take. */}}
{{- define "flagrelay.commaList" -}}
{{- if kindIs "slice" . }}{{ join "," . }}{{ else }}{{ . | toString }}{{ end }}
{{- end }}

{{/* Secret entries the chart creates, key => value; empty when auth.existingSecret is used. */}}
{{- define "flagrelay.secretData" -}}
{{- $a := .Values.auth }}
{{- if not $a.existingSecret }}
{{- with $a.adminKeys }}
adminKeys: {{ include "flagrelay.commaList" . | b64enc }}
{{- end }}
{{- with $a.evaluationKeys }}
evaluationKeys: {{ include "flagrelay.commaList" . | b64enc }}
{{- end }}
{{- with $a.jwtSecret }}
jwtSecret: {{ . | toString | b64enc }}
{{- end }}
{{- end }}
{{- end }}

{{- define "flagrelay.secretName" -}}
{{- default (include "flagrelay.fullname" .) .Values.auth.existingSecret }}
{{- end }}

{{/* Fail early on settings that would render a broken release. */}}
{{- define "flagrelay.validate" -}}
{{- $a := .Values.auth }}
{{- if and $a.existingSecret (or $a.adminKeys $a.evaluationKeys $a.jwtSecret) }}
{{- fail "set either auth.existingSecret or auth.adminKeys/evaluationKeys/jwtSecret, not both" }}
{{- end }}
{{- $f := .Values.fleet }}
{{- if and $f.enabled (not $f.redis.url) (not $f.redis.sentinel.masterName) }}
{{- fail "fleet.enabled needs fleet.redis.url or fleet.redis.sentinel.masterName" }}
{{- end }}
{{- if and $f.enabled $f.redis.sentinel.masterName (not $f.redis.sentinel.nodes) }}
{{- fail "fleet.redis.sentinel.masterName needs fleet.redis.sentinel.nodes" }}
{{- end }}
{{- end }}

{{/* The FLAGRELAY_ variables that carry the credentials. From the chart's Secret: only those
that are set. From auth.existingSecret: all three, each optional. Empty when none. */}}
{{- define "flagrelay.secretEnv" -}}
{{- $a := .Values.auth }}
{{- $vars := list
  (list "FLAGRELAY_AUTHORIZEDKEYS_ADMIN" "adminKeys" $a.adminKeys)
  (list "FLAGRELAY_AUTHORIZEDKEYS_EVALUATION" "evaluationKeys" $a.evaluationKeys)
  (list "FLAGRELAY_AUTH_JWTSECRET" "jwtSecret" $a.jwtSecret) }}
{{- $env := list }}
{{- range $vars }}
{{- $name := index . 0 }}
{{- $field := index . 1 }}
{{- if $a.existingSecret }}
{{- $key := index $a.existingSecretKeys $field }}
{{- $env = append $env (dict "name" $name "valueFrom" (dict "secretKeyRef" (dict "name" $a.existingSecret "key" $key "optional" true))) }}
{{- else if index . 2 }}
{{- $env = append $env (dict "name" $name "valueFrom" (dict "secretKeyRef" (dict "name" (include "flagrelay.fullname" $) "key" $field))) }}
{{- end }}
{{- end }}
{{- $f := .Values.fleet }}
{{- if and $f.enabled $f.redis.existingSecret }}
{{- $env = append $env (dict "name" "FLAGRELAY_FLEET_REDIS_PASSWORD" "valueFrom" (dict "secretKeyRef" (dict "name" $f.redis.existingSecret "key" $f.redis.existingSecretKey))) }}
{{- end }}
{{- if $env }}
{{- toYaml $env }}
{{- end }}
{{- end }}
