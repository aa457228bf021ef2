#!/usr/bin/env bash
# Makes a guest usable by premiscale configs: builds it (cached, build-<kind>.sh) and puts its base image into a
# libvirt storage pool, then prints what a group template needs. Idempotent; safe to run from several processes
# at once (one install per kind at a time). Usage: install-guest.sh busybox|debian [--json]
#
#   busybox: base image premiscale-blank.qcow2, an empty 64 MiB qcow2 (the guest lives in its initramfs and never
#            reads the disk; premiscale still gives every VM an overlay disk). Boots with cmdline console=ttyS0.
#   debian:  base image premiscale-debian-<hash>.qcow2, the built disk.qcow2 uploaded into the pool (vol-upload:
#            libvirt makes overlays only on volumes it knows, never on a path outside its pools). Boots with
#            root=/dev/vda rw console=ttyS0 net.ifnames=0. A finished upload is recorded in
#            $PREMISCALE_GUEST_CACHE/.installed/; a volume of that name without the record (an interrupted upload)
#            is deleted and uploaded again.
#
# Also points $PREMISCALE_GUEST_CACHE/<kind> (a symlink) at the build, so a config can name stable paths such as
# /var/cache/premiscale/guests/busybox/vmlinuz (examples/busybox.yaml does).
#
# Output on stdout, shell-assignable (`eval "$(bash test/guests/install-guest.sh busybox)"`), or one JSON object
# with --json (keys in camelCase: kind, dir, kernel, initrd, cmdline, pool, baseImage, minDiskGiB, memoryMiB):
#   GUEST_KIND GUEST_DIR GUEST_KERNEL GUEST_INITRD GUEST_CMDLINE GUEST_POOL GUEST_BASE_IMAGE
#   GUEST_MIN_DISK_GIB (smallest disk.sizeGiB: the base's virtual size)  GUEST_MEMORY_MIB (what the guest was tried with)
#
# Env: LIBVIRT_URI (qemu:///system), POOL (default), PREMISCALE_GUEST_CACHE, PREMISCALE_SKIP_APT (see lib.sh)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST_TOOL=install-guest
# shellcheck source=lib.sh
. "$HERE/lib.sh"

kind=${1:-}
format=${2:-shell}
case "$kind" in busybox | debian) ;; *) echo "usage: $0 busybox|debian [--json]" >&2; exit 2 ;; esac
case "$format" in shell | --json) ;; *) echo "usage: $0 busybox|debian [--json]" >&2; exit 2 ;; esac
URI=${LIBVIRT_URI:-qemu:///system}
POOL=${POOL:-default}
v() { virsh -q -c "$URI" "$@"; }

command -v virsh >/dev/null || die "virsh is not installed (run providers/libvirt/setup-host.sh)"
v pool-info "$POOL" >/dev/null 2>&1 || die "libvirt on $URI has no storage pool '$POOL' (run providers/libvirt/setup-host.sh)"

mkdir -p "$GUEST_CACHE"
exec 9>"$GUEST_CACHE/.install-$kind.lock"
flock 9

t=$(now)
dir=$(bash "$HERE/build-$kind.sh" | tail -n 1)
[ -d "$dir" ] || die "build-$kind.sh did not print its output directory"
# The stable name, replaced in one step (rename over the old symlink).
ln -sfn "$(basename "$dir")" "$GUEST_CACHE/.$kind.link.$$"
mv -T "$GUEST_CACHE/.$kind.link.$$" "$GUEST_CACHE/$kind"

has_vol() { v vol-info --pool "$POOL" "$1" >/dev/null 2>&1; }

if [ "$kind" = busybox ]; then
  base=premiscale-blank.qcow2
  cmdline="console=ttyS0"
  min_gib=1
  memory=96
  if ! has_vol "$base"; then
    say "creating $base (empty, 64 MiB) in pool $POOL"
    v vol-create-as "$POOL" "$base" 64M --format qcow2 >/dev/null || has_vol "$base" || die "could not create $base"
  fi
else
  base="premiscale-$(basename "$dir").qcow2"
  cmdline="root=/dev/vda rw console=ttyS0 net.ifnames=0"
  min_gib=2
  memory=256
  mkdir -p "$GUEST_CACHE/.installed"
  stamp="$GUEST_CACHE/.installed/$(printf '%s %s %s' "$URI" "$POOL" "$base" | sha256sum | cut -c1-16)"
  if has_vol "$base" && [ ! -e "$stamp" ]; then
    say "$base exists in pool $POOL without a finished upload: uploading it again"
    v vol-delete --pool "$POOL" "$base" >/dev/null
  fi
  if ! has_vol "$base"; then
    rm -f "$stamp"
    size=$(stat -c %s "$dir/disk.qcow2")
    say "uploading $dir/disk.qcow2 ($((size / 1048576)) MiB) to pool $POOL as $base"
    v vol-create-as "$POOL" "$base" "${size}b" --format qcow2 >/dev/null
    v vol-upload --pool "$POOL" "$base" "$dir/disk.qcow2"
    printf '%s %s %s\n' "$URI" "$POOL" "$base" >"$stamp"
  fi
fi
say "$kind guest ready in $(since "$t") s: base image $base in pool $POOL, kernel $dir/vmlinuz"

if [ "$format" = --json ]; then
  json() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }
  printf '{"kind":%s,"dir":%s,"kernel":%s,"initrd":%s,"cmdline":%s,"pool":%s,"baseImage":%s,"minDiskGiB":%d,"memoryMiB":%d}\n' \
    "$(json "$kind")" "$(json "$dir")" "$(json "$dir/vmlinuz")" "$(json "$dir/initrd.img")" "$(json "$cmdline")" \
    "$(json "$POOL")" "$(json "$base")" "$min_gib" "$memory"
else
  for kv in "GUEST_KIND=$kind" "GUEST_DIR=$dir" "GUEST_KERNEL=$dir/vmlinuz" "GUEST_INITRD=$dir/initrd.img" \
    "GUEST_CMDLINE=$cmdline" "GUEST_POOL=$POOL" "GUEST_BASE_IMAGE=$base" "GUEST_MIN_DISK_GIB=$min_gib" \
    "GUEST_MEMORY_MIB=$memory"; do
    printf '%s=%q\n' "${kv%%=*}" "${kv#*=}"
  done
fi
