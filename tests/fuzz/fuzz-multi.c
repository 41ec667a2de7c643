/*
 * The generic device fuzzer (fuzz-device.c) with three NICs on one machine
 * and one hub: an e1000, an rtl8139 and a modern virtio-net-pci, each on a
 * hubport of hub 0 with the fuzzer's peer. One NIC's DMA can then target
 * another's BARs (refused only while that device is inside a handler: the
 * cross-device reentrancy class), and a frame one NIC sends arrives at the
 * other two. BARs are placed in this order: e1000 (MMIO, I/O), rtl8139
 * (I/O, MMIO), virtio (MSI-X, modern), selector 0..5.
 */
#define FUZZ_DEVICES \
    "e1000,netdev=n0,addr=4,mac=52:54:00:12:34:56", \
    "rtl8139,netdev=n1,addr=5,mac=52:54:00:12:34:57", \
    "virtio-net-pci,netdev=n2,addr=6,disable-legacy=on,mac=52:54:00:12:34:58"
#define FUZZ_NETDEVS \
    "hubport,id=n0,hubid=0", "hubport,id=n1,hubid=0", "hubport,id=n2,hubid=0", \
    "hubport,id=peer,hubid=0"
#include "fuzz-device.c"
