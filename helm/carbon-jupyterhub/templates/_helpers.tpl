{{/* Fixed names: the jupyterhub subchart's values refer to these objects (Helm cannot template values). */}}
{{- define "carbon.configMapName" -}}carbon-sdk-config{{- end -}}
{{- define "carbon.secretName" -}}carbon-sdk-secrets{{- end -}}
{{- define "carbon.hubSecretName" -}}carbon-hub-secrets{{- end -}}

{{- define "carbon.labels" -}}
app.kubernetes.io/name: carbon-jupyterhub
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: carbon
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* z2jh's selector labels of its pods (app=jupyterhub, component, release). */}}
{{- define "carbon.z2jhSelector" -}}
app: {{ .Values.jupyterhub.nameOverride | default "jupyterhub" }}
release: {{ .Release.Name }}
{{- end -}}

{{/* config.yaml for the SDK: one section per enabled service with `config`. */}}
{{- define "carbon.sdkConfig" -}}
{{- $out := dict -}}
{{- range $name, $svc := .Values.services -}}
{{- if and $svc.enabled $svc.config -}}
{{- $_ := set $out $name $svc.config -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Refuse values whose fixed-name references or URLs disagree. */}}
{{- define "carbon.guards" -}}
{{- $su := .Values.jupyterhub.singleuser -}}
{{- $volumes := dict -}}
{{- range ($su.storage.extraVolumes | default list) -}}
{{- $_ := set $volumes .name . -}}
{{- end -}}
{{- $cfg := get $volumes "carbon-config" | default dict -}}
{{- if ne (dig "configMap" "name" "" $cfg) (include "carbon.configMapName" .) -}}
{{- fail (printf "jupyterhub.singleuser.storage.extraVolumes needs the volume carbon-config from the ConfigMap %s" (include "carbon.configMapName" .)) -}}
{{- end -}}
{{- $sec := get $volumes "carbon-secrets" | default dict -}}
{{- if ne (dig "secret" "secretName" "" $sec) (include "carbon.secretName" .) -}}
{{- fail (printf "jupyterhub.singleuser.storage.extraVolumes needs the volume carbon-secrets from the Secret %s" (include "carbon.secretName" .)) -}}
{{- end -}}
{{- if and (not .Values.secrets.existingSecret) (not .Values.secrets.inline) -}}
{{- fail "secrets: set existingSecret (production) or inline (dev only)" -}}
{{- end -}}
{{- if and .Values.secrets.existingSecret .Values.secrets.inline -}}
{{- fail "secrets: existingSecret and inline are exclusive" -}}
{{- end -}}
{{- if and .Values.hubSecrets.existingSecret .Values.hubSecrets.inline -}}
{{- fail "hubSecrets: existingSecret and inline are exclusive" -}}
{{- end -}}
{{- range $name, $_ := .Values.secrets.inline -}}
{{- $svc := get $.Values.services $name | default dict -}}
{{- if not $svc.enabled -}}
{{- fail (printf "secrets.inline.%s: the service %s is not enabled" $name $name) -}}
{{- end -}}
{{- end -}}
{{- $oauth := .Values.jupyterhub.hub.config.GenericOAuthenticator | default dict -}}
{{- $base := printf "https://%s.cloudflareaccess.com/cdn-cgi/access/sso/oidc/%s/" .Values.cloudflareAccess.team .Values.cloudflareAccess.clientId -}}
{{- range $key, $suffix := dict "authorize_url" "authorization" "token_url" "token" "userdata_url" "userinfo" -}}
{{- if ne (get $oauth $key) (printf "%s%s" $base $suffix) -}}
{{- fail (printf "jupyterhub.hub.config.GenericOAuthenticator.%s must be %s%s (cloudflareAccess.team and clientId)" $key $base $suffix) -}}
{{- end -}}
{{- end -}}
{{- if ne (toString (get $oauth "client_id")) (toString .Values.cloudflareAccess.clientId) -}}
{{- fail "jupyterhub.hub.config.GenericOAuthenticator.client_id must equal cloudflareAccess.clientId" -}}
{{- end -}}
{{- end -}}
