{{- define "streamd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Pod names are <fullname>-N and the headless service <fullname>-headless: keep room for both
within a 63-character DNS label. */}}
{{- define "streamd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "streamd.headless" -}}
{{- printf "%s-headless" (include "streamd.fullname" .) }}
{{- end }}

{{- define "streamd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "streamd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "streamd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The node id of pod ordinal .ordinal: nodeIds[ordinal], else ordinal+1. */}}
{{- define "streamd.nodeId" -}}
{{- $ids := .root.Values.nodeIds }}
{{- $key := toString .ordinal }}
{{- if hasKey $ids $key }}{{ index $ids $key | int64 }}{{ else }}{{ add1 .ordinal }}{{ end }}
{{- end }}

{{/* Where the other nodes reach pod ordinal .ordinal's gRPC port: its stable DNS name through the
headless service, which outlives the pod's IP. */}}
{{- define "streamd.peerAddress" -}}
{{- $root := .root }}
{{- printf "%s-%d.%s.%s.svc.%s:%d" (include "streamd.fullname" $root) (int .ordinal) (include "streamd.headless" $root) $root.Release.Namespace $root.Values.clusterDomain (int $root.Values.ports.grpc) }}
{{- end }}

{{- define "streamd.listen" -}}
{{- $host := .root.Values.config.listenAddress }}
{{- if contains ":" $host }}{{ printf "[%s]:%d" $host (int .port) }}{{ else }}{{ printf "%s:%d" $host (int .port) }}{{ end }}
{{- end }}
