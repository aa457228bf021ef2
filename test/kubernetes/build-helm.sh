#!/usr/bin/env bash
# Builds Helm, which the chart's tests (deploy/helm/premiscale, test/helm-chart.kubernetes.test.ts) run for
# `helm lint` and `helm template`, from the Go module proxy, once. A sibling of build-components.sh, in its style:
# Helm has no `replace` lines in its go.mod, so `go install helm.sh/helm/v4/cmd/helm@VERSION` builds it directly
# (no wrapper module), every download checked against the checksum database as the go command does.
#
# Output: $PREMISCALE_KUBE_CACHE (default /var/cache/premiscale/kubernetes)/<key>/bin/helm, where <key> names the
# version and ends in a hash of this script and the Go version: rebuilt only when one changes.
# $PREMISCALE_KUBE_CACHE/helm-current points at the newest build. The last line of stdout is the binary's path.
# Idempotent, safe to run from several processes at once; ~0.05 s when cached.
#
# Env:
#   PREMISCALE_KUBE_CACHE       cache directory (default /var/cache/premiscale/kubernetes)
#   GOMODCACHE, GOCACHE, GOFLAGS, GOPROXY: the go command's own, left as they are
set -euo pipefail

CACHE=${PREMISCALE_KUBE_CACHE:-/var/cache/premiscale/kubernetes}

HELM_VERSION=v4.3.2 # the newest helm.sh/helm/v4 the proxy serves; k8s.io modules v0.37.2

say() { printf 'build-helm: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

command -v go >/dev/null || die "go is not installed (Go >= 1.26 is needed: helm $HELM_VERSION's go.mod says go 1.26.0)"
go_version=$(go env GOVERSION)

hash=$({ cat "${BASH_SOURCE[0]}"; printf '%s\n' "$go_version"; } | sha256sum | cut -c1-12)
key="helm-${HELM_VERSION#v}-$hash"
out="$CACHE/$key"
bin="$out/bin"

point_current() { # the stable name, replaced in one step
  ln -sfn "$key" "$CACHE/.helm-current.$$"
  mv -T "$CACHE/.helm-current.$$" "$CACHE/helm-current"
}

if [ -x "$bin/helm" ]; then
  say "cached: helm $HELM_VERSION in $bin"
  [ "$(readlink "$CACHE/helm-current" 2>/dev/null)" = "$key" ] || point_current
  printf '%s\n' "$bin/helm"
  exit 0
fi

mkdir -p "$bin"
exec 9>"$out/.lock"
flock 9 # another process may be building the same key: wait, then find it built
if [ ! -x "$bin/helm" ]; then
  started=$(now)
  say "building helm $HELM_VERSION into $bin with $go_version (GOMODCACHE=$(go env GOMODCACHE), GOCACHE=$(go env GOCACHE))"
  # GOBIN is a private directory, so a half-written binary never looks built; the version is stamped as helm's
  # Makefile does (else `helm version` says v4.3 with no patch).
  tmpbin=$(mktemp -d "$out/.gobin.XXXXXX")
  trap 'rm -rf "$tmpbin"' EXIT
  GOBIN=$tmpbin CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" || die "go install helm.sh/helm/v4/cmd/helm@$HELM_VERSION failed (see the errors above)"
  mv -f "$tmpbin/helm" "$bin/helm"
  printf 'helm %s s\n' "$(since "$started")" >>"$out/timings.txt"
  printf 'helm %s, built with %s, recipe hash %s, finished %s\n' "$HELM_VERSION" "$go_version" "$hash" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$out/recipe.txt"
  say "done in $(since "$started") s: $(du -m "$bin/helm" | cut -f1) MiB"
fi
point_current
printf '%s\n' "$bin/helm"
