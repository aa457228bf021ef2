#!/usr/bin/env bash
# Builds premiscale's tiny busybox guest from Debian packages only: Debian's cloud kernel (the package that
# linux-image-cloud-amd64 depends on) and an initramfs of busybox-static, 17 kernel modules and test/guests/busybox/
# (its /init reads the NoCloud seed, runs udhcpc and does what cloud-init's phone_home does). See README.md here.
#
# Output: $PREMISCALE_GUEST_CACHE (default /var/cache/premiscale/guests)/busybox-<hash>/{vmlinuz,initrd.img,recipe.txt},
# where <hash> covers this script, the files in busybox/ and the package versions: rebuilt only when one changes.
# The last line of stdout is that directory. Needs root (apt-get, mknod) the first time; quick when cached.
#
# Env:
#   PREMISCALE_GUEST_CACHE   cache directory (default /var/cache/premiscale/guests)
#   PREMISCALE_SKIP_APT=1    never run apt-get update/install (packages must already be known/installed)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST_TOOL=build-busybox
# shellcheck source=lib.sh
. "$HERE/lib.sh"
FILES=("$HERE/busybox/init" "$HERE/busybox/udhcpc.script" "$HERE/busybox/poweroff")
# What /init loads (GUESTS.md's 15: virtio-net, the IDE cdrom with the seed, iso9660; then the ACPI power button and
# evdev, so that busybox acpid sees the button that `virsh shutdown` presses). Each after its dependencies, see below.
MODULES=(virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net
  scsi_common scsi_mod libata ata_piix cdrom sr_mod isofs button evdev)

kernel_package
kpkg=$KERNEL_PACKAGE
candidate_versions "$kpkg" busybox-static
kver=$(version_of "$kpkg")
bver=$(version_of busybox-static)

for f in "${FILES[@]}"; do [ -f "$f" ] || die "missing $f"; done
hash=$({ script_code "$HERE/build-busybox.sh" "$HERE/lib.sh"; cat "${FILES[@]}"; printf '%s\n' "$kpkg=$kver" "busybox-static=$bver" "${MODULES[*]}"; } | recipe_hash)
out="$GUEST_CACHE/busybox-$hash"
if is_built "$out" vmlinuz initrd.img; then
  say "cached: $kpkg $kver, busybox-static $bver"
  printf '%s\n' "$out"
  exit 0
fi

started=$(now)
say "building busybox-$hash: $kpkg $kver, busybox-static $bver"
ensure_tools cpio=cpio
start_build "busybox-$hash"
work=$BUILD_WORK
mkdir -p "$work/kernel" "$work/busybox" "$work/root" "$work/out"
apt_download "$work/debs" "$kpkg=$kver" "busybox-static=$bver"
dpkg-deb -x "$work/debs/${kpkg}_"*.deb "$work/kernel"
dpkg-deb -x "$work/debs/busybox-static_"*.deb "$work/busybox"

moddirs=("$work/kernel/lib/modules/"*)
[ "${#moddirs[@]}" = 1 ] && [ -d "${moddirs[0]}" ] || die "expected one /lib/modules/<version> in $kpkg"
moddir=${moddirs[0]}
kernel_version=$(basename "$moddir")
vmlinuz="$work/kernel/boot/vmlinuz-$kernel_version"
[ -f "$vmlinuz" ] || die "no /boot/vmlinuz-$kernel_version in $kpkg"

root="$work/root"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,seed,etc/acpi/PWRF,lib/modules,var/run,var/log}
install -m 0755 "$work/busybox/bin/busybox" "$root/bin/busybox"
applets=$("$root/bin/busybox" --list-full)
while read -r applet; do
  [ -n "$applet" ] && [ "$applet" != bin/busybox ] || continue
  mkdir -p "$root/$(dirname "$applet")"
  ln -sf /bin/busybox "$root/$applet"
done <<<"$applets"
install -m 0755 "$HERE/busybox/init" "$root/init"
install -m 0755 "$HERE/busybox/udhcpc.script" "$root/etc/udhcpc.script"
install -m 0755 "$HERE/busybox/poweroff" "$root/etc/acpi/PWRF/00000080"
# The kernel opens /dev/console for /init before devtmpfs is mounted.
if [ "$(id -u)" = 0 ]; then mknod -m 0600 "$root/dev/console" c 5 1; fi

: >"$root/etc/modules"
# Index the package's modules by name, then load each wanted module after the modules it depends on (the depends=
# of its .modinfo): the order GUESTS.md lists does not hold for every kernel (in 6.1.0-56, virtio needs virtio_ring).
declare -A ko_of=() visited=()
while IFS= read -r -d '' f; do
  b=$(basename "$f"); b=${b%.*}; [ "${b%.ko}" = "$b" ] || b=${b%.ko}
  ko_of[$b]=$f
done < <(find "$moddir/kernel" \( -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' -o -name '*.ko.gz' \) -print0)
in_modules() { local x; for x in "${MODULES[@]}"; do [ "$x" != "$1" ] || return 0; done; return 1; }
add_module() { # NAME: add its dependencies, then itself
  local m=$1 f dep deps
  [ -z "${visited[$m]:-}" ] || return 0
  visited[$m]=1
  f=${ko_of[$m]:-}
  if [ -z "$f" ]; then
    f=${m//_/-}; f=${ko_of[$f]:-}   # file names may spell _ as -
  fi
  if [ -z "$f" ]; then
    builtin=$(grep -E "/($m|${m//_/-})\.ko$" "$moddir/modules.builtin" || true)
    [ -n "$builtin" ] || die "module $m is neither in $kpkg nor built in"
    say "module $m is built into the kernel"
    return 0
  fi
  case "$f" in
    *.xz) xz -dc "$f" >"$root/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" >"$root/lib/modules/$m.ko" ;;
    *.gz) gzip -dc "$f" >"$root/lib/modules/$m.ko" ;;
    *) cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
  deps=$(tr '\0' '\n' <"$root/lib/modules/$m.ko" | sed -n 's/^depends=//p' | head -n 1)
  for dep in ${deps//,/ }; do
    if [ -z "${visited[$dep]:-}" ] && ! in_modules "$dep"; then say "module $m also needs $dep"; fi
    add_module "$dep"
  done
  printf '%s\n' "$m" >>"$root/etc/modules"
}
for m in "${MODULES[@]}"; do add_module "$m"; done

(cd "$root" && find . -mindepth 1 -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) | gzip -9 -n >"$work/out/initrd.img"
cp "$vmlinuz" "$work/out/vmlinuz"
{
  printf 'busybox guest %s, built %s\n' "$hash" "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  printf '%s\n' "$kpkg $kver (kernel $kernel_version)" "busybox-static $bver" "modules: $(tr '\n' ' ' <"$root/etc/modules")"
} >"$work/out/recipe.txt"
# Publish atomically: another build of the same recipe may have finished meanwhile.
publish_build "$work/out" "$out" initrd.img
size=$(du -k "$out/initrd.img" | cut -f1)
say "built in $(since "$started") s: kernel $kernel_version, initrd.img ${size} KiB"
printf '%s\n' "$out"
