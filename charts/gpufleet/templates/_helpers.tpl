{{/* Chart name, overridable with nameOverride. */}}
{{- define "gpufleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name: fullnameOverride, else the release name when it already contains
the chart name, else <release>-<chart>. Capped at 63 characters (DNS label).
*/}}
{{- define "gpufleet.fullname" -}}
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

{{- define "gpufleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries. */}}
{{- define "gpufleet.labels" -}}
helm.sh/chart: {{ include "gpufleet.chart" . }}
{{ include "gpufleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gpufleet
{{- end }}

{{/* Labels that select the operator pods; immutable once installed (Deployment selector). */}}
{{- define "gpufleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpufleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "gpufleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gpufleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: a digest pins the bits and wins over the tag; the tag defaults to appVersion. */}}
{{- define "gpufleet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Name of the metrics Service. */}}
{{- define "gpufleet.metricsServiceName" -}}
{{- printf "%s-metrics" (include "gpufleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}


{{/*
The namespaces the operator watches, comma-separated: watchNamespaces, else the release namespace only.
Empty (every namespace, cluster-wide RBAC) only with watchAllNamespaces=true: an explicit choice.
*/}}
{{- define "gpufleet.watchNamespaces" -}}
{{- if .Values.watchAllNamespaces -}}
{{- if .Values.watchNamespaces }}{{ fail "set either watchNamespaces or watchAllNamespaces=true, not both" }}{{ end -}}
{{- else if .Values.watchNamespaces -}}
{{ join "," .Values.watchNamespaces }}
{{- else -}}
{{ .Release.Namespace }}
{{- end -}}
{{- end }}


{{/*
The non-empty prefixes of "trust-remote-code" as one regex (argparse accepts any unambiguous prefix),
followed by the end of the flag name: prefixesRegex(["trust-remote-code"]) in operator/api/engine-args.ts.
*/}}
{{- define "gpufleet.trustRemoteCodePrefixes" -}}
(?:t(?:r(?:u(?:s(?:t(?:-(?:r(?:e(?:m(?:o(?:t(?:e(?:-(?:c(?:o(?:d(?:e)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)?)$
{{- end }}
