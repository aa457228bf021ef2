#!/usr/bin/env bash
# Builds premiscale's real Debian cloud-init guest from Debian packages only, without loop devices (GUESTS.md):
# mmdebstrap (minbase + Debian's cloud kernel, systemd, cloud-init, ifupdown, openssh-server) -> adjustments ->
# mkfs.ext4 -d -> qemu-img convert -O qcow2; the kernel and initrd are copied out for direct kernel boot
# (cmdline `root=/dev/vda rw console=ttyS0 net.ifnames=0`). See README.md here.
#
# Output: $PREMISCALE_GUEST_CACHE (default /var/cache/premiscale/guests)/debian-<hash>/
#   {disk.qcow2,vmlinuz,initrd.img,recipe.txt,packages.txt}
# where <hash> covers this script and the candidate versions of the packages it asks for: rebuilt only when one
# changes. The last line of stdout is that directory. Needs root. Takes ~1-2 minutes; instant when cached.
#
# Env:
#   PREMISCALE_GUEST_CACHE    cache directory (default /var/cache/premiscale/guests)
#   PREMISCALE_DEBIAN_MIRROR  mirror for mmdebstrap (default: its own, deb.debian.org + bookworm-updates + security)
#   PREMISCALE_SKIP_APT=1     never run apt-get update/install (mmdebstrap must be installed)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST_TOOL=build-debian
# shellcheck source=lib.sh
. "$HERE/lib.sh"
SUITE=bookworm
DISK_SIZE=2G
PACKAGES=(linux-image-cloud-amd64 systemd systemd-sysv udev dbus cloud-init ifupdown isc-dhcp-client iproute2 netbase
  openssh-server)
# Every clone generates its own ssh host keys at first boot; only ed25519 (all four types cost ~12 s under TCG).
CLOUD_CFG='# premiscale test guest (test/guests/build-debian.sh)
datasource_list: [ NoCloud, None ]
locale: C.UTF-8
ssh_genkeytypes: [ed25519]
'

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap --mode=root, and the rootfs must hold root-owned files)"

kernel_package
kpkg=$KERNEL_PACKAGE
candidate_versions "${PACKAGES[@]}" "$kpkg"
recipe_versions=$VERSIONS
hash=$({ script_code "$HERE/build-debian.sh" "$HERE/lib.sh"; printf '%s\n' "$SUITE" "${PREMISCALE_DEBIAN_MIRROR:-}" "$recipe_versions"; } | recipe_hash)
out="$GUEST_CACHE/debian-$hash"
if is_built "$out" disk.qcow2 vmlinuz initrd.img; then
  say "cached: $(awk -v k="$kpkg" '$1 == k || $1 == "cloud-init" || $1 == "systemd" {printf "%s %s, ", $1, $2}' <<<"$recipe_versions" | sed 's/, $//')"
  printf '%s\n' "$out"
  exit 0
fi

started=$(now)
say "building debian-$hash ($SUITE: $kpkg, cloud-init $(version_of cloud-init))"
ensure_tools mmdebstrap=mmdebstrap mkfs.ext4=e2fsprogs qemu-img=qemu-utils
start_build "debian-$hash"
work=$BUILD_WORK
rootfs="$work/rootfs"
mkdir -p "$work/out"

t=$(now)
include=$(IFS=,; echo "${PACKAGES[*]}")
mirrors=()
[ -z "${PREMISCALE_DEBIAN_MIRROR:-}" ] || mirrors=("$PREMISCALE_DEBIAN_MIRROR")
log="$work/mmdebstrap.log"
# Before the kernel is installed: initramfs-tools puts fsck into the initrd only when it knows the root fs type, and
# it probes the root device for that, which does not exist at build time: tell it (FSTYPE).
if ! mmdebstrap --mode=root --variant=minbase --include="$include" --logfile="$log" \
    --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && echo FSTYPE=ext4 >"$1/etc/initramfs-tools/conf.d/premiscale-fstype"' \
    "$SUITE" "$rootfs" "${mirrors[@]}"; then
  tail -n 40 "$log" >&2 || true
  die "mmdebstrap failed"
fi
say "mmdebstrap: $(since "$t") s, $(du -sm "$rootfs" | cut -f1) MB"

# The adjustments that make one image good for many VMs (GUESTS.md).
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$rootfs/etc/fstab"
: >"$rootfs/etc/machine-id"                       # empty: each VM derives its own from its UUID at first boot
if [ -f "$rootfs/var/lib/dbus/machine-id" ] && [ ! -L "$rootfs/var/lib/dbus/machine-id" ]; then
  rm -f "$rootfs/var/lib/dbus/machine-id"
fi
printf '%s' "$CLOUD_CFG" >"$rootfs/etc/cloud/cloud.cfg.d/90-premiscale.cfg"
rm -f "$rootfs"/etc/ssh/ssh_host_*                 # every clone makes its own host keys
printf 'localhost\n' >"$rootfs/etc/hostname"      # cloud-init sets the real one from meta-data
rm -f "$rootfs/etc/resolv.conf"                   # nothing of the build host's network stays in the image

kernels=("$rootfs"/boot/vmlinuz-*)
initrds=("$rootfs"/boot/initrd.img-*)
[ "${#kernels[@]}" = 1 ] && [ -f "${kernels[0]}" ] || die "expected one /boot/vmlinuz-* in the rootfs"
[ "${#initrds[@]}" = 1 ] && [ -f "${initrds[0]}" ] || die "expected one /boot/initrd.img-* in the rootfs (initramfs-tools)"
kernel_version=${kernels[0]##*/vmlinuz-}
cp "${kernels[0]}" "$work/out/vmlinuz"
cp "${initrds[0]}" "$work/out/initrd.img"
dpkg-query --admindir="$rootfs/var/lib/dpkg" -W -f='${Package} ${Version}\n' >"$work/out/packages.txt"

t=$(now)
truncate -s "$DISK_SIZE" "$work/disk.raw"
mkfs.ext4 -q -F -L rootfs -d "$rootfs" "$work/disk.raw" >/dev/null
say "mkfs.ext4 -d: $(since "$t") s"
t=$(now)
qemu-img convert -O qcow2 "$work/disk.raw" "$work/out/disk.qcow2"
rm -f "$work/disk.raw"
say "qemu-img convert: $(since "$t") s, $(du -m "$work/out/disk.qcow2" | cut -f1) MiB"

{
  printf 'debian guest %s, built %s\n' "$hash" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf 'mmdebstrap --mode=root --variant=minbase --include=%s %s%s\n' "$include" "$SUITE" "${PREMISCALE_DEBIAN_MIRROR:+ $PREMISCALE_DEBIAN_MIRROR}"
  printf 'kernel %s; boot with: root=/dev/vda rw console=ttyS0 net.ifnames=0\n' "$kernel_version"
  printf 'requested package versions (apt candidates when built):\n%s\n' "$recipe_versions"
} >"$work/out/recipe.txt"
publish_build "$work/out" "$out" disk.qcow2
say "built in $(since "$started") s: kernel $kernel_version, cloud-init $(awk '$1 == "cloud-init" {print $2}' "$out/packages.txt")"
printf '%s\n' "$out"
