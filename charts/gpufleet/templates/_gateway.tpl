{{/*
The inference gateway's names, labels and RBAC rules. THE ONE PLACE its permissions are listed
(gateway-rbac.yaml binds them): read ModelDeployments and the workload chain Deployment ->
ReplicaSet -> Pod by which it knows a pod is a ModelDeployment's (owner references, by uid), and
patch ModelDeployments for its demand annotation `demand.gpufleet.io/<pod>` only. Nothing else.
*/}}

{{- define "gpufleet.gateway.fullname" -}}
{{- printf "%s-gateway" (include "gpufleet.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gpufleet.gateway.serviceAccountName" -}}
{{- default (include "gpufleet.gateway.fullname" .) .Values.gateway.serviceAccount.name }}
{{- end }}

{{/* Labels that select the gateway pods; immutable once installed (Deployment selector). */}}
{{- define "gpufleet.gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gpufleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "gpufleet.gateway.labels" -}}
helm.sh/chart: {{ include "gpufleet.chart" . }}
{{ include "gpufleet.gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gpufleet
{{- end }}

{{/* The gateway runs from the operator's image unless it names its own. */}}
{{- define "gpufleet.gateway.image" -}}
{{- $image := .Values.gateway.image }}
{{- $repository := default .Values.image.repository $image.repository }}
{{- if $image.digest }}
{{- printf "%s@%s" $repository $image.digest }}
{{- else if and (not $image.repository) .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (default (default .Chart.AppVersion .Values.image.tag) $image.tag) }}
{{- end }}
{{- end }}

{{- define "gpufleet.rbac.gatewayRules" -}}
# ModelDeployments: watched, to route each `model` to the ModelDeployment that serves it; patch, only to
# write this replica's demand annotation (held requests, last request time) that wakes a model at zero.
# The gateway reads everything through informers (list + watch), never by name: no `get`.
- apiGroups: ["gpufleet.io"]
  resources: ["modeldeployments"]
  verbs: ["list", "watch", "patch"]
# ModelRoutes: read only (an informer: list + watch), for model aliases that cascade across
# ModelDeployments of one family.
- apiGroups: ["gpufleet.io"]
  resources: ["modelroutes"]
  verbs: ["list", "watch"]
# Pods: watched, for the ready pod IPs the gateway sends requests to and scrapes metrics from.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Deployments and ReplicaSets: watched, to check a pod's controller chain up to its ModelDeployment by uid
# (labels can be set by anyone who can create a pod; owner uids cannot be forged into this chain).
- apiGroups: ["apps"]
  resources: ["deployments", "replicasets"]
  verbs: ["list", "watch"]
# StatefulSets: watched, the link Pod -> StatefulSet -> LeaderWorkerSet by which a multi-node group's
# leader (the pod that serves the API) is known to be its ModelDeployment's, by uid.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["list", "watch"]
# LeaderWorkerSets (sigs.k8s.io/lws): watched, the link LeaderWorkerSet -> ModelDeployment of that chain.
# Where the CRD is not installed the gateway keeps retrying and serves single-node models as before.
- apiGroups: ["leaderworkerset.x-k8s.io"]
  resources: ["leaderworkersets"]
  verbs: ["list", "watch"]
{{- end }}
