{{- define "fjord-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fjord-operator.labels" -}}
app.kubernetes.io/name: fjord-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "fjord-operator.selectorLabels" -}}
app.kubernetes.io/name: fjord-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fjord-operator.serviceAccountName" -}}
{{- default (include "fjord-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "fjord-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
