{{/* Names, labels and the config the pod runs with. */}}

{{- define "premiscale.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "premiscale.fullname" -}}
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

{{- define "premiscale.selectorLabels" -}}
app.kubernetes.io/name: {{ include "premiscale.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "premiscale.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "premiscale.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "premiscale.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "premiscale.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "premiscale.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Where the pod keeps things; the config's paths point here. */}}
{{- define "premiscale.paths" -}}
{{- dict "config" "/etc/premiscale/config" "state" "/var/lib/premiscale" "kubeconfig" "/etc/premiscale/kubeconfig" "grpcTls" "/etc/premiscale/externalgrpc" "home" "/home/premiscale" | toJson -}}
{{- end -}}

{{/*
The config as the pod runs it: the chart's paths and listen address under the user's config.yaml (the user's values
win, key by key). Renders YAML.
*/}}
{{- define "premiscale.config" -}}
{{- $paths := include "premiscale.paths" . | fromJson -}}
{{- $user := deepCopy (default dict .Values.config) -}}
{{- $defaults := dict "state" (dict "path" (printf "%s/state" $paths.state)) "server" (dict "listen" "0.0.0.0:8970") -}}
{{- if hasKey $user "kubernetes" -}}
{{- $k := dict "kubeconfig" (printf "%s/%s" $paths.kubeconfig (ternary .Values.kubeconfig.key "kubeconfig" (ne .Values.kubeconfig.existingSecret ""))) -}}
{{- if .Values.externalGrpcTlsSecret -}}
{{- $tls := dict "cert" (printf "%s/tls.crt" $paths.grpcTls) "key" (printf "%s/tls.key" $paths.grpcTls) "clientCa" (printf "%s/ca.crt" $paths.grpcTls) -}}
{{- $_ := set $k "externalGrpc" (dict "listen" "0.0.0.0:8972" "tls" $tls) -}}
{{- end -}}
{{- if .Values.leaderElection.enabled -}}
{{- /* One acting replica: premiscale's own switch, on the Lease the chart's Role allows. */ -}}
{{- $_ := set $k "leaderElection" (dict "enabled" true "leaseName" .Values.leaderElection.leaseName "namespace" .Release.Namespace) -}}
{{- end -}}
{{- $_ := set $defaults "kubernetes" $k -}}
{{- end -}}
{{- $cfg := mustMergeOverwrite $defaults $user -}}
{{- if and .Values.leaderElection.enabled $cfg.kubernetes -}}
{{- $le := default dict $cfg.kubernetes.leaderElection -}}
{{- $listen := dig "externalGrpc" "listen" "127.0.0.1:8972" $cfg.kubernetes | toString -}}
{{- $loopback := or (hasPrefix "127." $listen) (hasPrefix "localhost:" $listen) (hasPrefix "[::1]:" $listen) -}}
{{- if and $le.enabled (not $loopback) (ne (toString (default "cluster-autoscaler" $cfg.kubernetes.mode)) "native") (not (hasKey $le "endpoint")) -}}
{{- /* Only the leader listens: it writes the -leader Service's EndpointSlice with the pod's IP (POD_IP, the downward API). */ -}}
{{- $_ := set $le "endpoint" (dict "service" (include "premiscale.leaderServiceName" .) "addressEnv" "POD_IP") -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The selector-less Service whose EndpointSlice the leader writes. */}}
{{- define "premiscale.leaderServiceName" -}}
{{- printf "%s-leader" (include "premiscale.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{/*
The config's kubernetes.leaderElection.endpoint as JSON ({} without one): with it the chart makes the selector-less
Service it names, the pod's POD_IP, and the rights on that Service's EndpointSlice.
*/}}
{{- define "premiscale.leaderEndpoint" -}}
{{- $cfg := include "premiscale.config" . | fromYaml -}}
{{- $le := dig "kubernetes" "leaderElection" dict $cfg -}}
{{- if and .Values.leaderElection.enabled $le.enabled $le.endpoint -}}
{{- if and $le.endpoint.namespace (ne $le.endpoint.namespace .Release.Namespace) -}}
{{- fail (printf "values: config.kubernetes.leaderElection.endpoint.namespace is %s, but the chart makes the leader's Service and its rights in the release's namespace %s: leave namespace out" $le.endpoint.namespace .Release.Namespace) -}}
{{- end -}}
{{- toJson $le.endpoint -}}
{{- else -}}
{{- toJson dict -}}
{{- end -}}
{{- end -}}

{{/*
A listen address's port; fails, naming the value, for a loopback host (nothing outside the pod could reach it: not
the kubelet's probes, not the Service). Called with (list "<field>" "<host:port>").
*/}}
{{- define "premiscale.listenPort" -}}
{{- $field := index . 0 -}}
{{- $listen := index . 1 | toString -}}
{{- $port := regexFind "[0-9]+$" $listen -}}
{{- if not $port -}}
{{- fail (printf "values: %s %q has no port: write host:port, e.g. 0.0.0.0:8970" $field $listen) -}}
{{- end -}}
{{- $host := trimSuffix (printf ":%s" $port) $listen | trimPrefix "[" | trimSuffix "]" -}}
{{- if or (hasPrefix "127." $host) (eq $host "localhost") (eq $host "::1") -}}
{{- fail (printf "values: %s is %s, a loopback address: in a pod nothing else could reach it (probes, the Service); listen on 0.0.0.0:%s, or leave it out for the chart's default" $field $listen $port) -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{/* The check-in / metrics port (config.server.listen). */}}
{{- define "premiscale.httpPort" -}}
{{- $cfg := include "premiscale.config" . | fromYaml -}}
{{- include "premiscale.listenPort" (list "config.server.listen" $cfg.server.listen) -}}
{{- end -}}

{{/* The externalgrpc port, or "" when the config has no kubernetes block or it listens on loopback (its default). */}}
{{- define "premiscale.grpcPort" -}}
{{- $cfg := include "premiscale.config" . | fromYaml -}}
{{- if $cfg.kubernetes -}}
{{- $listen := dig "externalGrpc" "listen" "127.0.0.1:8972" $cfg.kubernetes | toString -}}
{{- if not (or (hasPrefix "127." $listen) (hasPrefix "localhost:" $listen) (hasPrefix "[::1]:" $listen)) -}}
{{- if not (dig "externalGrpc" "tls" "" $cfg.kubernetes) -}}
{{- fail (printf "values: config.kubernetes.externalGrpc.listen is %s without tls: cluster-autoscaler's calls change the cluster's size, so premiscale refuses plaintext beyond loopback; set externalGrpcTlsSecret (a Secret with tls.crt, tls.key, ca.crt)" $listen) -}}
{{- end -}}
{{- include "premiscale.listenPort" (list "config.kubernetes.externalGrpc.listen" $listen) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Whether the chart writes the in-cluster kubeconfig (a kubernetes block, no kubeconfig Secret). */}}
{{- define "premiscale.inClusterKubeconfig" -}}
{{- if and (hasKey (default dict .Values.config) "kubernetes") (not .Values.kubeconfig.existingSecret) -}}true{{- end -}}
{{- end -}}
