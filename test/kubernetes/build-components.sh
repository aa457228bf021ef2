#!/usr/bin/env bash
# Builds the real Kubernetes components premiscale's Kubernetes tests run (test/support/kube-cluster.ts), from Go
# modules, once: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and cluster-autoscaler
# (externalgrpc provider only). See README.md here for versions, figures and traps.
#
# Output: $PREMISCALE_KUBE_CACHE (default /var/cache/premiscale/kubernetes)/<key>/bin/<component>, where <key> names
# the versions and ends in a hash of this script, the wrapper modules (modules/*/go.mod, go.sum) and the Go version:
# rebuilt only when one changes. $PREMISCALE_KUBE_CACHE/current points at the newest build. The last line of stdout
# is the <key> directory. Idempotent, safe to run from several processes at once; ~1 s when cached.
#
# cluster-autoscaler is not served by the Go module proxy reachable here (403 for its module, its list and every
# pseudo-version), so it is built from a kubernetes/autoscaler git repository given in PREMISCALE_AUTOSCALER_SRC
# (a clone or bare repo holding the pinned commit below; the upstream go.sum verifies every dependency). Without
# one it is skipped with a warning and the fixture's startClusterAutoscaler() says so.
#
# Env:
#   PREMISCALE_KUBE_CACHE       cache directory (default /var/cache/premiscale/kubernetes)
#   PREMISCALE_AUTOSCALER_SRC   git repository of kubernetes/autoscaler (optional, see above)
#   GOMODCACHE, GOCACHE, GOFLAGS, GOPROXY: the go command's own, left as they are
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${PREMISCALE_KUBE_CACHE:-/var/cache/premiscale/kubernetes}

KUBERNETES_VERSION=v1.36.3 # modules/control-plane/go.mod
ETCD_VERSION=v3.6.16       # modules/etcd/go.mod
KWOK_VERSION=v0.7.0        # modules/kwok/go.mod
AUTOSCALER_VERSION=1.36.1  # the tag cluster-autoscaler-1.36.1 of kubernetes/autoscaler, at this commit:
AUTOSCALER_COMMIT=35e8a280425c76a4040f57ae0fa232a952c02024

say() { printf 'build-components: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

command -v go >/dev/null || die "go is not installed (Go >= 1.26 is needed: the modules here say go 1.26.0)"
go_version=$(go env GOVERSION)

recipe_files=("$HERE/build-components.sh")
for m in control-plane etcd kwok; do
  for f in go.mod go.sum; do
    [ -f "$HERE/modules/$m/$f" ] || die "missing $HERE/modules/$m/$f"
    recipe_files+=("$HERE/modules/$m/$f")
  done
done
hash=$({ cat "${recipe_files[@]}"; printf '%s\n' "$go_version"; } | sha256sum | cut -c1-12)
key="k8s-${KUBERNETES_VERSION#v}-etcd-${ETCD_VERSION#v}-kwok-${KWOK_VERSION#v}-ca-$AUTOSCALER_VERSION-$hash"
out="$CACHE/$key"
bin="$out/bin"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok cluster-autoscaler)

missing() { local c; for c in "${COMPONENTS[@]}"; do [ -x "$bin/$c" ] || printf '%s\n' "$c"; done; }

point_current() { # the stable name, replaced in one step
  ln -sfn "$key" "$CACHE/.current.$$"
  mv -T "$CACHE/.current.$$" "$CACHE/current"
}

todo=$(missing)
if [ -z "$todo" ] || { [ "$todo" = cluster-autoscaler ] && [ -z "${PREMISCALE_AUTOSCALER_SRC:-}" ]; }; then
  [ -z "$todo" ] || say "warning: cluster-autoscaler is not built (set PREMISCALE_AUTOSCALER_SRC, see README.md)"
  say "cached: Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION in $out"
  [ "$(readlink "$CACHE/current" 2>/dev/null)" = "$key" ] || point_current
  printf '%s\n' "$out"
  exit 0
fi

mkdir -p "$bin"
exec 9>"$out/.lock"
flock 9 # another process may be building the same key: wait, then build only what it left missing
started=$(now)
say "building into $out with $go_version (GOMODCACHE=$(go env GOMODCACHE), GOCACHE=$(go env GOCACHE))"

# go build PKG into bin/NAME, atomically (a half-written binary never looks built).
build() { # NAME MODULE_DIR PACKAGE [go build args...]
  local name=$1 dir=$2 pkg=$3 t
  shift 3
  if [ -x "$bin/$name" ]; then return 0; fi
  t=$(now)
  say "$name: go build $pkg"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath "$@" -o "$bin/.$name.$$" "$pkg") || {
    rm -f "$bin/.$name.$$"
    die "$name: go build $pkg failed (see the errors above)"
  }
  mv -f "$bin/.$name.$$" "$bin/$name"
  say "$name: built in $(since "$t") s ($(du -m "$bin/$name" | cut -f1) MiB)"
  printf '%s %s s\n' "$name" "$(since "$t")" >>"$out/timings.txt"
}

# Downloads first, timed apart from compiling: listing the packages' dependencies fetches exactly the modules the
# builds need (a bare `go mod download` leaves many for go build to fetch). Each is checked against go.sum.
t=$(now)
(cd "$HERE/modules/control-plane" && go list -deps k8s.io/kubernetes/cmd/{kube-apiserver,kube-controller-manager,kube-scheduler} >/dev/null)
(cd "$HERE/modules/etcd" && go list -deps go.etcd.io/etcd/server/v3 >/dev/null)
(cd "$HERE/modules/kwok" && go list -deps sigs.k8s.io/kwok/cmd/kwok >/dev/null)
say "modules downloaded (or found in the module cache) in $(since "$t") s"
printf 'modules %s s\n' "$(since "$t")" >>"$out/timings.txt"

build etcd "$HERE/modules/etcd" go.etcd.io/etcd/server/v3

# /version and the binaries' --version report these (else v0.0.0-master); buildDate is the release's commit
# time from the module proxy, so the same recipe gives the same binaries.
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
build_date=$(cd "$HERE/modules/control-plane" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
kube_ldflags=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $p.gitVersion=$KUBERNETES_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  kube_ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$build_date"
done
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  build "$c" "$HERE/modules/control-plane" "k8s.io/kubernetes/cmd/$c" -ldflags "-s -w$kube_ldflags"
done

build kwok "$HERE/modules/kwok" sigs.k8s.io/kwok/cmd/kwok -ldflags "-s -w"

if [ ! -x "$bin/cluster-autoscaler" ]; then
  src=${PREMISCALE_AUTOSCALER_SRC:-}
  if [ -z "$src" ]; then
    say "warning: cluster-autoscaler skipped: the Go module proxy does not serve k8s.io/autoscaler/cluster-autoscaler;" \
      "set PREMISCALE_AUTOSCALER_SRC to a git repository of kubernetes/autoscaler holding $AUTOSCALER_COMMIT" \
      "(tag cluster-autoscaler-$AUTOSCALER_VERSION) and run this again"
  else
    git -C "$src" cat-file -e "$AUTOSCALER_COMMIT^{commit}" 2>/dev/null ||
      die "PREMISCALE_AUTOSCALER_SRC=$src is not a git repository holding commit $AUTOSCALER_COMMIT (cluster-autoscaler-$AUTOSCALER_VERSION)"
    work=$(mktemp -d "${TMPDIR:-/tmp}/premiscale-ca-src.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    # Only the cluster-autoscaler folder: its go.mod replaces .../apis with ./apis and pins every k8s.io module.
    git -C "$src" archive --format=tar "$AUTOSCALER_COMMIT" cluster-autoscaler | tar -x -C "$work"
    build cluster-autoscaler "$work/cluster-autoscaler" . -tags externalgrpc \
      -ldflags "-s -w -X k8s.io/autoscaler/cluster-autoscaler/version.ClusterAutoscalerVersion=$AUTOSCALER_VERSION"
  fi
fi

{
  printf 'Kubernetes %s, etcd %s, kwok %s, cluster-autoscaler %s (%s)\n' "$KUBERNETES_VERSION" "$ETCD_VERSION" \
    "$KWOK_VERSION" "$AUTOSCALER_VERSION" "$AUTOSCALER_COMMIT"
  printf 'built with %s, recipe hash %s, finished %s\n' "$go_version" "$hash" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$out/recipe.txt"
point_current
say "done in $(since "$started") s: $(du -sm "$bin" | cut -f1) MiB of binaries in $bin"
printf '%s\n' "$out"
