/*
 * A small e1000 driver for qtest: the steps Linux's e1000 driver takes to
 * bring an 8254x up (PCI enable, CTRL.RST, the MAC from the EEPROM by EERD or
 * by bit-banging EECD, PHY access over MDIC, auto-negotiation, TX/RX rings,
 * interrupt masks), plus helpers to post legacy, checksum-offload and TSO
 * transmit descriptors and to reap received frames. Works against qnic-vmm
 * and QEMU 7.2 alike.
 */
#ifndef QNIC_TESTS_E1000_DRIVER_H
#define QNIC_TESTS_E1000_DRIVER_H

#include "libqtest.h"
#include "hw/net/e1000-regs.h"

#define E1KD_BUF 2048           /* per-descriptor buffer in tests */

typedef struct E1kDev {
    QTestState *qts;
    int devfn;
    uint64_t mmio;              /* BAR0 */
    uint16_t io;                /* BAR1 */
    uint16_t device_id;
    unsigned tx_n, rx_n;
    uint64_t tx_ring, rx_ring;
    uint64_t *tx_bufs, *rx_bufs;
    unsigned tx_tail;           /* next TX descriptor the driver fills */
    unsigned rx_next;           /* next RX descriptor the driver reaps */
    size_t rx_bufsize;
} E1kDev;

/* Find the first 8086:100c/100e/100f on bus 0 (-1 if none). */
int e1kd_find(QTestState *qts);
/* Find, assign BARs, enable I/O, memory and bus mastering. */
void e1kd_init(E1kDev *d, QTestState *qts);
void e1kd_free(E1kDev *d);

uint32_t e1kd_rd(E1kDev *d, uint32_t off);
void e1kd_wr(E1kDev *d, uint32_t off, uint32_t val);

/* CTRL.RST, then mask and clear interrupts (e1000_reset_hw). */
void e1kd_reset(E1kDev *d);
uint16_t e1kd_eeprom_eerd(E1kDev *d, unsigned addr);
/* e1000_read_eeprom for Microwire parts: REQ/GNT, CS, opcode, address,
 * 16 data bits, standby. */
uint16_t e1kd_eeprom_bitbang(E1kDev *d, unsigned addr);
/* MDIC read/write of PHY address 1; returns the MDIC value (ERROR bit
 * tells failure) and the data in *val for reads. */
uint32_t e1kd_phy_read(E1kDev *d, unsigned reg, uint16_t *val);
uint32_t e1kd_phy_write(E1kDev *d, unsigned reg, uint16_t val);

/* Allocate and program rings of tx_n/rx_n descriptors (multiples of 8),
 * RX buffers of E1KD_BUF bytes (RCTL BSIZE 2048), hand all but one RX
 * descriptor to the NIC, enable TX (TCTL.EN|PSP) and RX with rctl_extra. */
void e1kd_start(E1kDev *d, unsigned tx_n, unsigned rx_n, uint32_t rctl_extra);

/* Post one legacy descriptor (cmd: EOP|RS|IFCS added) and ring TDT.
 * Returns the descriptor index. */
unsigned e1kd_tx_legacy(E1kDev *d, const void *frame, size_t len, uint8_t cmd_extra,
                        uint8_t cso, uint8_t css, uint16_t special);
/* Post a context descriptor. tucmd: E1000_TXD_TUCMD_* | E1000_TXD_CMD_TSE. */
unsigned e1kd_tx_context(E1kDev *d, uint8_t ipcss, uint8_t ipcso, uint16_t ipcse,
                         uint8_t tucss, uint8_t tucso, uint16_t tucse,
                         uint8_t tucmd, uint32_t paylen, uint8_t hdrlen, uint16_t mss);
/* Post the frame as data descriptors of at most chunk bytes each (the last
 * with EOP), dcmd (TSE, VLE, IDE...) and popts on each, and ring TDT. */
unsigned e1kd_tx_data(E1kDev *d, const void *frame, size_t len, size_t chunk,
                      uint8_t dcmd, uint8_t popts, uint16_t special);
/* Status byte of TX descriptor i. */
uint8_t e1kd_tx_status(E1kDev *d, unsigned i);

/* Reap the next RX descriptor if its DD is set: copies up to cap bytes to
 * buf, returns the descriptor length (-1 if none ready); status/errors/
 * special/csum are filled when non-NULL. Gives the descriptor back (RDT). */
int e1kd_rx(E1kDev *d, void *buf, size_t cap, uint8_t *status, uint8_t *errors,
            uint16_t *special);

#endif
