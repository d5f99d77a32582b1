{{/* Names and labels shared by the templates. */}}

{{- define "patchgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's resource name: "patchgate" for a release named patchgate. */}}
{{- define "patchgate.fullname" -}}
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

{{- define "patchgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "patchgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "patchgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "patchgate.labels" -}}
helm.sh/chart: {{ include "patchgate.chart" . }}
{{ include "patchgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: patchgate
{{- end }}

{{- define "patchgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "patchgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "patchgate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Emits the YAML documents of a file in files/ (a copy of the repository's crds/
folder, kept identical by hack/render-deploy.sh), with the chart's labels added
and, given "keep", the annotation that makes `helm uninstall` leave them.
*/}}
{{- define "patchgate.filesDocuments" -}}
{{- $root := .root }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" ($root.Files.Get .file) -1 }}
{{- $obj := fromYaml $doc }}
{{- if and $obj $obj.kind }}
{{- $meta := $obj.metadata }}
{{- $_ := set $meta "labels" (merge (fromYaml (include "patchgate.labels" $root)) (default dict $meta.labels)) }}
{{- if $.keep }}
{{- $_ := set $meta "annotations" (merge (dict "helm.sh/resource-policy" "keep") (default dict $meta.annotations)) }}
{{- end }}
---
{{ toYaml $obj }}
{{- end }}
{{- end }}
{{- end }}
