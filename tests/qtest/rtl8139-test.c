/*
 * qtest tests of the rtl8139 model: PCI config space and reset values as
 * QEMU 7.2 shows them, the 8139too bring-up (reset, EEPROM MAC, RX ring,
 * TX slots, interrupts), frames both ways through a socket backend the test
 * holds, RCR/MAR filtering, ring wrap, the TCTR timer, C+ mode with checksum
 * offload, large send and VLAN, and the guest-abuse cases of QEMU's rtl8139
 * CVE history (each must end in forward progress). Every test runs against
 * qnic-vmm and, with QTEST_QEMU_BINARY set, against QEMU; the differences
 * allowed are the ones docs/rtl8139.md lists, each checked explicitly here.
 */
#include "rtl8139-driver.h"
#include "qtest-net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/pci_regs.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAC_STR "52:54:00:12:34:77"
static const uint8_t dev_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x77 };
static const uint8_t peer_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0x01 };
static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

#define C_LOOP (RTL_TCR_LBK_LOOP)
#define RCR_NORMAL (RTL_RCR_APM | RTL_RCR_AB | RTL_RCR_AM | RTL_RCR_WRAP)

static QTestState *start(unsigned flags, const char *extra)
{
    return qtest_initf(flags, "-device rtl8139,mac=" MAC_STR "%s%s",
                       extra ? " " : "", extra ? extra : "");
}

/* Rewrite RCR while running. QEMU 7.2 also rewinds the ring (CBR and
 * CAPR to 0) on every RCR write; the chip and qnic do not (docs/rtl8139.md),
 * so the driver follows whichever it talks to. */
static void set_rcr(RtlDev *d, uint32_t rcr)
{
    uint16_t cbr = rtld_r16(d, RTL_CBR);

    rtld_w32(d, RTL_RCR, rcr);
    if (qtest_target_is_qemu()) {
        d->rx_cur = 0;
    } else {
        g_assert_cmphex(rtld_r16(d, RTL_CBR), ==, cbr);
    }
}

static size_t make_frame(uint8_t *f, const uint8_t *dst, const uint8_t *src,
                         uint16_t type, size_t len, uint8_t fill)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = type >> 8;
    f[13] = type & 0xff;
    for (size_t i = 14; i < len; i++) {
        f[i] = (uint8_t)(fill + i);
    }
    return len;
}

/* ---- checksums, as the test computes them itself ---- */
static uint32_t sum16(uint32_t s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        s += (p[i] << 8) | p[i + 1];
    }
    if (n & 1) {
        s += p[n - 1] << 8;
    }
    return s;
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16) {
        s = (s & 0xffff) + (s >> 16);
    }
    return (uint16_t)~s;
}

/* Ethernet + IPv4 (20) + TCP (20) + payload; checksums left zero. */
static size_t make_tcp(uint8_t *f, size_t payload, uint32_t seq, uint8_t fill)
{
    uint8_t *ip = f + 14, *tcp = ip + 20;
    size_t iplen = 20 + 20 + payload;

    make_frame(f, dev_mac, peer_mac, 0x0800, 14 + iplen, 0);
    memset(ip, 0, 40);
    ip[0] = 0x45;
    ip[2] = iplen >> 8;
    ip[3] = iplen & 0xff;
    ip[4] = 0x12;
    ip[5] = 0x34;
    ip[8] = 64;
    ip[9] = IPPROTO_TCP;
    ip[12] = 10; ip[13] = 0; ip[14] = 0; ip[15] = 1;
    ip[16] = 10; ip[17] = 0; ip[18] = 0; ip[19] = 2;
    tcp[0] = 0x30; tcp[1] = 0x39;           /* 12345 */
    tcp[2] = 0x00; tcp[3] = 0x50;           /* 80 */
    tcp[4] = seq >> 24; tcp[5] = seq >> 16; tcp[6] = seq >> 8; tcp[7] = seq;
    tcp[12] = 5 << 4;
    tcp[13] = 0x18;                         /* PSH|ACK */
    tcp[14] = 0x20;
    for (size_t i = 0; i < payload; i++) {
        tcp[20 + i] = (uint8_t)(fill + i);
    }
    return 14 + iplen;
}

static bool ip_csum_ok(const uint8_t *f)
{
    return fold(sum16(0, f + 14, (f[14] & 0xf) * 4)) == 0;
}

static bool tcp_csum_ok(const uint8_t *f, size_t len)
{
    const uint8_t *ip = f + 14;
    size_t ihl = (ip[0] & 0xf) * 4, iplen = (ip[2] << 8) | ip[3];
    size_t l4 = iplen - ihl;
    uint32_t s;

    g_assert_cmpuint(14 + iplen, <=, len);
    s = sum16(0, ip + 12, 8);
    s += IPPROTO_TCP + l4;
    s = sum16(s, ip + ihl, l4);
    return fold(s) == 0;
}

/* ---------------------------------------------------------------- config */

static void test_config_space(void)
{
    QTestState *qts = start(0, NULL);
    int devfn = rtld_find(qts);
    uint32_t type;
    static const struct { uint8_t off; uint32_t val; } table[] = {
        { PCI_VENDOR_ID, 0x813910ec },
        { PCI_COMMAND, 0x00000000 },             /* status 0: no capability bit */
        { PCI_CLASS_REVISION, 0x02000020 },      /* Ethernet, rev 0x20 (C+) */
        { PCI_CACHE_LINE_SIZE, 0x00000000 },
        { PCI_BASE_ADDRESS_0, 0x00000001 },      /* I/O BAR */
        { PCI_BASE_ADDRESS_1, 0x00000000 },      /* 32-bit memory BAR */
        { PCI_BASE_ADDRESS_2, 0x00000000 },
        { PCI_SUBSYSTEM_VENDOR_ID, 0x11001af4 },
        { PCI_CAPABILITY_LIST, 0x000000dc },
        { PCI_INTERRUPT_LINE, 0x00000100 },      /* INTA */
    };

    g_assert_cmpint(devfn, >=, 0);
    for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
        g_assert_cmphex(qtest_pci_cfg_readl(qts, devfn, table[i].off), ==, table[i].val);
    }
    g_assert_cmpuint(qtest_pci_bar_size(qts, devfn, 0, &type), ==, 256);
    g_assert_cmphex(type & 1, ==, 1);
    g_assert_cmpuint(qtest_pci_bar_size(qts, devfn, 1, &type), ==, 256);
    g_assert_cmphex(type & 7, ==, 0);
    for (int bar = 2; bar < 6; bar++) {
        g_assert_cmpuint(qtest_pci_bar_size(qts, devfn, bar, &type), ==, 0);
    }
    qtest_quit(qts);
}

static void test_reset_values(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;

    rtld_init(&d, qts);
    for (int i = 0; i < 6; i++) {
        g_assert_cmphex(rtld_r8(&d, RTL_IDR0 + i), ==, dev_mac[i]);
    }
    for (int i = 0; i < 4; i++) {
        g_assert_cmphex(rtld_r32(&d, RTL_TSD0 + 4 * i), ==, RTL_TSD_OWN);
    }
    g_assert_cmphex(rtld_r32(&d, RTL_TCR), ==, RTL_TCR_HWVER_8139CP);
    g_assert_cmphex(rtld_r16(&d, RTL_CAPR), ==, 0xfff0);
    g_assert_cmphex(rtld_r16(&d, RTL_CBR), ==, 0);
    g_assert_cmphex(rtld_r16(&d, RTL_TSAD), ==, 0x000f);
    g_assert_cmphex(rtld_r16(&d, RTL_BMCR), ==, RTL_BMCR_RESET);
    g_assert_cmphex(rtld_r16(&d, RTL_BMSR), ==, RTL_BMSR_RESET);
    g_assert_cmphex(rtld_r16(&d, RTL_ANAR), ==, RTL_ANAR_RESET);
    g_assert_cmphex(rtld_r16(&d, RTL_ANLPAR), ==, RTL_ANLPAR_RESET);
    g_assert_cmphex(rtld_r16(&d, RTL_ANER), ==, RTL_ANER_RESET);
    g_assert_cmphex(rtld_r16(&d, RTL_CSCR), ==, RTL_CSCR_RESET);
    g_assert_cmphex(rtld_r8(&d, RTL_CONFIG1), ==, 0x0c);
    g_assert_cmphex(rtld_r8(&d, RTL_MSR), ==, 0xd0);
    g_assert_cmphex(rtld_r8(&d, RTL_CONFIG3), ==, 0x01);
    g_assert_cmphex(rtld_r8(&d, RTL_RERID), ==, RTL8139_REVISION);
    g_assert_cmphex(rtld_r16(&d, RTL_IMR), ==, 0);
    g_assert_cmphex(rtld_r16(&d, RTL_ISR), ==, 0);
    rtld_w16(&d, RTL_IMR, 0xffff);
    g_assert_cmphex(rtld_r16(&d, RTL_IMR), ==, RTL_IMR_MASK);

    /* soft reset: CR reads RE/TE off with the (empty) buffer flag; the
     * station address comes back from the EEPROM; MAR is kept */
    rtld_w8(&d, RTL_MAR0, 0x5a);
    rtld_w8(&d, RTL_9346CR, RTL_9346_EEM_CFGWE);
    rtld_w8(&d, RTL_IDR0, 0x11);
    rtld_w8(&d, RTL_9346CR, RTL_9346_EEM_NORMAL);
    rtld_reset(&d);
    g_assert_cmphex(rtld_r8(&d, RTL_CR), ==, RTL_CR_BUFE);
    g_assert_cmphex(rtld_r8(&d, RTL_IDR0), ==, dev_mac[0]);
    g_assert_cmphex(rtld_r8(&d, RTL_MAR0), ==, 0x5a);
    g_assert_cmphex(rtld_r16(&d, RTL_IMR), ==, 0);
    g_assert_cmphex(rtld_r32(&d, RTL_TCR), ==, RTL_TCR_HWVER_8139CP);
    qtest_quit(qts);
}

static void test_eeprom(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    uint8_t mac[6];

    rtld_init(&d, qts);
    rtld_reset(&d);
    /* 8139too's address-width probe: with 8 address bits the word comes
     * out shifted, so the driver settles on 6 (a 93C46) */
    g_assert_cmphex(rtld_eeprom_read(&d, 0, 8), !=, RTL_EEPROM_MAGIC);
    g_assert_cmphex(rtld_eeprom_read(&d, 0, 6), ==, RTL_EEPROM_MAGIC);
    g_assert_cmphex(rtld_eeprom_read(&d, 1, 6), ==, RTL8139_VENDOR_ID);
    g_assert_cmphex(rtld_eeprom_read(&d, 2, 6), ==, RTL8139_DEVICE_ID);
    g_assert_cmphex(rtld_eeprom_read(&d, 3, 6), ==, 0);
    rtld_eeprom_mac(&d, mac);
    g_assert_cmpmem(mac, 6, dev_mac, 6);
    g_assert_cmphex(rtld_r8(&d, RTL_9346CR), ==, 0);
    qtest_quit(qts);
}

static void test_mac_write(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    static const uint8_t newmac[6] = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 };

    rtld_init(&d, qts);
    rtld_reset(&d);
    /* 8139too's rtl8139_set_mac_address: unlock, two dword writes, lock */
    rtld_w8(&d, RTL_9346CR, RTL_9346_EEM_CFGWE);
    rtld_w32(&d, RTL_IDR0, newmac[0] | newmac[1] << 8 | newmac[2] << 16 | (uint32_t)newmac[3] << 24);
    rtld_w32(&d, RTL_IDR0 + 4, newmac[4] | newmac[5] << 8);
    rtld_w8(&d, RTL_9346CR, RTL_9346_EEM_NORMAL);
    for (int i = 0; i < 6; i++) {
        g_assert_cmphex(rtld_r8(&d, RTL_IDR0 + i), ==, newmac[i]);
    }
    /* Locked: qnic ignores IDR writes as the datasheet's config-write
     * protection implies; QEMU 7.2 takes them (docs/rtl8139.md). */
    rtld_w8(&d, RTL_IDR0, 0x06);
    g_assert_cmphex(rtld_r8(&d, RTL_IDR0), ==, qtest_target_is_qemu() ? 0x06 : newmac[0]);
    qtest_quit(qts);
}

/* ---------------------------------------------------------------- C mode */

static int irq_gsi(RtlDev *d)
{
    /* qnic: slot pin -> GSI 16 + ((slot + pin - 1) & 3), pin 1 (INTA) */
    return 16 + (((d->devfn >> 3) + 1 - 1) & 3);
}

static void test_c_loopback(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    uint8_t f[128], r[128];
    uint16_t st;
    uint32_t crc, tsd;
    int n, gsi = -1;

    rtld_init(&d, qts);
    if (!qtest_target_is_qemu()) {
        /* QEMU's INTx goes through PIIX3 PIRQ routing to an ISA IRQ; the
         * test reads ISR there instead (docs/rtl8139.md) */
        qtest_irq_intercept_in(qts, "ioapic");
        gsi = irq_gsi(&d);
    }
    rtld_reset(&d);
    rtld_c_start(&d, 0, RCR_NORMAL, C_LOOP, RTL_INT_ROK | RTL_INT_TOK);
    g_assert_cmphex(rtld_r8(&d, RTL_CR), ==, RTL_CR_RE | RTL_CR_TE | RTL_CR_BUFE);
    if (gsi >= 0) {
        g_assert_false(qtest_get_irq(qts, gsi));
    }

    make_frame(f, dev_mac, peer_mac, 0x0800, 100, 7);
    tsd = rtld_c_tx(&d, f, 100);
    g_assert_cmphex(tsd & (RTL_TSD_OWN | RTL_TSD_TOK), ==, RTL_TSD_OWN | RTL_TSD_TOK);
    g_assert_cmphex(tsd & RTL_TSD_SIZE_MASK, ==, 100);
    g_assert_cmphex(rtld_r16(&d, RTL_TSAD) & 0xf00f, ==, 0x100f);
    g_assert_cmphex(rtld_r16(&d, RTL_ISR), ==, RTL_INT_ROK | RTL_INT_TOK);
    if (gsi >= 0) {
        g_assert_true(qtest_get_irq(qts, gsi));
    }
    n = rtld_c_rx(&d, r, sizeof(r), &st, &crc);
    g_assert_cmpint(n, ==, 100);
    g_assert_cmphex(st, ==, RTL_RXS_ROK | RTL_RXS_PAM);
    g_assert_cmpmem(r, 100, f, 100);
    g_assert_cmphex(crc, ==, rtld_crc32(f, 100));
    /* header 4 + 100 + CRC 4 = 108, already dword aligned */
    g_assert_cmphex(rtld_r16(&d, RTL_CBR), ==, 108);
    g_assert_cmphex(rtld_r8(&d, RTL_CR) & RTL_CR_BUFE, ==, RTL_CR_BUFE);

    /* ISR is write-1-to-clear, and the line follows ISR & IMR */
    rtld_w16(&d, RTL_ISR, RTL_INT_TOK);
    g_assert_cmphex(rtld_r16(&d, RTL_ISR), ==, RTL_INT_ROK);
    if (gsi >= 0) {
        g_assert_true(qtest_get_irq(qts, gsi));
    }
    rtld_w16(&d, RTL_ISR, RTL_INT_ROK);
    g_assert_cmphex(rtld_r16(&d, RTL_ISR), ==, 0);
    if (gsi >= 0) {
        g_assert_false(qtest_get_irq(qts, gsi));
    }

    /* an odd-length frame: the next one starts dword aligned; the slots
     * are used in order */
    make_frame(f, bcast, peer_mac, 0x0806, 61, 3);
    tsd = rtld_c_tx(&d, f, 61);
    g_assert_cmphex(tsd & RTL_TSD_TOK, ==, RTL_TSD_TOK);
    n = rtld_c_rx(&d, r, sizeof(r), &st, NULL);
    g_assert_cmpint(n, ==, 61);
    g_assert_cmphex(st, ==, RTL_RXS_ROK | RTL_RXS_BAR);
    g_assert_cmphex(rtld_r16(&d, RTL_CBR), ==, 108 + 72);
    g_assert_cmphex(rtld_r16(&d, RTL_TSAD) & 0xf000, ==, 0x3000);
    qtest_quit(qts);
}

static void test_c_filter(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    uint8_t f[64], r[64];
    static const uint8_t other[6] = { 0x52, 0x54, 0x00, 0x99, 0x99, 0x99 };
    static const uint8_t mc[6] = { 0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb };
    uint16_t st;

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_c_start(&d, 0, RTL_RCR_APM | RTL_RCR_AM, C_LOOP, 0);
    /* not for us, broadcast with AB off, multicast with an empty MAR */
    make_frame(f, other, peer_mac, 0x0800, 64, 1);
    rtld_c_tx(&d, f, 64);
    make_frame(f, bcast, peer_mac, 0x0800, 64, 2);
    rtld_c_tx(&d, f, 64);
    make_frame(f, mc, peer_mac, 0x0800, 64, 3);
    rtld_c_tx(&d, f, 64);
    g_assert_cmpint(rtld_c_rx(&d, r, sizeof(r), &st, NULL), ==, -1);

    /* 01:00:5e:00:00:fb hashes to bit 0x2c... whatever it is, all-ones
     * MAR accepts it; then the exact bit alone does too */
    for (int i = 0; i < 8; i++) {
        rtld_w8(&d, RTL_MAR0 + i, 0xff);
    }
    rtld_c_tx(&d, f, 64);
    g_assert_cmpint(rtld_c_rx(&d, r, sizeof(r), &st, NULL), ==, 64);
    g_assert_cmphex(st, ==, RTL_RXS_ROK | RTL_RXS_MAR);
    g_assert_cmpmem(r, 64, f, 64);
    {
        /* find the hash bit by elimination: clear MAR bytes one at a time */
        int hit = -1;
        for (int i = 0; i < 8 && hit < 0; i++) {
            rtld_w8(&d, RTL_MAR0 + i, 0);
            rtld_c_tx(&d, f, 64);
            if (rtld_c_rx(&d, r, sizeof(r), &st, NULL) < 0) {
                hit = i;
            }
        }
        /* big-endian CRC-32 of the address, top 6 bits */
        uint32_t crc = 0xffffffffu;
        for (int i = 0; i < 6; i++) {
            uint8_t b = mc[i];
            for (int k = 0; k < 8; k++, b >>= 1) {
                uint32_t c = ((crc >> 31) ^ b) & 1;
                crc <<= 1;
                if (c) {
                    crc ^= 0x04c11db7u;
                }
            }
        }
        g_assert_cmpint(hit, ==, (int)((crc >> 26) >> 3));
    }
    /* AB on: broadcast passes; AAP: anything passes */
    set_rcr(&d, RTL_RCR_APM | RTL_RCR_AB);
    make_frame(f, bcast, peer_mac, 0x0800, 64, 2);
    rtld_c_tx(&d, f, 64);
    g_assert_cmpint(rtld_c_rx(&d, r, sizeof(r), &st, NULL), ==, 64);
    g_assert_cmphex(st & (RTL_RXS_ROK | RTL_RXS_BAR), ==, RTL_RXS_ROK | RTL_RXS_BAR);
    set_rcr(&d, RTL_RCR_AAP);
    make_frame(f, other, peer_mac, 0x0800, 64, 4);
    rtld_c_tx(&d, f, 64);
    g_assert_cmpint(rtld_c_rx(&d, r, sizeof(r), &st, NULL), ==, 64);
    g_assert_cmpmem(r, 64, f, 64);
    qtest_quit(qts);
}

/* WRAP=0: a frame crossing the end of the 8K ring continues at its start. */
static void test_c_wrap(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    uint8_t f[1500], got[1500];
    uint16_t st, cbr;
    int n = 0;

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_c_start(&d, 0, RTL_RCR_APM, C_LOOP, 0);
    /* 6 frames of 1200 (+8, aligned) bring CBR to 7248 */
    for (int i = 0; i < 6; i++) {
        make_frame(f, dev_mac, peer_mac, 0x0800, 1200, i);
        rtld_c_tx(&d, f, 1200);
        g_assert_cmpint(rtld_c_rx(&d, NULL, 0, &st, NULL), ==, 1200);
    }
    cbr = rtld_r16(&d, RTL_CBR);
    g_assert_cmpuint(cbr, ==, 6 * 1208);
    make_frame(f, dev_mac, peer_mac, 0x0800, 1500, 0x40);
    rtld_c_tx(&d, f, 1500);
    g_assert_cmphex(rtld_r16(&d, RTL_CBR), ==, (cbr + 4 + 1500 + 4) % 8192);
    /* read it back the way a non-WRAP driver must: split at 8K */
    {
        uint32_t first = 8192 - cbr - 4;
        qtest_memread(qts, d.rx_ring + cbr + 4, got, first);
        qtest_memread(qts, d.rx_ring, got + first, 1500 - first);
        g_assert_cmpmem(got, 1500, f, 1500);
        n = 1;
    }
    g_assert_cmpint(n, ==, 1);
    qtest_quit(qts);
}

/* The ring fills up with no CAPR update: looped-back frames that do not
 * fit are dropped with RxOverflow and counted in MPC; what is in the ring
 * is left alone; after the driver catches up, frames flow again. */
static void test_c_rx_overflow(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    uint8_t f[1000], r[1000];
    uint8_t hdr0[4];
    int sent = 0, got = 0;
    uint16_t st;

    rtld_init(&d, qts);
    rtld_reset(&d);
    /* RxOverflow unmasked: QEMU then drops instead of holding frames back */
    rtld_c_start(&d, 0, RTL_RCR_APM | RTL_RCR_WRAP, C_LOOP, RTL_INT_RXOVW);
    for (int i = 0; i < 12; i++) {
        make_frame(f, dev_mac, peer_mac, 0x0800, 1000, i);
        rtld_c_tx(&d, f, 1000);
        sent++;
    }
    g_assert_cmphex(rtld_r16(&d, RTL_ISR) & RTL_INT_RXOVW, ==, RTL_INT_RXOVW);
    g_assert_cmpuint(rtld_r32(&d, RTL_MPC), >=, 1);
    qtest_memread(qts, d.rx_ring, hdr0, 4);
    g_assert_cmphex(hdr0[0] | hdr0[1] << 8, ==, RTL_RXS_ROK | RTL_RXS_PAM);
    while (rtld_c_rx(&d, r, sizeof(r), &st, NULL) == 1000) {
        g_assert_cmphex(r[14], ==, (uint8_t)(got + 14));
        got++;
    }
    g_assert_cmpint(got, >=, 7);
    /* every lost frame is counted in qnic; QEMU 7.2 counts only the first
     * of a run of overflows (docs/rtl8139.md) */
    if (!qtest_target_is_qemu()) {
        g_assert_cmpint(got, ==, sent - (int)rtld_r32(&d, RTL_MPC));
    }
    rtld_w16(&d, RTL_ISR, 0xffff);
    make_frame(f, dev_mac, peer_mac, 0x0800, 1000, 0x77);
    rtld_c_tx(&d, f, 1000);
    g_assert_cmpint(rtld_c_rx(&d, r, sizeof(r), &st, NULL), ==, 1000);
    g_assert_cmpmem(r, 1000, f, 1000);
    qtest_quit(qts);
}

/* ---------------------------------------------------------------- socket */

/* A frame from the device, -1 on timeout. */
static int peer_recv(QtestNetPeer *p, void *buf, size_t cap, int timeout_ms)
{
    uint32_t be;
    size_t len;
    uint8_t junk[256];

    if (!qtest_net_read_full(p->fd, &be, 4, timeout_ms)) {
        return -1;
    }
    len = ntohl(be);
    g_assert_cmpuint(len, <=, 65536);
    if (len <= cap) {
        g_assert_true(qtest_net_read_full(p->fd, buf, len, timeout_ms));
    } else {
        g_assert_true(qtest_net_read_full(p->fd, buf, cap, timeout_ms));
        for (size_t left = len - cap; left;) {
            size_t k = MIN(left, sizeof(junk));
            g_assert_true(qtest_net_read_full(p->fd, junk, k, timeout_ms));
            left -= k;
        }
    }
    return (int)len;
}

static QTestState *start_with_peer(QtestNetPeer *p, RtlDev *d)
{
    QTestState *qts;
    char extra[128];

    qtest_net_peer_listen(p);
    snprintf(extra, sizeof(extra), "-netdev socket,id=n0,connect=127.0.0.1:%d", p->port);
    qts = qtest_initf(QTEST_FLAG_RUNNING, "%s -device rtl8139,netdev=n0,mac=" MAC_STR, extra);
    g_assert_true(qtest_net_peer_accept(p));
    rtld_init(d, qts);
    rtld_reset(d);
    return qts;
}

static void test_c_traffic(void)
{
    QtestNetPeer p;
    RtlDev d;
    QTestState *qts = start_with_peer(&p, &d);
    uint8_t f[1514], r[1514];
    uint16_t st;
    int n;

    rtld_c_start(&d, 1, RCR_NORMAL, 0, RTL_INT_ROK | RTL_INT_TOK);
    /* device -> peer */
    make_frame(f, peer_mac, dev_mac, 0x0800, 1514, 9);
    g_assert_cmphex(rtld_c_tx(&d, f, 1514) & RTL_TSD_TOK, ==, RTL_TSD_TOK);
    n = peer_recv(&p, r, sizeof(r), 5000);
    g_assert_cmpint(n, ==, 1514);
    g_assert_cmpmem(r, 1514, f, 1514);
    /* peer -> device, several, in order */
    for (int i = 0; i < 5; i++) {
        make_frame(f, dev_mac, peer_mac, 0x0800, 200 + i, i);
        qtest_net_peer_send(&p, f, 200 + i);
    }
    for (int i = 0; i < 5; i++) {
        n = rtld_c_rx_wait(&d, r, sizeof(r), &st, 5000);
        g_assert_cmpint(n, ==, 200 + i);
        g_assert_cmphex(st, ==, RTL_RXS_ROK | RTL_RXS_PAM);
        make_frame(f, dev_mac, peer_mac, 0x0800, 200 + i, i);
        g_assert_cmpmem(r, n, f, n);
    }
    qtest_quit(qts);
    qtest_net_peer_close(&p);
}

/* Frames from the wire that do not fit wait (RxOverflow masked, as QEMU
 * applies backpressure only then) and arrive once CAPR moves. */
static void test_c_backpressure(void)
{
    QtestNetPeer p;
    RtlDev d;
    QTestState *qts = start_with_peer(&p, &d);
    uint8_t f[1500], r[1500];
    uint16_t st;
    int got = 0;

    rtld_c_start(&d, 0, RCR_NORMAL, 0, RTL_INT_ROK);
    for (int i = 0; i < 12; i++) {
        make_frame(f, dev_mac, peer_mac, 0x0800, 1500, i);
        qtest_net_peer_send(&p, f, 1500);
    }
    /* let the target take what fits: 5 x 1508 bytes in 8K */
    for (int i = 0; i < 200; i++) {
        if ((rtld_r16(&d, RTL_CBR) + 8192 - ((rtld_r16(&d, RTL_CAPR) + 16) & 0xffff) % 8192) % 8192 >= 5 * 1508) {
            break;
        }
        g_usleep(5000);
    }
    if (qtest_target_is_qemu()) {
        /* QEMU 7.2 admits a frame when 1514 bytes are free but then needs
         * frame + 8: some 1500-byte frames are lost at the edge
         * (docs/rtl8139.md). What arrives must still be in order. */
        int last = -1, n;
        while ((n = rtld_c_rx_wait(&d, r, sizeof(r), &st, 1000)) >= 0) {
            g_assert_cmpint(n, ==, 1500);
            g_assert_cmpint((int)r[14] - 14, >, last);
            last = r[14] - 14;
            got++;
        }
        g_assert_cmpint(got, >=, 5);
        qtest_quit(qts);
        qtest_net_peer_close(&p);
        return;
    }
    g_assert_cmpuint(rtld_r32(&d, RTL_MPC), ==, 0);
    while (got < 12) {
        int n = rtld_c_rx_wait(&d, r, sizeof(r), &st, 5000);
        g_assert_cmpint(n, ==, 1500);
        g_assert_cmphex(r[14], ==, (uint8_t)(got + 14));
        got++;
    }
    g_assert_cmpuint(rtld_r32(&d, RTL_MPC), ==, 0);
    qtest_quit(qts);
    qtest_net_peer_close(&p);
}

/* ---------------------------------------------------------------- timer */

static void test_timer(void)
{
    bool qemu = qtest_target_is_qemu();
    /* QEMU's TCG qtest has no clock_step: there the VM runs and the timer
     * is checked against real time (docs/rtl8139.md) */
    QTestState *qts = start(qemu ? QTEST_FLAG_RUNNING : 0, NULL);
    RtlDev d;
    int gsi = -1;

    rtld_init(&d, qts);
    rtld_reset(&d);
    if (!qemu) {
        qtest_irq_intercept_in(qts, "ioapic");
        gsi = irq_gsi(&d);
    }
    rtld_w16(&d, RTL_IMR, RTL_INT_TIMEOUT);
    if (!qemu) {
        rtld_w32(&d, RTL_TIMERINT, 33000);     /* 1 ms of 33 MHz */
        rtld_w32(&d, RTL_TCTR, 0);
        g_assert_cmpuint(rtld_r32(&d, RTL_TCTR), ==, 0);
        qtest_clock_step(qts, 500000);
        g_assert_cmpuint(rtld_r32(&d, RTL_TCTR), ==, 16500);
        g_assert_cmphex(rtld_r16(&d, RTL_ISR), ==, 0);
        g_assert_false(qtest_get_irq(qts, gsi));
        qtest_clock_step(qts, 500000);
        g_assert_cmphex(rtld_r16(&d, RTL_ISR), ==, RTL_INT_TIMEOUT);
        g_assert_true(qtest_get_irq(qts, gsi));
        rtld_w16(&d, RTL_ISR, RTL_INT_TIMEOUT);
        g_assert_false(qtest_get_irq(qts, gsi));
        /* the next match is a full 2^32-tick period later */
        qtest_clock_step(qts, 1000000);
        g_assert_cmphex(rtld_r16(&d, RTL_ISR), ==, 0);
        /* writing TCTR restarts the count; TimerInt 0 disables */
        rtld_w32(&d, RTL_TCTR, 0);
        qtest_clock_step(qts, 1000000);
        g_assert_cmphex(rtld_r16(&d, RTL_ISR), ==, RTL_INT_TIMEOUT);
        rtld_w16(&d, RTL_ISR, 0xffff);
        rtld_w32(&d, RTL_TIMERINT, 0);
        rtld_w32(&d, RTL_TCTR, 0);
        qtest_clock_step(qts, 2000000);
        g_assert_cmphex(rtld_r16(&d, RTL_ISR), ==, 0);
    } else {
        uint32_t t0, t1;
        bool fired = false;

        rtld_w32(&d, RTL_TIMERINT, 3300000);   /* 100 ms */
        rtld_w32(&d, RTL_TCTR, 0);
        t0 = rtld_r32(&d, RTL_TCTR);
        g_usleep(20000);
        t1 = rtld_r32(&d, RTL_TCTR);
        g_assert_cmpuint(t1, >, t0);
        for (int i = 0; i < 2000 && !fired; i++) {
            fired = rtld_r16(&d, RTL_ISR) & RTL_INT_TIMEOUT;
            g_usleep(1000);
        }
        g_assert_true(fired);
    }
    qtest_quit(qts);
}

/* ---------------------------------------------------------------- C+ */

static void test_cp_csum(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    uint8_t f[600], r[600];
    uint32_t dw0, dw1;
    size_t len = make_tcp(f, 500, 1000, 5);
    int n;

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_cp_start(&d, 0, RTL_RCR_APM | RTL_RCR_AB, C_LOOP, 0);
    g_assert_false(ip_csum_ok(f));
    dw0 = rtld_cp_tx(&d, f, len, RTL_CPTX_IPCS | RTL_CPTX_TCPCS, 0);
    g_assert_cmphex(dw0 & RTL_CPD_OWN, ==, 0);
    g_assert_cmphex(rtld_r16(&d, RTL_ISR) & (RTL_INT_TOK | RTL_INT_ROK), ==,
                    RTL_INT_TOK | RTL_INT_ROK);
    n = rtld_cp_rx(&d, r, sizeof(r), &dw0, &dw1);
    g_assert_cmpint(n, ==, (int)len);
    g_assert_cmphex(dw0 & (RTL_CPD_FS | RTL_CPD_LS), ==, RTL_CPD_FS | RTL_CPD_LS);
    g_assert_true(ip_csum_ok(r));
    g_assert_true(tcp_csum_ok(r, n));
    g_assert_cmpmem(r + 54, 500, f + 54, 500);
    /* without the offload bits the frame goes out as built */
    rtld_cp_tx(&d, f, len, 0, 0);
    n = rtld_cp_rx(&d, r, sizeof(r), NULL, NULL);
    g_assert_cmpint(n, ==, (int)len);
    g_assert_cmpmem(r, len, f, len);
    qtest_quit(qts);
}

static void test_cp_large_send(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    static uint8_t f[4000], r[2048];
    size_t len = make_tcp(f, 1400, 5000, 0x21);
    uint32_t seq = 5000, mss = 500;
    size_t off = 0;
    int segs = 0;

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_cp_start(&d, 0, RTL_RCR_APM, C_LOOP, 0);
    rtld_cp_tx(&d, f, len, RTL_CPTX_LGSEN | (mss << RTL_CPTX_MSS_SHIFT), 0);
    for (;;) {
        int n = rtld_cp_rx(&d, r, sizeof(r), NULL, NULL);
        size_t pl;
        if (n < 0) {
            break;
        }
        segs++;
        pl = ((r[16] << 8) | r[17]) - 40;
        g_assert_cmpuint(pl, ==, MIN(mss, 1400 - off));
        g_assert_true(ip_csum_ok(r));
        g_assert_true(tcp_csum_ok(r, n));
        g_assert_cmphex(((uint32_t)r[38] << 24) | (r[39] << 16) | (r[40] << 8) | r[41], ==, seq);
        g_assert_cmpmem(r + 54, pl, f + 54 + off, pl);
        /* PSH never before the last segment; on the last qnic keeps the
         * guest's PSH, QEMU 7.2 drops it (docs/rtl8139.md) */
        if (off + pl < 1400 || qtest_target_is_qemu()) {
            g_assert_cmphex(r[47] & 0x08, ==, 0);
        } else {
            g_assert_cmphex(r[47] & 0x08, ==, 0x08);
        }
        seq += pl;
        off += pl;
    }
    g_assert_cmpint(segs, ==, 3);
    g_assert_cmpuint(off, ==, 1400);
    qtest_quit(qts);
}

static void test_cp_vlan(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    uint8_t f[128], r[128];
    uint32_t dw0, dw1;
    int n;

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_cp_start(&d, 0, RTL_RCR_APM, C_LOOP, 0);
    make_frame(f, dev_mac, peer_mac, 0x0800, 100, 1);
    /* tag 0x0123 goes in big-endian in dw1 bits 0-15 (8139cp's swab16) */
    rtld_cp_tx(&d, f, 100, 0, RTL_CPTX_TAGC | 0x2301);
    n = rtld_cp_rx(&d, r, sizeof(r), &dw0, &dw1);
    /* QEMU 7.2 loops a tagged frame back at its untagged length, losing
     * the last 4 bytes (docs/rtl8139.md) */
    g_assert_cmpint(n, ==, qtest_target_is_qemu() ? 100 : 104);
    g_assert_cmphex(r[12], ==, 0x81);
    g_assert_cmphex(r[13], ==, 0x00);
    g_assert_cmphex(r[14], ==, 0x01);
    g_assert_cmphex(r[15], ==, 0x23);
    g_assert_cmpmem(r + 16, n - 16, f + 12, n - 16);
    g_assert_cmphex(dw1 & RTL_CPRX_TAVA, ==, 0);

    /* RxVlan: the tag is stripped into dw1 */
    rtld_w16(&d, RTL_CPCR, RTL_CPCR_RXENB | RTL_CPCR_TXENB | RTL_CPCR_RXVLAN);
    rtld_cp_tx(&d, f, 100, 0, RTL_CPTX_TAGC | 0x2301);
    n = rtld_cp_rx(&d, r, sizeof(r), &dw0, &dw1);
    g_assert_cmpint(n, ==, qtest_target_is_qemu() ? 96 : 100);
    g_assert_cmpmem(r, n, f, n);
    g_assert_cmphex(dw1, ==, RTL_CPRX_TAVA | 0x2301);
    qtest_quit(qts);
}

static void test_cp_multicast(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    uint8_t f[64];
    static const uint8_t mc[6] = { 0x01, 0x00, 0x5e, 0x01, 0x02, 0x03 };
    uint32_t dw0;

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_cp_start(&d, 0, RTL_RCR_APM | RTL_RCR_AM, C_LOOP, 0);
    make_frame(f, mc, peer_mac, 0x0800, 64, 1);
    rtld_cp_tx(&d, f, 64, 0, 0);
    g_assert_cmpint(rtld_cp_rx(&d, NULL, 0, NULL, NULL), ==, -1);
    for (int i = 0; i < 8; i++) {
        rtld_w8(&d, RTL_MAR0 + i, 0xff);
    }
    rtld_cp_tx(&d, f, 64, 0, 0);
    g_assert_cmpint(rtld_cp_rx(&d, NULL, 0, &dw0, NULL), ==, 64);
    qtest_quit(qts);
}

/* ---------------------------------------------------------------- safety */

static QTestState *start_logged(char **logpath, unsigned flags)
{
    char *dir = g_dir_make_tmp("rtl8139-test-XXXXXX", NULL);
    QTestState *qts;

    g_assert(dir);
    *logpath = g_build_filename(dir, "log.txt", NULL);
    g_free(dir);
    qts = qtest_initf(flags, "-d guest_errors -D %s -device rtl8139,mac=" MAC_STR, *logpath);
    return qts;
}

/* qnic must have logged a guest error naming rtl8139; QEMU's wording
 * differs (and some of these it does not log), so only qnic is held to it. */
static void check_logged(const char *logpath, const char *what)
{
    g_autofree char *text = NULL;

    if (qtest_target_is_qemu()) {
        return;
    }
    g_assert_true(g_file_get_contents(logpath, &text, NULL, NULL));
    if (!strstr(text, what)) {
        g_test_message("log: %s", text);
    }
    g_assert_nonnull(strstr(text, what));
}

static void cleanup_log(char *logpath)
{
    char *dir = g_path_get_dirname(logpath);
    unlink(logpath);
    rmdir(dir);
    g_free(dir);
    g_free(logpath);
}

static void test_safety_cp_bad_descs(void)
{
    char *log;
    QTestState *qts = start_logged(&log, 0);
    RtlDev d;
    uint8_t f[128], r[128];
    uint64_t big = qtest_guest_alloc(qts, 65536, 4096);
    uint64_t a;
    uint32_t dw0;

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_cp_start(&d, 0, RTL_RCR_APM, C_LOOP, 0);
    /* a zero-length single-descriptor frame */
    make_frame(f, dev_mac, peer_mac, 0x0800, 64, 1);
    dw0 = rtld_cp_tx(&d, f, 0, 0, 0);
    g_assert_cmphex(dw0 & RTL_CPD_OWN, ==, 0);
    /* an oversized frame: two 65535-byte fragments (> 64 KiB) */
    for (int i = 0; i < 2; i++) {
        a = d.cp_tx_ring + 16 * d.cp_tx_idx;
        qtest_writel(qts, a + 8, (uint32_t)big);
        qtest_writel(qts, a + 12, 0);
        qtest_writel(qts, a + 4, 0);
        qtest_writel(qts, a, RTL_CPD_OWN | (i == 0 ? RTL_CPD_FS : RTL_CPD_LS) | 0xffff);
        d.cp_tx_idx++;
    }
    rtld_w8(&d, RTL_TPPOLL, RTL_TPPOLL_NPQ);
    for (int i = 1; i <= 2; i++) {
        g_assert_cmphex(qtest_readl(qts, d.cp_tx_ring + 16 * i) & RTL_CPD_OWN, ==, 0);
    }
    /* forward progress: a good frame afterwards goes through intact; the
     * bad ones delivered nothing (qnic) or were cut (QEMU: skip them) */
    make_frame(f, dev_mac, peer_mac, 0x0800, 100, 0x33);
    rtld_cp_tx(&d, f, 100, 0, 0);
    {
        int n, found = 0;
        for (int i = 0; i < RTLD_CP_RING && (n = rtld_cp_rx(&d, r, sizeof(r), NULL, NULL)) >= 0; i++) {
            if (n == 100 && !memcmp(r, f, 100)) {
                found = 1;
            } else {
                g_assert_true(qtest_target_is_qemu());
            }
        }
        g_assert_true(found);
    }
    check_logged(log, "zero length");
    check_logged(log, "longer than");
    qtest_quit(qts);
    cleanup_log(log);
}

/* 64 descriptors, no EOR, every one OWN and none with LS: the ring wraps
 * onto itself; the device must stop after one lap with every descriptor
 * handed back, and still work. */
static void test_safety_cp_ring_wrap(void)
{
    char *log;
    QTestState *qts = start_logged(&log, 0);
    RtlDev d;
    uint64_t ring = qtest_guest_alloc(qts, 64 * 16, 256);
    uint64_t buf = qtest_guest_alloc(qts, 2048, 64);
    uint8_t f[128], r[128];

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_cp_start(&d, 0, RTL_RCR_APM, C_LOOP, 0);
    for (int i = 0; i < 64; i++) {
        qtest_writel(qts, ring + 16 * i, RTL_CPD_OWN | (i == 0 ? RTL_CPD_FS : 0) | 1000);
        qtest_writel(qts, ring + 16 * i + 4, 0);
        qtest_writel(qts, ring + 16 * i + 8, (uint32_t)buf);
        qtest_writel(qts, ring + 16 * i + 12, 0);
    }
    rtld_w32(&d, RTL_TNPDS_LO, (uint32_t)ring);
    rtld_w32(&d, RTL_TNPDS_HI, 0);
    rtld_w8(&d, RTL_TPPOLL, RTL_TPPOLL_NPQ);
    for (int i = 0; i < 64; i++) {
        g_assert_cmphex(qtest_readl(qts, ring + 16 * i) & RTL_CPD_OWN, ==, 0);
    }
    /* the open frame reached 64000 bytes; finish it with LS (it goes out,
     * or is dropped when it would pass 64 KiB): then a normal frame flows */
    qtest_writel(qts, ring, RTL_CPD_OWN | RTL_CPD_LS | 1000);
    qtest_writel(qts, ring + 16, RTL_CPD_OWN | RTL_CPD_LS | RTL_CPD_FS | 100);
    make_frame(f, dev_mac, peer_mac, 0x0800, 100, 0x44);
    qtest_memwrite(qts, buf, f, 100);
    rtld_w8(&d, RTL_TPPOLL, RTL_TPPOLL_NPQ);
    g_assert_cmphex(qtest_readl(qts, ring + 16) & RTL_CPD_OWN, ==, 0);
    {
        int n, found = 0;
        for (int i = 0; i < RTLD_CP_RING && (n = rtld_cp_rx(&d, r, sizeof(r), NULL, NULL)) >= 0; i++) {
            if (n == 100 && !memcmp(r, f, 100)) {
                found = 1;
            }
        }
        g_assert_true(found);
    }
    qtest_quit(qts);
    cleanup_log(log);
}

/* Loopback with the RX ring pointed at the device's own MMIO BAR: the DMA
 * must not reach the registers (QEMU CVE-2021-3416 class). Afterwards the
 * registers are intact and a proper ring works. */
static void test_safety_loopback_dma_mmio(void)
{
    char *log;
    QTestState *qts = start_logged(&log, 0);
    RtlDev d;
    uint8_t f[128], r[128];
    uint16_t st;

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_c_start(&d, 0, RTL_RCR_APM | RTL_RCR_WRAP, C_LOOP, RTL_INT_ROK);
    rtld_w32(&d, RTL_RBSTART, (uint32_t)d.mmio);
    /* the frame is aimed so that it would land on TSD0/IMR */
    make_frame(f, dev_mac, peer_mac, 0x0800, 100, 0);
    memset(f + 14, 0xff, 86);
    for (int i = 0; i < 3; i++) {
        rtld_c_tx(&d, f, 100);
    }
    if (!qtest_target_is_qemu()) {
        /* qnic refused the DMA: nothing reached the registers */
        g_assert_cmphex(rtld_r16(&d, RTL_IMR), ==, RTL_INT_ROK);
        g_assert_cmphex(rtld_r32(&d, RTL_RCR) & 0xff, ==, RTL_RCR_APM | RTL_RCR_WRAP);
        check_logged(log, "refused");
    }
    /* forward progress with a real ring */
    rtld_reset(&d);
    rtld_c_start(&d, 0, RTL_RCR_APM | RTL_RCR_WRAP, C_LOOP, 0);
    rtld_c_tx(&d, f, 100);
    g_assert_cmpint(rtld_c_rx(&d, r, sizeof(r), &st, NULL), ==, 100);
    g_assert_cmpmem(r, 100, f, 100);
    qtest_quit(qts);
    cleanup_log(log);
}

/* A C+ RX buffer smaller than the frame: the frame is dropped with
 * RxOverflow and counted; nothing is written past the buffer. */
static void test_safety_cp_rx_small(void)
{
    QTestState *qts = start(0, NULL);
    RtlDev d;
    uint8_t f[600], guard[64];
    uint32_t dw0;

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_cp_start(&d, 0, RTL_RCR_APM, C_LOOP, 0);
    qtest_writel(qts, d.cp_rx_ring, RTL_CPD_OWN | 64);
    qtest_memset(qts, d.cp_rx_bufs[0], 0xa5, RTLD_CP_BUF);
    make_frame(f, dev_mac, peer_mac, 0x0800, 600, 1);
    rtld_cp_tx(&d, f, 600, 0, 0);
    g_assert_cmphex(rtld_r16(&d, RTL_ISR) & RTL_INT_RXOVW, ==, RTL_INT_RXOVW);
    g_assert_cmpuint(rtld_r32(&d, RTL_MPC), >=, 1);
    dw0 = qtest_readl(qts, d.cp_rx_ring);
    g_assert_cmphex(dw0 & RTL_CPD_OWN, ==, RTL_CPD_OWN);
    qtest_memread(qts, d.cp_rx_bufs[0] + 64, guard, sizeof(guard));
    for (size_t i = 0; i < sizeof(guard); i++) {
        g_assert_cmphex(guard[i], ==, 0xa5);
    }
    qtest_quit(qts);
}

/* C mode: a zero-length TX slot completes (OWN set) and the next works. */
static void test_safety_c_tx_zero(void)
{
    char *log;
    QTestState *qts = start_logged(&log, 0);
    RtlDev d;
    uint8_t f[100], r[100];
    uint16_t st;

    rtld_init(&d, qts);
    rtld_reset(&d);
    rtld_c_start(&d, 0, RTL_RCR_APM, C_LOOP, 0);
    g_assert_cmphex(rtld_c_tx(&d, f, 0) & RTL_TSD_OWN, ==, RTL_TSD_OWN);
    make_frame(f, dev_mac, peer_mac, 0x0800, 100, 1);
    g_assert_cmphex(rtld_c_tx(&d, f, 100) & RTL_TSD_TOK, ==, RTL_TSD_TOK);
    for (int i = 0; i < 2; i++) {
        int n = rtld_c_rx(&d, r, sizeof(r), &st, NULL);
        if (n == 100) {
            g_assert_cmpmem(r, 100, f, 100);
            break;
        }
        /* QEMU passes the empty frame on as a short one */
        g_assert_true(qtest_target_is_qemu());
    }
    check_logged(log, "zero length");
    qtest_quit(qts);
    cleanup_log(log);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/rtl8139/config-space", test_config_space);
    g_test_add_func("/rtl8139/reset-values", test_reset_values);
    g_test_add_func("/rtl8139/eeprom", test_eeprom);
    g_test_add_func("/rtl8139/mac-write", test_mac_write);
    g_test_add_func("/rtl8139/c/loopback", test_c_loopback);
    g_test_add_func("/rtl8139/c/filter", test_c_filter);
    g_test_add_func("/rtl8139/c/wrap", test_c_wrap);
    g_test_add_func("/rtl8139/c/rx-overflow", test_c_rx_overflow);
    g_test_add_func("/rtl8139/c/traffic", test_c_traffic);
    g_test_add_func("/rtl8139/c/backpressure", test_c_backpressure);
    g_test_add_func("/rtl8139/timer", test_timer);
    g_test_add_func("/rtl8139/cplus/checksum", test_cp_csum);
    g_test_add_func("/rtl8139/cplus/large-send", test_cp_large_send);
    g_test_add_func("/rtl8139/cplus/vlan", test_cp_vlan);
    g_test_add_func("/rtl8139/cplus/multicast", test_cp_multicast);
    g_test_add_func("/rtl8139/safety/cp-bad-descriptors", test_safety_cp_bad_descs);
    g_test_add_func("/rtl8139/safety/cp-ring-wrap", test_safety_cp_ring_wrap);
    g_test_add_func("/rtl8139/safety/loopback-dma-mmio", test_safety_loopback_dma_mmio);
    g_test_add_func("/rtl8139/safety/cp-rx-small-buffer", test_safety_cp_rx_small);
    g_test_add_func("/rtl8139/safety/c-tx-zero", test_safety_c_tx_zero);
    return g_test_run();
}
