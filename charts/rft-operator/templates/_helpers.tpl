{{/* Chart name, truncated to a valid label value. */}}
{{- define "rft-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects. */}}
{{- define "rft-operator.fullname" -}}
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

{{- define "rft-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rft-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "rft-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "rft-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: rft
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "rft-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rft-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rft-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Least privilege: exactly the API calls the operator makes (docs/install.md, "Permissions"),
checked by tests/chart/test_rbac.py against the requests of a real run.
Namespaced rules: RFTRuns and the children of each run.
*/}}
{{- define "rft-operator.namespacedRules" -}}
# RFTRuns: watched by kopf, re-read under the reconcile lock, annotated by kopf (progress).
- apiGroups: ["rft.dev"]
  resources: ["rftruns"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["rft.dev"]
  resources: ["rftruns/status"]
  verbs: ["patch"]
# Sampler Deployments: watched (child index), server-side applied, deleted after scoring.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Scoring and training Jobs: watched, created, suspended/resumed (patch), deleted.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Sampler Services and the training headless Services: applied and deleted, never read.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "patch", "delete"]
# Job pods: read for their termination messages (watch cache).
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# Events on RFTRuns (the operator's and kopf's).
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end }}

{{/* Cluster-scoped rules kopf needs when it serves every namespace (a namespaced install
scans nothing cluster-wide: RFT_WATCH_NAMESPACE turns kopf's scanning off). */}}
{{- define "rft-operator.clusterRules" -}}
# kopf discovers and watches the CRDs it serves.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end }}
