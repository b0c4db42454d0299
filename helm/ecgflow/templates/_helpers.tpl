{{/*
Names, labels and the small pieces several templates share.
*/}}

{{/* The chart name (nameOverride wins). */}}
{{- define "ecgflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name: "ecgflow" for a release named ecgflow, else RELEASE-ecgflow. */}}
{{- define "ecgflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ecgflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries, but the selector ones. */}}
{{- define "ecgflow.baseLabels" -}}
helm.sh/chart: {{ include "ecgflow.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: ecgflow
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of an object with its own name label (the InferenceServices). */}}
{{- define "ecgflow.labels" -}}
{{ include "ecgflow.baseLabels" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of one component: call with (dict "root" $ "component" "mlflow"). */}}
{{- define "ecgflow.componentLabels" -}}
{{ include "ecgflow.baseLabels" .root }}
{{ include "ecgflow.selectorLabels" . }}
{{- end -}}

{{/* Selector labels of one component (stable across upgrades). */}}
{{- define "ecgflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ecgflow.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ecgflow.mlflow.fullname" -}}
{{- printf "%s-mlflow" (include "ecgflow.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ecgflow.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "ecgflow.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret holding the PostgreSQL password: the given one or the generated one. */}}
{{- define "ecgflow.postgresql.secretName" -}}
{{- default (include "ecgflow.postgresql.fullname" .) .Values.postgresql.auth.existingSecret -}}
{{- end -}}

{{/* The S3 Secret the ServiceAccount and MLflow use; empty when there is none. */}}
{{- define "ecgflow.s3.secretName" -}}
{{- if .Values.s3.existingSecret -}}
{{- .Values.s3.existingSecret -}}
{{- else if include "ecgflow.s3.createSecret" . -}}
{{- .Values.s3.secretName -}}
{{- end -}}
{{- end -}}

{{/* "true" when the chart creates the S3 Secret from values (non-empty string = true). */}}
{{- define "ecgflow.s3.createSecret" -}}
{{- if and (not .Values.s3.existingSecret) (or .Values.s3.accessKeyId .Values.s3.secretAccessKey) -}}
{{- if not (and .Values.s3.accessKeyId .Values.s3.secretAccessKey) -}}
{{- fail "s3: set both s3.accessKeyId and s3.secretAccessKey, or neither (better: s3.existingSecret)" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* http(s)://endpoint for clients that want a URL (MLflow, boto3); empty for AWS S3. */}}
{{- define "ecgflow.s3.endpointUrl" -}}
{{- with .Values.s3.endpoint -}}
{{- printf "%s://%s" (ternary "https" "http" $.Values.s3.useHttps) . -}}
{{- end -}}
{{- end -}}

{{/* KServe's S3 annotations (on the S3 Secret and the serving ServiceAccount). */}}
{{- define "ecgflow.s3.kserveAnnotations" -}}
{{- with .Values.s3.endpoint }}
serving.kserve.io/s3-endpoint: {{ . | quote }}
{{- end }}
serving.kserve.io/s3-usehttps: {{ ternary "1" "0" .Values.s3.useHttps | quote }}
serving.kserve.io/s3-verifyssl: {{ ternary "1" "0" .Values.s3.verifySsl | quote }}
serving.kserve.io/s3-region: {{ .Values.s3.region | quote }}
{{- end -}}

{{/* image reference from {repository, tag} */}}
{{- define "ecgflow.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* imagePullSecrets of a pod spec; empty when there are none. */}}
{{- define "ecgflow.imagePullSecrets" -}}
{{- with .Values.images.pullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* MLflow's in-cluster URL */}}
{{- define "ecgflow.mlflow.url" -}}
{{- printf "http://%s.%s.svc.%s:%d" (include "ecgflow.mlflow.fullname" .) .Release.Namespace .Values.clusterDomain (int .Values.mlflow.service.port) -}}
{{- end -}}

{{/* The Secret with MLflow's admin credentials (mlflow.auth): the given one or the generated one;
empty when auth is off. */}}
{{- define "ecgflow.mlflow.authSecretName" -}}
{{- if and .Values.mlflow.enabled .Values.mlflow.auth.enabled -}}
{{- default (printf "%s-auth" (include "ecgflow.mlflow.fullname" .)) .Values.mlflow.auth.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* A hardened container's volume for /tmp and its mount (readOnlyRootFilesystem). */}}
{{- define "ecgflow.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end -}}
