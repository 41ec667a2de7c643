/*
 * Register map of the Intel 8254x (82540EM/82544GC/82545EM) gigabit
 * controllers as the e1000 model exposes them: MMIO register offsets, their
 * bit fields, the descriptor layouts, the EEPROM word map and the integrated
 * Marvell PHY's MII registers. Values come from Intel's "PCI/PCI-X Family of
 * Gigabit Ethernet Controllers Software Developer's Manual" (8254x SDM); the
 * kernel UAPI has none of these, so they live in this one header.
 */
#ifndef QNIC_E1000_REGS_H
#define QNIC_E1000_REGS_H

#include <stdint.h>
#include <stddef.h>

/* PCI identity */
#define E1000_VENDOR_INTEL          0x8086
#define E1000_DEV_ID_82540EM        0x100e
#define E1000_DEV_ID_82544GC        0x100c
#define E1000_DEV_ID_82545EM        0x100f
#define E1000_REVISION              0x03
#define E1000_MMIO_SIZE             0x20000
#define E1000_IO_SIZE               0x40

/* I/O BAR: indirect access to the MMIO registers */
#define E1000_IOADDR                0x00
#define E1000_IODATA                0x04

/* General */
#define E1000_CTRL      0x00000
#define E1000_STATUS    0x00008
#define E1000_EECD      0x00010
#define E1000_EERD      0x00014
#define E1000_CTRL_EXT  0x00018
#define E1000_FLA       0x0001c
#define E1000_MDIC      0x00020
#define E1000_FCAL      0x00028
#define E1000_FCAH      0x0002c
#define E1000_FCT       0x00030
#define E1000_VET       0x00038
#define E1000_ICR       0x000c0
#define E1000_ITR       0x000c4
#define E1000_ICS       0x000c8
#define E1000_IMS       0x000d0
#define E1000_IMC       0x000d8
#define E1000_RCTL      0x00100
#define E1000_FCTTV     0x00170
#define E1000_TXCW      0x00178
#define E1000_RXCW      0x00180
#define E1000_TCTL      0x00400
#define E1000_TCTL_EXT  0x00404
#define E1000_TIPG      0x00410
#define E1000_AIT       0x00458
#define E1000_LEDCTL    0x00e00
#define E1000_PBA       0x01000
#define E1000_FCRTL     0x02160
#define E1000_FCRTH     0x02168
#define E1000_RDFH      0x02410
#define E1000_RDFT      0x02418
#define E1000_RDFHS     0x02420
#define E1000_RDFTS     0x02428
#define E1000_RDFPC     0x02430
#define E1000_RDBAL     0x02800
#define E1000_RDBAH     0x02804
#define E1000_RDLEN     0x02808
#define E1000_RDH       0x02810
#define E1000_RDT       0x02818
#define E1000_RDTR      0x02820
#define E1000_RXDCTL    0x02828
#define E1000_RADV      0x0282c
#define E1000_RSRPD     0x02c00
#define E1000_TXDMAC    0x03000
#define E1000_TDFH      0x03410
#define E1000_TDFT      0x03418
#define E1000_TDFHS     0x03420
#define E1000_TDFTS     0x03428
#define E1000_TDFPC     0x03430
#define E1000_TDBAL     0x03800
#define E1000_TDBAH     0x03804
#define E1000_TDLEN     0x03808
#define E1000_TDH       0x03810
#define E1000_TDT       0x03818
#define E1000_TIDV      0x03820
#define E1000_TXDCTL    0x03828
#define E1000_TADV      0x0382c
#define E1000_TSPMT     0x03830
#define E1000_STATS_START 0x04000   /* statistics, clear on read */
#define E1000_STATS_END   0x04100
#define E1000_RXCSUM    0x05000
#define E1000_MTA       0x05200     /* 128 x 32 bits */
#define E1000_RA        0x05400     /* 16 x (RAL, RAH) */
#define E1000_VFTA      0x05600     /* 128 x 32 bits */
#define E1000_WUC       0x05800
#define E1000_WUFC      0x05808
#define E1000_WUS       0x05810
#define E1000_MANC      0x05820
#define E1000_IPAV      0x05838
#define E1000_IP4AT     0x05840
#define E1000_IP6AT     0x05880
#define E1000_WUPL      0x05900
#define E1000_WUPM      0x05a00
#define E1000_FFLT      0x05f00
#define E1000_FFMT      0x09000
#define E1000_FFVT      0x09800

#define E1000_MTA_ENTRIES  128
#define E1000_RA_ENTRIES   16
#define E1000_VFTA_ENTRIES 128

/* Statistics registers (all in STATS_START..STATS_END) */
#define E1000_CRCERRS   0x04000
#define E1000_MPC       0x04010
#define E1000_COLC      0x04028
#define E1000_RLEC      0x04040
#define E1000_PRC64     0x0405c
#define E1000_PRC127    0x04060
#define E1000_PRC255    0x04064
#define E1000_PRC511    0x04068
#define E1000_PRC1023   0x0406c
#define E1000_PRC1522   0x04070
#define E1000_GPRC      0x04074
#define E1000_BPRC      0x04078
#define E1000_MPRC      0x0407c
#define E1000_GPTC      0x04080
#define E1000_GORCL     0x04088
#define E1000_GORCH     0x0408c
#define E1000_GOTCL     0x04090
#define E1000_GOTCH     0x04094
#define E1000_RNBC      0x040a0
#define E1000_RUC       0x040a4
#define E1000_RFC       0x040a8
#define E1000_ROC       0x040ac
#define E1000_RJC       0x040b0
#define E1000_TORL      0x040c0
#define E1000_TORH      0x040c4
#define E1000_TOTL      0x040c8
#define E1000_TOTH      0x040cc
#define E1000_TPR       0x040d0
#define E1000_TPT       0x040d4
#define E1000_PTC64     0x040d8
#define E1000_PTC127    0x040dc
#define E1000_PTC255    0x040e0
#define E1000_PTC511    0x040e4
#define E1000_PTC1023   0x040e8
#define E1000_PTC1522   0x040ec
#define E1000_MPTC      0x040f0
#define E1000_BPTC      0x040f4
#define E1000_TSCTC     0x040f8
#define E1000_TSCTFC    0x040fc

/* CTRL */
#define E1000_CTRL_FD       (1u << 0)
#define E1000_CTRL_LRST     (1u << 3)
#define E1000_CTRL_ASDE     (1u << 5)
#define E1000_CTRL_SLU      (1u << 6)
#define E1000_CTRL_ILOS     (1u << 7)
#define E1000_CTRL_SPD_1000 (2u << 8)
#define E1000_CTRL_FRCSPD   (1u << 11)
#define E1000_CTRL_FRCDPX   (1u << 12)
#define E1000_CTRL_SWDPIN0  (1u << 18)
#define E1000_CTRL_SWDPIN2  (1u << 20)
#define E1000_CTRL_RST      (1u << 26)
#define E1000_CTRL_VME      (1u << 30)
#define E1000_CTRL_PHY_RST  (1u << 31)

/* STATUS */
#define E1000_STATUS_FD         (1u << 0)
#define E1000_STATUS_LU         (1u << 1)
#define E1000_STATUS_SPEED_1000 (1u << 7)
#define E1000_STATUS_ASDV_1000  (1u << 9)     /* bits 9:8 = 10b */
#define E1000_STATUS_MTXCKOK    (1u << 10)
#define E1000_STATUS_GIO_MASTER_EN (1u << 19)
/* What QEMU 7.2 shows with the link up (read from its STATUS register). */
#define E1000_STATUS_RESET_VALUE 0x80080783u

/* EECD: bit-banged Microwire EEPROM */
#define E1000_EECD_SK       (1u << 0)
#define E1000_EECD_CS       (1u << 1)
#define E1000_EECD_DI       (1u << 2)
#define E1000_EECD_DO       (1u << 3)
#define E1000_EECD_FWE_MASK (3u << 4)
#define E1000_EECD_REQ      (1u << 6)
#define E1000_EECD_GNT      (1u << 7)
#define E1000_EECD_PRES     (1u << 8)
/* Microwire READ: start bit 1, opcode 10b, then 6 address bits (64 words). */
#define E1000_EEPROM_READ_OPCODE 0x6
#define E1000_EEPROM_ADDR_BITS   6

/* EERD */
#define E1000_EERD_START      (1u << 0)
#define E1000_EERD_DONE       (1u << 4)
#define E1000_EERD_ADDR_SHIFT 8
#define E1000_EERD_ADDR_MASK  0xff00u
#define E1000_EERD_DATA_SHIFT 16

/* EEPROM words */
#define E1000_EEPROM_WORDS         64
#define E1000_EEPROM_SUBSYS_ID     0x0b
#define E1000_EEPROM_SUBSYS_VENDOR 0x0c
#define E1000_EEPROM_DEVICE_ID     0x0d
#define E1000_EEPROM_VENDOR_ID     0x0e
#define E1000_EEPROM_CHECKSUM_WORD 0x3f
#define E1000_EEPROM_SUM           0xbaba

/* MDIC */
#define E1000_MDIC_DATA_MASK 0xffffu
#define E1000_MDIC_REG_SHIFT 16
#define E1000_MDIC_REG_MASK  (0x1fu << 16)
#define E1000_MDIC_PHY_SHIFT 21
#define E1000_MDIC_PHY_MASK  (0x1fu << 21)
#define E1000_MDIC_OP_WRITE  (1u << 26)
#define E1000_MDIC_OP_READ   (2u << 26)
#define E1000_MDIC_READY     (1u << 28)
#define E1000_MDIC_INT_EN    (1u << 29)
#define E1000_MDIC_ERROR     (1u << 30)
#define E1000_PHY_ADDR       1

/* Interrupt causes (ICR/ICS/IMS/IMC) */
#define E1000_ICR_TXDW    (1u << 0)
#define E1000_ICR_TXQE    (1u << 1)
#define E1000_ICR_LSC     (1u << 2)
#define E1000_ICR_RXSEQ   (1u << 3)
#define E1000_ICR_RXDMT0  (1u << 4)
#define E1000_ICR_RXO     (1u << 6)
#define E1000_ICR_RXT0    (1u << 7)
#define E1000_ICR_MDAC    (1u << 9)
#define E1000_ICR_RXCFG   (1u << 10)
#define E1000_ICR_TXD_LOW (1u << 15)
#define E1000_ICR_SRPD    (1u << 16)
#define E1000_ICR_MASK    0x0001ffffu

/* RCTL */
#define E1000_RCTL_EN         (1u << 1)
#define E1000_RCTL_SBP        (1u << 2)
#define E1000_RCTL_UPE        (1u << 3)
#define E1000_RCTL_MPE        (1u << 4)
#define E1000_RCTL_LPE        (1u << 5)
#define E1000_RCTL_RDMTS_SHIFT 8
#define E1000_RCTL_RDMTS_MASK (3u << 8)
#define E1000_RCTL_MO_SHIFT   12
#define E1000_RCTL_MO_MASK    (3u << 12)
#define E1000_RCTL_BAM        (1u << 15)
#define E1000_RCTL_BSIZE_SHIFT 16
#define E1000_RCTL_BSIZE_MASK (3u << 16)
#define E1000_RCTL_VFE        (1u << 18)
#define E1000_RCTL_CFIEN      (1u << 19)
#define E1000_RCTL_CFI        (1u << 20)
#define E1000_RCTL_BSEX       (1u << 25)
#define E1000_RCTL_SECRC      (1u << 26)

/* RAH */
#define E1000_RAH_AV          (1u << 31)

/* RXCSUM */
#define E1000_RXCSUM_PCSS_MASK 0xffu
#define E1000_RXCSUM_IPOFLD   (1u << 8)
#define E1000_RXCSUM_TUOFLD   (1u << 9)

/* RDTR */
#define E1000_RDTR_FPD        (1u << 31)

/* Registers with fewer valid bits than 32 */
#define E1000_VET_MASK        0xffffu       /* VLAN ether type */
#define E1000_ITR_MASK        0xffffu       /* interval, 256 ns units */
#define E1000_DELAY_MASK      0xffffu       /* RDTR/RADV/TIDV/TADV, 1.024 us units */
#define E1000_DH_DT_MASK      0xffffu       /* RDH/RDT/TDH/TDT: descriptor index */
#define E1000_DBAL_MASK       0xfffffff0u   /* RDBAL/TDBAL: 16-byte aligned */
#define E1000_MTA_HASH_MASK   0x0fffu       /* 12 address bits pick one MTA bit */
#define E1000_DLEN_MASK       0x000fff80u   /* RDLEN/TDLEN: a multiple of 128 bytes */

/* TCTL */
#define E1000_TCTL_EN         (1u << 1)
#define E1000_TCTL_PSP        (1u << 3)

/* Receive descriptor (legacy), 16 bytes */
#define E1000_RXD_SIZE        16
#define E1000_RXD_ADDR        0
#define E1000_RXD_LENGTH      8
#define E1000_RXD_CSUM        10
#define E1000_RXD_STATUS      12
#define E1000_RXD_ERRORS      13
#define E1000_RXD_SPECIAL     14
#define E1000_RXD_STAT_DD     0x01
#define E1000_RXD_STAT_EOP    0x02
#define E1000_RXD_STAT_IXSM   0x04
#define E1000_RXD_STAT_VP     0x08
#define E1000_RXD_STAT_TCPCS  0x20
#define E1000_RXD_STAT_IPCS   0x40
#define E1000_RXD_ERR_TCPE    0x20
#define E1000_RXD_ERR_IPE     0x40

/* Transmit descriptors, 16 bytes: legacy, context (DEXT, DTYP=0), data
 * (DEXT, DTYP=1). Offsets within the descriptor. */
#define E1000_TXD_SIZE        16
/* legacy */
#define E1000_TXD_ADDR        0
#define E1000_TXD_LENGTH      8     /* 16 bits */
#define E1000_TXD_CSO         10
#define E1000_TXD_CMD         11
#define E1000_TXD_STATUS      12
#define E1000_TXD_CSS         13
#define E1000_TXD_SPECIAL     14
/* legacy CMD byte / data DCMD byte / context TUCMD byte */
#define E1000_TXD_CMD_EOP     0x01
#define E1000_TXD_CMD_IFCS    0x02
#define E1000_TXD_CMD_IC      0x04   /* legacy: insert checksum */
#define E1000_TXD_CMD_TSE     0x04   /* data/context: TCP segmentation */
#define E1000_TXD_CMD_RS      0x08
#define E1000_TXD_CMD_DEXT    0x20
#define E1000_TXD_CMD_VLE     0x40
#define E1000_TXD_CMD_IDE     0x80
#define E1000_TXD_TUCMD_TCP   0x01   /* context: TCP (else UDP) */
#define E1000_TXD_TUCMD_IP    0x02   /* context: IPv4 (else IPv6) */
#define E1000_TXD_STAT_DD     0x01
/* context descriptor */
#define E1000_TXC_IPCSS       0
#define E1000_TXC_IPCSO       1
#define E1000_TXC_IPCSE       2     /* 16 bits */
#define E1000_TXC_TUCSS       4
#define E1000_TXC_TUCSO       5
#define E1000_TXC_TUCSE       6     /* 16 bits */
#define E1000_TXC_CMD_LEN     8     /* 32 bits: PAYLEN 19:0, DTYP 23:20, TUCMD 31:24 */
#define E1000_TXC_STATUS      12
#define E1000_TXC_HDRLEN      13
#define E1000_TXC_MSS         14    /* 16 bits */
/* data descriptor */
#define E1000_TXDD_LEN_DTYP   8     /* 32 bits: length 19:0, DTYP 23:20, DCMD 31:24 */
#define E1000_TXDD_STATUS     12
#define E1000_TXDD_POPTS      13
#define E1000_TXDD_SPECIAL    14
#define E1000_TXD_DTYP_SHIFT  20
#define E1000_TXD_DTYP_MASK   0xfu  /* after the shift */
#define E1000_TXD_CMD_SHIFT   24    /* TUCMD / DCMD, and legacy CMD */
#define E1000_TXDD_LEN_MASK   0xfffffu  /* data: DTALEN; context: PAYLEN */
#define E1000_TXD_LEN_MASK    0xffffu   /* legacy: LENGTH */
#define E1000_TXD_DTYP_CTX    0
#define E1000_TXD_DTYP_DATA   1
#define E1000_TXD_POPTS_IXSM  0x01
#define E1000_TXD_POPTS_TXSM  0x02

/* PHY (MII + Marvell 88E1000/88E1011 specific) */
#define E1000_PHY_CTRL            0x00
#define E1000_PHY_STATUS          0x01
#define E1000_PHY_ID1             0x02
#define E1000_PHY_ID2             0x03
#define E1000_PHY_AUTONEG_ADV     0x04
#define E1000_PHY_LP_ABILITY      0x05
#define E1000_PHY_AUTONEG_EXP     0x06
#define E1000_PHY_1000T_CTRL      0x09
#define E1000_PHY_1000T_STATUS    0x0a
#define E1000_M88_PHY_SPEC_CTRL   0x10
#define E1000_M88_PHY_SPEC_STATUS 0x11
#define E1000_M88_EXT_PHY_SPEC_CTRL 0x14
#define E1000_M88_RX_ERR_CNTR     0x15
#define E1000_PHY_REGS            0x20

#define E1000_MII_CR_RESERVED     0x3fu     /* bits 5:0, read as 0 */
#define E1000_MII_CR_RESTART_AN   (1u << 9)
#define E1000_MII_CR_AN_ENABLE    (1u << 12)
#define E1000_MII_CR_RESET        (1u << 15)
#define E1000_MII_SR_LINK_STATUS  (1u << 2)
#define E1000_MII_SR_AN_COMPLETE  (1u << 5)
#define E1000_MII_LPAR_LPACK      (1u << 14)

#define E1000_PHY_ID1_MARVELL     0x0141
#define E1000_PHY_ID2_M88E1011    0x0c20   /* 82540EM, 82545EM */
#define E1000_PHY_ID2_M88E1000_I  0x0c30   /* 82544GC */

#endif
