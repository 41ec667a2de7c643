#!/bin/sh
# Builds the Linux test guest into OUTDIR: OUTDIR/vmlinuz (Debian's kernel of
# the installed linux-image-amd64, copied as is) and OUTDIR/initrd.img (a
# gzip'd newc initramfs: busybox-static, the NIC driver modules with the
# modules they need, iperf3/ethtool/tcpdump/ping (iputils) with their shared libraries, and
# tests/linux/init, which runs the test plan on the kernel command line; see
# docs/linux-guest.md). Only installed Debian packages are used, nothing is
# downloaded. The same inputs give the same bytes (sorted file list, one
# fixed mtime, owner 0:0, renumbered inodes, gzip without name/time), and a
# stamp of the inputs makes a second run with nothing changed a no-op.
#
# usage: scripts/build-linux-guest.sh OUTDIR
# exit status: 0 built or up to date, 2 a package is missing (message says
# which; tests turn that into a skip), 1 anything else.
set -eu
umask 022
export LC_ALL=C

out=${1:?usage: build-linux-guest.sh OUTDIR}
src=$(cd "$(dirname "$0")/.." && pwd)
init=$src/tests/linux/init
dhcp_script=$src/tests/linux/udhcpc.script

missing() {
    echo "build-linux-guest: $1 (scripts/install-deps.sh installs it)" >&2
    exit 2
}

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# The kernel: the version linux-image-amd64 depends on right now, not
# whatever uname says (the host's own kernel is not Debian's here).
installed linux-image-amd64 || missing "linux-image-amd64 is not installed"
kpkg=$(dpkg-query -W -f='${Depends}' linux-image-amd64 | tr ',' '\n' |
       sed -n 's/^ *\(linux-image-[0-9][^ ]*\).*/\1/p' | head -1)
[ -n "$kpkg" ] || missing "cannot tell which kernel linux-image-amd64 depends on"
installed "$kpkg" || missing "$kpkg is not installed"
vmlinuz=$(dpkg -L "$kpkg" | grep '^/boot/vmlinuz-' | head -1)
[ -n "$vmlinuz" ] && [ -r "$vmlinuz" ] || missing "$kpkg has no readable /boot/vmlinuz-*"
kver=${vmlinuz#/boot/vmlinuz-}
moddir=/lib/modules/$kver
[ -r "$moddir/modules.dep" ] || missing "$moddir/modules.dep is missing"
for p in busybox-static iperf3 ethtool tcpdump iputils-ping cpio; do
    installed "$p" || missing "$p is not installed"
done

# The modules the plan needs, by name; their dependencies come from
# modules.dep. 8021q is for the VLAN step of later plans.
WANT="virtio virtio_ring virtio_pci virtio_pci_legacy_dev virtio_pci_modern_dev
failover net_failover virtio_net e1000 8139cp 8139too mii 8021q"
# iputils' ping for its -M do (DF set), which busybox ping lacks; it stays
# at /usr/bin/ping behind busybox's /bin/ping in the guest's PATH.
BINS="/usr/bin/iperf3 /usr/sbin/ethtool /usr/bin/tcpdump /usr/bin/ping"

# Everything that decides the output's bytes goes into the stamp: a change
# to any package version, this script, the init or the DHCP script rebuilds.
stamp_text=$(
    echo "kernel $kver"
    dpkg-query -W -f='${Package} ${Version}\n' "$kpkg" busybox-static iperf3 ethtool \
        tcpdump iputils-ping libcap2 libidn2-0 libunistring2 libc6 libiperf0 libpcap0.8 2>/dev/null
    sha256sum "$0" "$init" "$dhcp_script" | cut -d' ' -f1
)
mkdir -p "$out"
# Two tests may build into the same OUTDIR at once: one builds, the other
# waits and then finds the stamp current.
exec 9>"$out/.lock"
flock 9
if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.img" ] && [ -f "$out/stamp" ] &&
   [ "$(cat "$out/stamp")" = "$stamp_text" ]; then
    exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qnic-linux-guest.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/etc" \
         "$root/lib/modules" "$root/run" "$root/var/run"

cp /bin/busybox "$root/bin/busybox"
# /init is a busybox sh script: the kernel needs /bin/sh to run it; every
# other applet link is made by init itself (busybox --install), which keeps
# the archive small and its list independent of busybox's applet set.
ln -s busybox "$root/bin/sh"
cp "$init" "$root/init"
chmod 755 "$root/init"
cp "$dhcp_script" "$root/etc/udhcpc.script"
chmod 755 "$root/etc/udhcpc.script"
printf 'root:x:0:0:root:/:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"

# Modules, dependencies first: modules.dep lists a module's dependencies
# (all of them, transitively) with the ones loaded last first, so walking
# that list from its end and recursing gives a valid load order.
dep_line() {
    # The modules.dep line of module $1 (file names may spell _ as -).
    awk -v want="$1" -F: '{
        n = $1; sub(/.*\//, "", n); sub(/\.ko(\.(xz|zst|gz))?$/, "", n); gsub(/-/, "_", n)
        if (n == want) { print; exit }
    }' "$moddir/modules.dep"
}
builtin_module() {
    awk -v want="$1" '{ n = $0; sub(/.*\//, "", n); sub(/\.ko$/, "", n); gsub(/-/, "_", n)
        if (n == want) { found = 1; exit } } END { exit !found }' "$moddir/modules.builtin"
}
order=$tmp/order
: > "$order"
add_module() {
    # $1: a module name or a modules.dep path.
    name=$(echo "$1" | sed 's,.*/,,; s/\.ko\(\.xz\|\.zst\|\.gz\)\{0,1\}$//; s/-/_/g')
    grep -qx "$name" "$tmp/seen" 2>/dev/null && return 0
    echo "$name" >> "$tmp/seen"
    if builtin_module "$name"; then
        echo "build-linux-guest: $name is built into $kver" >&2
        return 0
    fi
    line=$(dep_line "$name")
    [ -n "$line" ] || { echo "build-linux-guest: module $name is not in $moddir/modules.dep" >&2; exit 1; }
    path=${line%%:*}
    deps=${line#*:}
    # Recursion in sh has no locals: hand the reversed list to a loop that
    # saves path across calls on a stack file.
    echo "$path" >> "$tmp/stack"
    for d in $(echo $deps | tr ' ' '\n' | sed '1!G;h;$!d'); do
        add_module "$d"
    done
    path=$(tail -1 "$tmp/stack")
    sed -i '$d' "$tmp/stack"
    echo "$path" >> "$order"
}
: > "$tmp/stack"
for m in $WANT; do add_module "$m"; done

kdir=$root/lib/modules/$kver
: > "$root/etc/modules"
while read -r path; do
    dst=$kdir/${path%.xz}; dst=${dst%.zst}; dst=${dst%.gz}
    mkdir -p "$(dirname "$dst")"
    # busybox insmod cannot read compressed modules: decompress here.
    case $path in
        *.ko.xz) xz -dc "$moddir/$path" > "$dst" ;;
        *.ko.zst) zstd -qdc "$moddir/$path" > "$dst" ;;
        *.ko.gz) gzip -dc "$moddir/$path" > "$dst" ;;
        *) cp "$moddir/$path" "$dst" ;;
    esac
    echo "/lib/modules/$kver/${dst#"$kdir"/}" >> "$root/etc/modules"
done < "$order"

# Dynamic binaries with the libraries ldd names and the loader, at the same
# paths as on the host (so the loader's default search path finds them).
for b in $BINS; do
    mkdir -p "$root$(dirname "$b")"
    cp -L "$b" "$root$b"
    ldd "$b" | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]*ld-linux/ { print $1 }' |
    while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done

# Fixed mtimes everywhere (symlinks too), then one sorted list into cpio.
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . -mindepth 1 | sort |
    cpio --quiet -o -H newc --reproducible -R 0:0) | gzip -n -9 > "$tmp/initrd.img"
cp "$vmlinuz" "$tmp/vmlinuz"
mv "$tmp/initrd.img" "$out/initrd.img"
mv "$tmp/vmlinuz" "$out/vmlinuz"
printf '%s\n' "$stamp_text" > "$out/stamp"
echo "build-linux-guest: $out: kernel $kver, $(wc -l < "$root/etc/modules") modules," \
     "initrd $(wc -c < "$out/initrd.img") bytes"
