# shellcheck shell=bash
# shellcheck disable=SC2034  # KERNEL_PACKAGE, VERSIONS and BUILD_WORK are set for the sourcing script
# Shared by the scripts in test/guests/ (sourced, never run): messages and timing, apt look-ups and installs, the
# recipe hash, and making and publishing a build directory in the guest cache.
# The sourcing script sets GUEST_TOOL (the prefix of its messages) first. Needs bash 4.
#
# Env (read here for all of them):
#   PREMISCALE_GUEST_CACHE   cache directory (default /var/cache/premiscale/guests)
#   PREMISCALE_SKIP_APT=1    never run apt-get update/install

GUEST_CACHE=${PREMISCALE_GUEST_CACHE:-/var/cache/premiscale/guests}
APT_UPDATED=${PREMISCALE_GUEST_APT_UPDATED:-}

say() { printf '%s: %s\n' "${GUEST_TOOL:-guests}" "$*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Runs `apt-get update` the first time it is called in this script; fails (status 1) when apt is forbidden or
# the lists were already updated, so callers retry a look-up only when something could have changed.
apt_update_once() {
  [ "${PREMISCALE_SKIP_APT:-0}" != 1 ] || return 1
  [ -z "$APT_UPDATED" ] || return 1
  say "apt-get update"
  apt-get update -qq
  APT_UPDATED=1
}

# Sets KERNEL_PACKAGE: the versioned package linux-image-cloud-amd64 depends on (linux-image-6.1.0-56-cloud-amd64).
# (These look-ups set variables rather than print, so that apt_update_once remembers it ran: no subshell.)
kernel_package() {
  local pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  if [ -z "$pkg" ] && apt_update_once; then
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  fi
  [ -n "$pkg" ] || die "apt does not know linux-image-cloud-amd64 (run apt-get update)"
  KERNEL_PACKAGE=$pkg
}

# PACKAGE... -> sets VERSIONS: one "name version" line per package, the apt candidate versions, in one apt-cache
# call (each costs ~0.5 s here: the image keeps no pkgcache.bin). Runs apt-get update once when one has no
# candidate, and dies naming those still without one.
candidate_versions() {
  local v
  v=$(apt-cache policy "$@" 2>/dev/null | awk '/^[^ ]/ {name = $1; sub(/:$/, "", name)} /Candidate:/ {print name, $2}')
  if { [ "$(wc -l <<<"$v")" != "$#" ] || grep -q '(none)' <<<"$v"; } && apt_update_once; then
    v=$(apt-cache policy "$@" 2>/dev/null | awk '/^[^ ]/ {name = $1; sub(/:$/, "", name)} /Candidate:/ {print name, $2}')
  fi
  local p missing=()
  for p in "$@"; do
    awk -v p="$p" '$1 == p && $2 != "(none)" {found = 1} END {exit !found}' <<<"$v" || missing+=("$p")
  done
  [ "${#missing[@]}" = 0 ] || die "apt has no installable version of: ${missing[*]}"
  VERSIONS=$v
}

# NAME -> the version of NAME in VERSIONS.
version_of() { awk -v p="$1" '$1 == p {print $2; exit}' <<<"$VERSIONS"; }

# COMMAND=PACKAGE... -> installs the packages of the commands that are missing (one apt-get install).
ensure_tools() {
  local pair need=()
  for pair in "$@"; do
    command -v "${pair%%=*}" >/dev/null || need+=("${pair#*=}")
  done
  [ "${#need[@]}" -gt 0 ] || return 0
  [ "${PREMISCALE_SKIP_APT:-0}" != 1 ] || die "missing ${need[*]} (apt-get install ${need[*]})"
  say "installing ${need[*]}"
  apt_update_once || true
  local out
  out=$(DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" 2>&1) || {
    printf '%s\n' "$out" >&2; die "apt-get install ${need[*]} failed"; }
}

# stdin -> the first 12 hex digits of its sha256: the <hash> of a build directory.
recipe_hash() { sha256sum | cut -c1-12; }

# SCRIPT... -> the scripts without their comment lines, for the recipe: editing a comment rebuilds nothing.
script_code() { grep -hv '^[[:space:]]*#' "$@"; }

# DIR FILE... -> true when DIR holds every FILE, non-empty (a finished build: unfinished ones are never renamed there).
is_built() {
  local dir=$1 f
  shift
  for f in "$@"; do [ -s "$dir/$f" ] || return 1; done
}

# NAME -> sets BUILD_WORK: a new temporary work directory $GUEST_CACHE/.NAME.XXXXXX, removed when the script exits.
# (Sets the EXIT trap: the sourcing script must not set its own.)
start_build() {
  mkdir -p "$GUEST_CACHE"
  BUILD_WORK=$(mktemp -d "$GUEST_CACHE/.$1.XXXXXX")
  chmod 0755 "$BUILD_WORK"
  trap 'rm -rf "$BUILD_WORK"' EXIT
}

# DIR PACKAGE=VERSION... -> the .deb files in DIR (apt-get download drops privileges to _apt when that user can
# write the directory; otherwise it warns). When stale apt lists name a version the mirror no longer has, updates
# them and runs the whole script again (it takes no arguments), since the versions are part of the recipe.
apt_download() {
  local dir=$1
  shift
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ] && getent passwd _apt >/dev/null; then chown _apt "$dir"; fi
  (cd "$dir" && apt-get download -qq "$@") && return 0
  if apt_update_once; then
    say "apt-get download failed: running again with fresh apt lists"
    [ -z "${BUILD_WORK:-}" ] || rm -rf "$BUILD_WORK"
    PREMISCALE_GUEST_APT_UPDATED=1 exec bash "$0"
  fi
  die "apt-get download $* failed"
}

# SRC OUT CHECKFILE -> renames the finished build SRC to OUT in one step (world-readable); another build of the same
# recipe may have finished first, which is fine when OUT/CHECKFILE exists.
publish_build() {
  chmod 0755 "$1"
  chmod 0644 "$1"/*
  if ! mv -T "$1" "$2" 2>/dev/null; then
    [ -s "$2/$3" ] || die "could not move the build to $2"
  fi
}
