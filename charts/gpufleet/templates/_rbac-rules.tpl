{{/*
THE ONE PLACE where the operator's permissions are listed. rbac.yaml binds them; the chart README
repeats the rationale. Least privilege: no wildcards, no Secrets (except `get` in hub.tenantTokenNamespaces,
hub-tenant-tokens-rbac.yaml), and every verb is one the operator sends (test/helm-operator-rbac.test.ts
records the real operator's requests and fails on a granted verb nothing used). Every object the operator
creates carries an owner reference to its ModelDeployment, so the garbage collector deletes them; `delete`
serves only the backstop for objects it missed (operator/controller/orphans.ts), with a uid precondition.
*/}}

{{/* Namespaced rules, granted in every watched namespace (or cluster-wide when watching all). */}}
{{- define "gpufleet.rbac.workloadRules" -}}
# ModelDeployments: watched as the source of truth; get confirms one live before taking over or deleting
# objects of a deleted namesake. The operator never writes a ModelDeployment itself (no finalizer).
- apiGroups: ["gpufleet.io"]
  resources: ["modeldeployments"]
  verbs: ["get", "list", "watch"]
# status: the operator reports conditions, plan and autoscaler observations (server-side apply = patch).
- apiGroups: ["gpufleet.io"]
  resources: ["modeldeployments/status"]
  verbs: ["patch"]
# scale: the autoscaler writes spec.replicas through the scale subresource (a merge patch), like HPA does.
- apiGroups: ["gpufleet.io"]
  resources: ["modeldeployments/scale"]
  verbs: ["patch"]
# ModelRoutes: watched, to write their status (whether the alias serves, which step's ModelDeployment is
# missing); the operator is that status's only writer (a merge patch). It never writes a route's spec.
- apiGroups: ["gpufleet.io"]
  resources: ["modelroutes"]
  verbs: ["list", "watch"]
# ModelRoute status: the operator's merge patch of it (conditions, resolved steps, observedGeneration).
- apiGroups: ["gpufleet.io"]
  resources: ["modelroutes/status"]
  verbs: ["patch"]
# finalizers: setting blockOwnerDeletion=true on owner references to a ModelDeployment requires
# update on its finalizers subresource (OwnerReferencesPermissionEnforcement).
- apiGroups: ["gpufleet.io"]
  resources: ["modeldeployments/finalizers"]
  verbs: ["update"]
# Deployments: one per ModelDeployment runs the engine pods; read by name before each write (ownership),
# created and then patched (server-side apply; scaled to zero when the plan moves the replicas to a
# LeaderWorkerSet), watched for status; delete: the orphan backstop.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Services: the OpenAI-compatible endpoint of each ModelDeployment; read by name before each write, listed
# by the orphan backstop (not watched).
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "create", "patch", "delete"]
# PodDisruptionBudgets: keep serving capacity during node drains; as Services.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "create", "patch", "delete"]
# ConfigMaps, read by name: the one a pvc/uri ModelDeployment names in spec.model.source.configMap (its
# config.json, bounded to 256 KiB); and the autoscaler's workload history, one per ModelDeployment
# (<name>-autoscaling-history, owned by it), read back after a restart or a leader change, created, then
# patched. list (by label, never watched) and delete: the orphan backstop, for history ConfigMaps only
# (get on any name is granted already, so list adds enumeration, not reach).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["get", "list", "create", "patch", "delete"]
# Pods: read only (watched), for readiness and the pod IPs whose /metrics the autoscaler scrapes; while
# replicas are spilled over, also listed by node (fieldSelector spec.nodeName) in all namespaces when this is
# a ClusterRole, so the free-GPU estimate counts other work on the GPU nodes (only GPU requests are kept).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# ReplicaSets: read only, the link Pod -> ReplicaSet -> Deployment by which the autoscaler knows a pod
# is its ModelDeployment's (by owner uid, never by a label a tenant can put on any pod).
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list", "watch"]
# LeaderWorkerSets (sigs.k8s.io/lws), only where that CRD is installed: one per ModelDeployment whose
# replica spans nodes (a group of pods per replica), read by name, created and patched (server-side apply;
# scaled to zero when the plan goes back to one node per replica); list (by label) and delete: the orphan
# backstop.
- apiGroups: ["leaderworkerset.x-k8s.io"]
  resources: ["leaderworkersets"]
  verbs: ["get", "list", "create", "patch", "delete"]
# StatefulSets: read only, the link Pod -> StatefulSet -> LeaderWorkerSet by which the autoscaler knows a
# group leader is its ModelDeployment's.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["list", "watch"]
# InferencePools (Gateway API Inference Extension), only where that CRD is installed: one per
# ModelDeployment selecting its pods, created and then patched (server-side apply); never read back.
- apiGroups: ["inference.networking.k8s.io"]
  resources: ["inferencepools"]
  verbs: ["create", "patch"]
# Events: what the operator did and why, shown by `kubectl describe modeldeployment`.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/* Cluster-scoped rules: always a ClusterRole, even with watchNamespaces. */}}
{{- define "gpufleet.rbac.clusterRules" -}}
# Nodes: read only (watched), to discover GPU node pools (GPU product, count, memory, zone) and free capacity.
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["list", "watch"]
{{- end }}

{{/* /metrics authentication and authorization (metrics.authorization.enabled): a ClusterRole. */}}
{{- define "gpufleet.rbac.metricsAuthRules" -}}
# TokenReviews: who is the caller of /metrics (its bearer token).
- apiGroups: ["authentication.k8s.io"]
  resources: ["tokenreviews"]
  verbs: ["create"]
# SubjectAccessReviews: may that caller `get /metrics`.
- apiGroups: ["authorization.k8s.io"]
  resources: ["subjectaccessreviews"]
  verbs: ["create"]
{{- end }}

{{/* Leader election: a Role in the release namespace only. */}}
{{- define "gpufleet.rbac.leaderElectionRules" -}}
# Leases: one replica holds the Lease and reconciles; the others wait to take it over.
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end }}
