{{/* Names and labels */}}
{{- define "okrsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "okrsync.fullname" -}}
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

{{- define "okrsync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "okrsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: include "okrsync.selectorLabels" (dict "root" $ "component" "sidecar") */}}
{{- define "okrsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "okrsync.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "okrsync.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/*
One OKRSYNC_* variable from a Secret: the chart's own Secret when secret.create, else ref.existingSecret/ref.key;
nothing when neither holds it.
  include "okrsync.secretEnv" (dict "root" $ "name" "OKRSYNC_…" "ref" .Values.hubspot.accessToken "createdKey" "hubspot-access-token")
*/}}
{{- define "okrsync.secretEnv" -}}
{{- $values := .root.Values -}}
{{- if $values.secret.create -}}
{{- if index $values.secret.values .createdKey }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "okrsync.fullname" .root }}
      key: {{ .createdKey }}
{{- end }}
{{- else if .ref.existingSecret }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .ref.existingSecret }}
      key: {{ .ref.key }}
{{- end }}
{{- end -}}

{{/* The Secret holding the Salesforce JWT private key, as "name key" (empty when none) */}}
{{- define "okrsync.salesforceKeySecret" -}}
{{- if .Values.secret.create -}}
{{- if index .Values.secret.values "salesforce-jwt-private-key" -}}
{{- printf "%s salesforce-jwt-private-key" (include "okrsync.fullname" .) -}}
{{- end -}}
{{- else if .Values.salesforce.jwtPrivateKey.existingSecret -}}
{{- printf "%s %s" .Values.salesforce.jwtPrivateKey.existingSecret .Values.salesforce.jwtPrivateKey.key -}}
{{- end -}}
{{- end -}}

{{- define "okrsync.salesforceKeyPath" -}}
/etc/okrsync/salesforce/jwt-private-key.pem
{{- end -}}

{{/* The environment shared by every okrsync container */}}
{{- define "okrsync.env" -}}
{{- $db := include "okrsync.secretEnv" (dict "root" . "name" "OKRSYNC_DATABASE_URL" "ref" .Values.database "createdKey" "database-url") -}}
{{- if not $db -}}
{{- fail "okrsync needs PostgreSQL: set database.existingSecret (or secret.create with secret.values.database-url)" -}}
{{- end -}}
{{- $db }}
- name: OKRSYNC_DATA_DIR
  value: /var/lib/okrsync
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- if .Values.salesforce.enabled }}
- name: OKRSYNC_SALESFORCE__CONSUMER_KEY
  value: {{ required "salesforce.consumerKey is required when salesforce.enabled" .Values.salesforce.consumerKey | quote }}
- name: OKRSYNC_SALESFORCE__USERNAME
  value: {{ required "salesforce.username is required when salesforce.enabled" .Values.salesforce.username | quote }}
- name: OKRSYNC_SALESFORCE__LOGIN_URL
  value: {{ .Values.salesforce.loginUrl | quote }}
{{- if .Values.salesforce.instanceUrl }}
- name: OKRSYNC_SALESFORCE__INSTANCE_URL
  value: {{ .Values.salesforce.instanceUrl | quote }}
{{- end }}
{{- if include "okrsync.salesforceKeySecret" . }}
- name: OKRSYNC_SALESFORCE__JWT_PRIVATE_KEY_FILE
  value: {{ include "okrsync.salesforceKeyPath" . }}
{{- end }}
{{- include "okrsync.secretEnv" (dict "root" . "name" "OKRSYNC_SALESFORCE__CONSUMER_SECRET" "ref" .Values.salesforce.consumerSecret "createdKey" "salesforce-consumer-secret") }}
{{- include "okrsync.secretEnv" (dict "root" . "name" "OKRSYNC_SALESFORCE__PASSWORD" "ref" .Values.salesforce.password "createdKey" "salesforce-password") }}
{{- include "okrsync.secretEnv" (dict "root" . "name" "OKRSYNC_SALESFORCE__SECURITY_TOKEN" "ref" .Values.salesforce.securityToken "createdKey" "salesforce-security-token") }}
{{- end }}
{{- if .Values.hubspot.enabled }}
{{- $token := include "okrsync.secretEnv" (dict "root" . "name" "OKRSYNC_HUBSPOT__ACCESS_TOKEN" "ref" .Values.hubspot.accessToken "createdKey" "hubspot-access-token") }}
{{- if not $token }}
{{- fail "hubspot.enabled needs hubspot.accessToken.existingSecret (or secret.values.hubspot-access-token)" }}
{{- end }}
{{- $token }}
{{- end }}
{{- $publicUrl := .Values.webhooks.publicBaseUrl | default (ternary (printf "https://%s" .Values.ingress.host) "" .Values.ingress.enabled) }}
{{- if $publicUrl }}
- name: OKRSYNC_WEBHOOKS__PUBLIC_BASE_URL
  value: {{ $publicUrl | quote }}
{{- end }}
{{- if .Values.webhooks.salesforceOrgId }}
- name: OKRSYNC_WEBHOOKS__SALESFORCE_ORG_ID
  value: {{ .Values.webhooks.salesforceOrgId | quote }}
{{- end }}
{{- include "okrsync.secretEnv" (dict "root" . "name" "OKRSYNC_WEBHOOKS__HUBSPOT_CLIENT_SECRET" "ref" .Values.webhooks.hubspotClientSecret "createdKey" "hubspot-client-secret") }}
{{- include "okrsync.secretEnv" (dict "root" . "name" "OKRSYNC_WEBHOOKS__FLOW_SECRET" "ref" .Values.webhooks.flowSecret "createdKey" "flow-secret") }}
{{- include "okrsync.secretEnv" (dict "root" . "name" "OKRSYNC_NOTIFICATIONS__SLACK_WEBHOOK_URL" "ref" .Values.notifications.slackWebhookUrl "createdKey" "slack-webhook-url") }}
{{- include "okrsync.secretEnv" (dict "root" . "name" "OKRSYNC_NOTIFICATIONS__TEAMS_WEBHOOK_URL" "ref" .Values.notifications.teamsWebhookUrl "createdKey" "teams-webhook-url") }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Volumes of every okrsync pod: writable /tmp and data dir (the root filesystem is read-only), the Salesforce key */}}
{{- define "okrsync.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
{{- $key := include "okrsync.salesforceKeySecret" . }}
{{- if and .Values.salesforce.enabled $key }}
{{- $parts := splitList " " $key }}
- name: salesforce-jwt
  secret:
    secretName: {{ index $parts 0 }}
    defaultMode: 0440
    items:
      - key: {{ index $parts 1 }}
        path: {{ base (include "okrsync.salesforceKeyPath" .) }}
{{- end }}
{{- end -}}

{{- define "okrsync.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/okrsync
{{- if and .Values.salesforce.enabled (include "okrsync.salesforceKeySecret" .) }}
- name: salesforce-jwt
  mountPath: {{ dir (include "okrsync.salesforceKeyPath" .) }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by the sidecar, worker and migration pods */}}
{{- define "okrsync.podSpec" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.serviceAccountName }}
serviceAccountName: {{ .Values.serviceAccountName }}
{{- end }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  {{- include "okrsync.volumes" . | trim | nindent 2 }}
{{- end -}}

{{/* Pod annotations: a checksum of the chart's own Secret (pods roll when it changes) and the component's own.
  include "okrsync.podAnnotations" (dict "root" $ "extra" .Values.sidecar.podAnnotations) */}}
{{- define "okrsync.podAnnotations" -}}
{{- if .root.Values.secret.create }}
checksum/secret: {{ toJson .root.Values.secret.values | sha256sum }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}
