{{/*
Shared names and labels. Selector labels never change after install; the other labels carry the
chart and app versions (the manifests/ copy omits those Helm-only labels, see tests/it/chart.rs).
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "datadump-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name of every object: the release name, plus the chart name unless the release name contains it. */}}
{{- define "datadump-operator.fullname" -}}
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

{{/* chart-version for the helm.sh/chart label. */}}
{{- define "datadump-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "datadump-operator.labels" -}}
helm.sh/chart: {{ include "datadump-operator.chart" . }}
{{ include "datadump-operator.selectorLabels" . }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: datadump-operator
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the controller pods. */}}
{{- define "datadump-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "datadump-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount's name. */}}
{{- define "datadump-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "datadump-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Whether leader election is on: asked for, or more than one replica. Renders "true" or "false". */}}
{{- define "datadump-operator.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{/* The Lease's name. */}}
{{- define "datadump-operator.leaseName" -}}
{{- default (include "datadump-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}
