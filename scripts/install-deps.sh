#!/bin/sh
# Installs the Debian packages qnic needs to build and test, only those that
# are missing, so that running it again costs one dpkg query and prints nothing.
# The last line is the Linux test guest's (scripts/build-linux-guest.sh): the
# kernel, busybox and tools it packs into an initramfs, and tcpreplay, which
# the tap test runs on the peer side to replay a pcap at the guest. valgrind
# and python3-matplotlib are make bench's (callgrind counts, the plot).
# zlib1g-dev: the device-state stream's CRC-32.
# acpica-tools: iasl compiles the guest's DSDT (vmm/dsdt.dsl) at build time;
# the ACPI unit test disassembles the tables with it and runs acpiexec.
# openvswitch-switch(-dpdk): tests/ovs runs its own ovsdb-server and
# ovs-vswitchd-dpdk per simulated host (no system service is used).
set -e
PKGS="meson ninja-build pkg-config gcc clang libclang-rt-14-dev python3
libglib2.0-dev libjson-glib-dev libslirp-dev libvdeplug-dev libbpf-dev libxdp-dev
linux-libc-dev liburing-dev qemu-system-x86 ipxe-qemu tshark vde2 iproute2 iputils-ping
procps dpdk-dev openvswitch-switch openvswitch-switch-dpdk valgrind python3-matplotlib acpica-tools zlib1g-dev
linux-image-amd64 busybox-static iperf3 ethtool tcpdump cpio xz-utils zstd tcpreplay"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer no without a prompt.
echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
