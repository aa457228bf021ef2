#!/usr/bin/env bash
# Boots one guest on the local libvirtd and waits for it to phone home: proves a guest built by build-busybox.sh or
# build-debian.sh reads a NoCloud seed like premiscale's and checks in. Usage: try-guest.sh busybox|debian
#
# Builds the guest if needed, starts a listener on 127.0.0.1:<free port>, makes a cidata seed (genisoimage) whose
# user-data has phone_home to http://10.0.2.2:PORT/phone-home/$INSTANCE_ID, uploads it as a volume (and, for
# debian, a qcow2 overlay on the cached disk.qcow2), defines and starts a `guesttest-…` domain (type qemu, user
# networking, direct kernel boot, serial console logged to a file), prints the time from `virsh start` to the POST
# and the POST, then shuts the domain down (ACPI) and removes everything it made, also on failure or Ctrl-C.
#
# Env:
#   LIBVIRT_URI (qemu:///system)   POOL (default)   MEMORY_MIB (busybox 128, debian 256)
#   TIMEOUT (seconds to wait for the POST; busybox 60, debian 300)   SHUTDOWN_TIMEOUT (60)
#   CMDLINE_EXTRA                  appended to the kernel command line (e.g. fastboot: no fsck in the initrd)
#   PHONE_HOME_STYLE=block|flow    how user-data spells phone_home (block: url/post on their own lines)
#   KEEP_LOG=1                     keep the console log (its path is printed) instead of deleting it
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST_TOOL=try-guest
# shellcheck source=lib.sh
. "$HERE/lib.sh"   # say, die, now, since

kind=${1:-}
case "$kind" in
  busybox) mem=${MEMORY_MIB:-128}; timeout=${TIMEOUT:-60} ;;
  debian) mem=${MEMORY_MIB:-256}; timeout=${TIMEOUT:-300} ;;
  *) echo "usage: $0 busybox|debian" >&2; exit 2 ;;
esac
URI=${LIBVIRT_URI:-qemu:///system}
POOL=${POOL:-default}
style=${PHONE_HOME_STYLE:-block}
v() { virsh -q -c "$URI" "$@"; }

for cmd in virsh genisoimage python3; do command -v "$cmd" >/dev/null || die "$cmd is not installed (providers/libvirt/setup-host.sh)"; done
v uri >/dev/null || die "libvirtd does not answer on $URI"

t_build=$(now)
build_out=$(bash "$HERE/build-$kind.sh") || die "build-$kind.sh failed"
dir=$(tail -n 1 <<<"$build_out")
say "guest $dir (ready in $(since "$t_build") s)"

name="guesttest-$kind-$(date +%H%M%S)-$$"
uuid=$(cat /proc/sys/kernel/random/uuid)
seed_vol="$name-seed.iso"
disk_vol="$name.qcow2"
tmp=$(mktemp -d /tmp/guesttest.XXXXXX)
chmod 0755 "$tmp"
listener_pid=""
made_seed="" made_disk="" defined=""

delete_vol() {
  v vol-info --pool "$POOL" "$1" >/dev/null 2>&1 || return 0
  v vol-delete --pool "$POOL" "$1" >/dev/null 2>&1 || say "could not delete volume $1"
}
# Each flag is set before the call that makes the thing, so an interruption in between cannot leak it.
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -z "$listener_pid" ] || kill "$listener_pid" 2>/dev/null || true
  if [ -n "$defined" ] && v dominfo "$name" >/dev/null 2>&1; then
    state=$(v domstate "$name" 2>/dev/null || true)
    case "$state" in *"shut off"*|"") ;; *) v destroy "$name" >/dev/null 2>&1 || true ;; esac
    v undefine "$name" >/dev/null 2>&1 || say "could not undefine $name"
  fi
  [ -z "$made_disk" ] || delete_vol "$disk_vol"
  [ -z "$made_seed" ] || delete_vol "$seed_vol"
  if [ "${KEEP_LOG:-0}" = 1 ] && [ -f "$tmp/console.log" ]; then
    cp "$tmp/console.log" "/tmp/$name.console.log" && say "console log kept: /tmp/$name.console.log"
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The listener, on a free port of the host's loopback (the guest reaches it as 10.0.2.2).
python3 "$HERE/listener.py" "$tmp/port" "$tmp/post.json" &
listener_pid=$!
for _ in $(seq 1 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || die "the listener did not start"
port=$(cat "$tmp/port")

# The seed, as premiscale makes it (providers/libvirt/seed.ts): meta-data, user-data, network-config.
mkdir "$tmp/seed"
printf 'instance-id: %s\nlocal-hostname: %s\n' "$uuid" "$name" >"$tmp/seed/meta-data"
url="http://10.0.2.2:$port/phone-home/\$INSTANCE_ID"
if [ "$style" = flow ]; then
  printf '#cloud-config\nphone_home: {url: "%s", post: all, tries: 10}\n' "$url" >"$tmp/seed/user-data"
else
  printf '#cloud-config\nphone_home:\n  url: %s\n  post: all\n  tries: 10\n' "$url" >"$tmp/seed/user-data"
fi
printf 'version: 2\nethernets:\n  eth0:\n    dhcp4: true\n' >"$tmp/seed/network-config"
genisoimage -quiet -output "$tmp/seed.iso" -volid cidata -joliet -rock \
  "$tmp/seed/user-data" "$tmp/seed/meta-data" "$tmp/seed/network-config"
seed_size=$(stat -c %s "$tmp/seed.iso")
made_seed=1
v vol-create-as "$POOL" "$seed_vol" "$seed_size" --format raw >/dev/null
v vol-upload --pool "$POOL" "$seed_vol" "$tmp/seed.iso"

disk_xml=""
cmdline="console=ttyS0"
if [ "$kind" = debian ]; then
  # A copy-on-write overlay on the cached image (vol-create-as --backing-vol accepts only volumes libvirt knows).
  cat >"$tmp/disk-vol.xml" <<EOF
<volume>
  <name>$disk_vol</name>
  <capacity unit='G'>4</capacity>
  <target><format type='qcow2'/><compat>1.1</compat></target>
  <backingStore><path>$dir/disk.qcow2</path><format type='qcow2'/></backingStore>
</volume>
EOF
  made_disk=1
  v vol-create "$POOL" "$tmp/disk-vol.xml" >/dev/null
  disk_xml="    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source pool='$POOL' volume='$disk_vol'/>
      <target dev='vda' bus='virtio'/>
    </disk>"
  cmdline="root=/dev/vda rw console=ttyS0 net.ifnames=0"
fi

cmdline="$cmdline${CMDLINE_EXTRA:+ $CMDLINE_EXTRA}"

cat >"$tmp/domain.xml" <<EOF
<domain type='qemu'>
  <name>$name</name>
  <uuid>$uuid</uuid>
  <memory unit='MiB'>$mem</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$dir/vmlinuz</kernel>
    <initrd>$dir/initrd.img</initrd>
    <cmdline>$cmdline</cmdline>
  </os>
  <features>
    <acpi/>
    <apic/>
    <tcg><tb-cache unit='MiB'>128</tb-cache></tcg>
  </features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
$disk_xml
    <disk type='volume' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source pool='$POOL' volume='$seed_vol'/>
      <target dev='hdc' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='user'>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <log file='$tmp/console.log' append='off'/>
    </serial>
    <console type='pty'/>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
defined=1
v define "$tmp/domain.xml" >/dev/null

say "starting $name ($kind, ${mem} MiB, TCG), waiting up to ${timeout} s for the POST on 127.0.0.1:$port"
t0=$(now)
v start "$name" >/dev/null
say "virsh start returned after $(since "$t0") s"
while [ ! -s "$tmp/post.json" ]; do
  if awk -v a="$t0" -v b="$(now)" -v t="$timeout" 'BEGIN { exit !(b - a > t) }'; then
    say "no POST after ${timeout} s; the end of the console:"
    tail -n 30 "$tmp/console.log" >&2 || true
    exit 1
  fi
  state=$(v domstate "$name" 2>/dev/null || true)
  case "$state" in
    running*) ;;
    *) say "the domain is '$state' without having phoned home; the end of the console:"
       tail -n 30 "$tmp/console.log" >&2 || true
       exit 1 ;;
  esac
  sleep 0.1
done
post=$(cat "$tmp/post.json")
elapsed=$(python3 -c 'import json,sys; print("%.1f" % (json.loads(sys.argv[1])["time"] - float(sys.argv[2])))' "$post" "$t0")
echo "phoned home ${elapsed} s after virsh start"
python3 -c '
import json, sys, urllib.parse
p = json.loads(sys.argv[1])
print("  POST", p["path"])
print("  User-Agent:", p["user_agent"])
print("  Content-Type:", p["content_type"])
print("  body:", p["body"])
fields = dict(urllib.parse.parse_qsl(p["body"]))
ok = p["path"] == "/phone-home/" + sys.argv[2] and fields.get("instance_id") == sys.argv[2]
print("  instance id in path and body:", "yes" if ok else "NO")
sys.exit(0 if ok else 1)' "$post" "$uuid" || die "the POST does not carry this instance's id"
console=$(cat "$tmp/console.log" 2>/dev/null || true)
markers=$(grep -aE 'premiscale-guest:|phone_home|Cloud-init v\. .*(running|finished)' <<<"$console" || true)
[ -z "$markers" ] || { echo "console:"; sed 's/^/  /' <<<"$markers" | tr -d '\r'; }

say "virsh shutdown $name"
t1=$(now)
v shutdown "$name" >/dev/null
shutdown_timeout=${SHUTDOWN_TIMEOUT:-60}
while :; do
  state=$(v domstate "$name" 2>/dev/null || true)
  case "$state" in *"shut off"*) echo "shut off $(since "$t1") s after virsh shutdown"; break ;; esac
  if awk -v a="$t1" -v b="$(now)" -v t="$shutdown_timeout" 'BEGIN { exit !(b - a > t) }'; then
    echo "still '$state' ${shutdown_timeout} s after virsh shutdown: virsh destroy"
    v destroy "$name" >/dev/null
    break
  fi
  sleep 0.2
done
tail_log=$(tail -n 3 "$tmp/console.log" 2>/dev/null | tr -d '\r' || true)
[ -z "$tail_log" ] || { echo "console end:"; sed 's/^/  /' <<<"$tail_log"; }
echo "ok: $kind guest booted from $dir and phoned home in ${elapsed} s"
