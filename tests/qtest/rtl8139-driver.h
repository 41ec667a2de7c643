/*
 * A small RTL8139 driver for qtest: what Linux's 8139too (C mode) and
 * 8139cp (C+ mode) do to bring the chip up, reduced to what tests need:
 * find and enable the PCI function, reset, read the MAC from the 93C46
 * EEPROM by bit-banging 9346CR, run the RX ring buffer and the four TX
 * slots, and the C+ descriptor rings. It works against qnic-vmm and QEMU.
 */
#ifndef QNIC_TESTS_RTL8139_DRIVER_H
#define QNIC_TESTS_RTL8139_DRIVER_H

#include "libqtest.h"
#include "hw/net/rtl8139-regs.h"

#define RTLD_CP_RING 16                 /* C+ descriptors per ring in tests */
#define RTLD_CP_BUF 2048                /* C+ RX buffer per descriptor */

typedef struct RtlDev {
    QTestState *qts;
    int devfn;
    uint16_t io;                        /* BAR0 */
    uint64_t mmio;                      /* BAR1 */
    /* C mode */
    uint64_t rx_ring;
    uint32_t rx_len;                    /* 8K << RBLEN */
    uint32_t rx_cur;                    /* driver's read offset */
    uint64_t tx_buf[4];
    unsigned tx_cur;
    /* C+ mode */
    uint64_t cp_tx_ring, cp_rx_ring;
    uint64_t cp_tx_bufs[RTLD_CP_RING], cp_rx_bufs[RTLD_CP_RING];
    unsigned cp_tx_idx, cp_rx_idx;
} RtlDev;

/* Find 10ec:8139 on bus 0 (-1 if none). */
int rtld_find(QTestState *qts);
/* Find, assign BARs, enable I/O + memory + bus mastering. */
void rtld_init(RtlDev *d, QTestState *qts);

uint8_t rtld_r8(RtlDev *d, uint8_t off);
uint16_t rtld_r16(RtlDev *d, uint8_t off);
uint32_t rtld_r32(RtlDev *d, uint8_t off);
void rtld_w8(RtlDev *d, uint8_t off, uint8_t v);
void rtld_w16(RtlDev *d, uint8_t off, uint16_t v);
void rtld_w32(RtlDev *d, uint8_t off, uint32_t v);

/* CR.RST and wait for it to clear. */
void rtld_reset(RtlDev *d);
/* 8139too's read_eeprom(): addr_len 6 or 8. */
uint16_t rtld_eeprom_read(RtlDev *d, unsigned loc, unsigned addr_len);
/* Word 0 probe for the address width, then words 7..9. */
void rtld_eeprom_mac(RtlDev *d, uint8_t mac[6]);

/* C mode bring-up as 8139too's rtl8139_hw_start: RX ring of 8K << rblen
 * (+16 + 1.5K slack), RE|TE, RCR (rcr | RBLEN), TCR (tcr_extra), IMR. */
void rtld_c_start(RtlDev *d, unsigned rblen, uint32_t rcr, uint32_t tcr_extra, uint16_t imr);
/* Queue a frame in the next TX slot; returns the slot's TSD after the
 * write (qnic and QEMU both complete synchronously). */
uint32_t rtld_c_tx(RtlDev *d, const void *frame, size_t len);
/* Take the next frame from the RX ring if CR.BUFE is clear: copies at most
 * cap bytes (without CRC) to buf, returns the frame length without CRC (or
 * -1 if the ring is empty), status gets the header status, crc the FCS.
 * Advances CAPR as 8139too does. */
int rtld_c_rx(RtlDev *d, void *buf, size_t cap, uint16_t *status, uint32_t *crc);
/* Poll rtld_c_rx for up to timeout_ms (the target's event loop runs
 * between qtest commands). */
int rtld_c_rx_wait(RtlDev *d, void *buf, size_t cap, uint16_t *status, int timeout_ms);

/* C+ bring-up as 8139cp's cp_start_hw: CPlusCmd (cpcr | RX/TX enable),
 * RX ring with RTLD_CP_RING buffers of RTLD_CP_BUF bytes (last has EOR),
 * TX ring, RE|TE, RCR, TCR, IMR. */
void rtld_cp_start(RtlDev *d, uint16_t cpcr, uint32_t rcr, uint32_t tcr_extra, uint16_t imr);
/* One-descriptor frame with flags (LGSEN/MSS/IPCS/...) and dw1 (TAGC),
 * then TPPoll NPQ. Returns the descriptor's dw0 afterwards. */
uint32_t rtld_cp_tx(RtlDev *d, const void *frame, size_t len, uint32_t flags, uint32_t dw1);
/* Next completed RX descriptor: returns frame length without CRC, or -1
 * if the device still owns it; dw0/dw1 get the written-back words. The
 * descriptor is given back to the device. */
int rtld_cp_rx(RtlDev *d, void *buf, size_t cap, uint32_t *dw0, uint32_t *dw1);

/* IEEE CRC-32 (the FCS the chip appends). */
uint32_t rtld_crc32(const void *buf, size_t len);

#endif
