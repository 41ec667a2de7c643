/*
 * Register map of the Realtek RTL8139C+ as the guest sees it through BAR0
 * (I/O) and BAR1 (MMIO): offsets, bit fields and descriptor layouts from the
 * RTL8139C/C+ datasheets, named after the datasheet (and the names Linux's
 * 8139too/8139cp use where the datasheet has none). No kernel UAPI header
 * carries these, so they live here, for the device model and its tests.
 */
#ifndef QNIC_HW_NET_RTL8139_REGS_H
#define QNIC_HW_NET_RTL8139_REGS_H

#define RTL8139_VENDOR_ID       0x10ec
#define RTL8139_DEVICE_ID       0x8139
#define RTL8139_REVISION        0x20        /* RTL8139C+ */
#define RTL8139_SUBSYS_VENDOR   0x1af4      /* QEMU's subsystem IDs */
#define RTL8139_SUBSYS_ID       0x1100
#define RTL8139_REGS_SIZE       0x100

/* ---- register offsets ---- */
#define RTL_IDR0        0x00    /* 6 bytes: station address */
#define RTL_MAR0        0x08    /* 8 bytes: multicast hash filter */
#define RTL_TSD0        0x10    /* 4 x 32: transmit status of descriptor n */
#define RTL_TSAD0       0x20    /* 4 x 32: transmit buffer address n */
#define RTL_TNPDS_LO    0x20    /* C+: normal-priority TX ring (aliases TSAD0/1) */
#define RTL_TNPDS_HI    0x24
#define RTL_THPDS_LO    0x28    /* C+: high-priority TX ring (aliases TSAD2/3) */
#define RTL_THPDS_HI    0x2c
#define RTL_RBSTART     0x30    /* 32: RX ring buffer start */
#define RTL_ERBCR       0x34    /* 16: early RX byte count */
#define RTL_ERSR        0x36    /* 8: early RX status */
#define RTL_CR          0x37    /* 8: command */
#define RTL_CAPR        0x38    /* 16: current address of packet read (-16) */
#define RTL_CBR         0x3a    /* 16: current RX buffer address (write ptr) */
#define RTL_IMR         0x3c    /* 16: interrupt mask */
#define RTL_ISR         0x3e    /* 16: interrupt status, write 1 to clear */
#define RTL_TCR         0x40    /* 32: transmit configuration */
#define RTL_RCR         0x44    /* 32: receive configuration */
#define RTL_TCTR        0x48    /* 32: timer count (write resets) */
#define RTL_MPC         0x4c    /* 32: missed packet counter (write resets) */
#define RTL_9346CR      0x50    /* 8: EEPROM command */
#define RTL_CONFIG0     0x51
#define RTL_CONFIG1     0x52
#define RTL_TIMERINT    0x54    /* 32: timer interrupt compare value */
#define RTL_MSR         0x58    /* 8: media status */
#define RTL_CONFIG3     0x59
#define RTL_CONFIG4     0x5a
#define RTL_HLTCLK      0x5b    /* 8: halt clock */
#define RTL_MULINT      0x5c    /* 16: multiple interrupt select */
#define RTL_RERID       0x5e    /* 8: PCI revision ID */
#define RTL_TSAD        0x60    /* 16: transmit status of all descriptors */
#define RTL_BMCR        0x62    /* 16: MII basic mode control */
#define RTL_BMSR        0x64    /* 16: MII basic mode status */
#define RTL_ANAR        0x66    /* 16: auto-negotiation advertisement */
#define RTL_ANLPAR      0x68    /* 16: auto-negotiation link partner */
#define RTL_ANER        0x6a    /* 16: auto-negotiation expansion */
#define RTL_DIS         0x6c
#define RTL_FCSC        0x6e
#define RTL_NWAYTR      0x70
#define RTL_REC         0x72
#define RTL_CSCR        0x74    /* 16: CS configuration */
#define RTL_PHY1_PARM   0x78
#define RTL_TW_PARM     0x7c
#define RTL_PHY2_PARM   0x80
#define RTL_CONFIG5     0xd8
#define RTL_TPPOLL      0xd9    /* 8: C+ transmit priority polling */
#define RTL_RXMAXSIZE   0xda    /* 16: C+ max RX packet size */
#define RTL_CPCR        0xe0    /* 16: C+ command (CPlusCmd) */
#define RTL_RDSAR_LO    0xe4    /* 32: C+ RX descriptor ring start */
#define RTL_RDSAR_HI    0xe8
#define RTL_ETTHR       0xec    /* 8: C+ early TX threshold */

/* ---- CR ---- */
#define RTL_CR_BUFE     0x01    /* RX buffer empty (read only) */
#define RTL_CR_TE       0x04
#define RTL_CR_RE       0x08
#define RTL_CR_RST      0x10

/* ---- IMR / ISR ---- */
#define RTL_INT_ROK         0x0001
#define RTL_INT_RER         0x0002
#define RTL_INT_TOK         0x0004
#define RTL_INT_TER         0x0008
#define RTL_INT_RXOVW       0x0010  /* RX buffer overflow / C+: no RX desc */
#define RTL_INT_PUN         0x0020  /* packet underrun / link change */
#define RTL_INT_FOVW        0x0040  /* RX FIFO overflow */
#define RTL_INT_TDU         0x0080  /* C+: TX descriptor unavailable */
#define RTL_INT_SWINT       0x0100  /* C+: software interrupt (TPPoll FSWInt) */
#define RTL_INT_LENCHG      0x2000  /* cable length change */
#define RTL_INT_TIMEOUT     0x4000  /* TCTR reached TimerInt */
#define RTL_INT_SERR        0x8000  /* system error */
#define RTL_IMR_MASK        0xe1ff  /* writable IMR bits */

/* ---- TSDn ---- */
#define RTL_TSD_SIZE_MASK   0x1fff
#define RTL_TSD_OWN         (1u << 13)  /* 1 = DMA to FIFO done, buffer is the driver's */
#define RTL_TSD_TUN         (1u << 14)
#define RTL_TSD_TOK         (1u << 15)
#define RTL_TSD_ERTXTH_MASK (0x3fu << 16)
#define RTL_TSD_TABT        (1u << 30)
#define RTL_TSD_CRS         (1u << 31)

/* ---- TSAD (0x60) summary: bit n + shift per descriptor ---- */
#define RTL_TSAD_OWN_SHIFT  0
#define RTL_TSAD_TABT_SHIFT 4
#define RTL_TSAD_TUN_SHIFT  8
#define RTL_TSAD_TOK_SHIFT  12

/* ---- TCR ---- */
#define RTL_TCR_CLRABT      (1u << 0)
#define RTL_TCR_CRC         (1u << 16)  /* 1 = do not append CRC */
#define RTL_TCR_LBK_MASK    (3u << 17)
#define RTL_TCR_LBK_LOOP    (3u << 17)  /* loopback: TX goes to own RX */
#define RTL_TCR_HWVER_MASK  0x7cc00000u
#define RTL_TCR_HWVER_8139CP 0x74800000u /* RTL8139C+ */
#define RTL_TCR_WMASK       0x030f07f0u /* IFG, LBK, CRC, MXDMA, TXRR */

/* ---- RCR ---- */
#define RTL_RCR_AAP         (1u << 0)   /* accept all (promiscuous) */
#define RTL_RCR_APM         (1u << 1)   /* accept physical match */
#define RTL_RCR_AM          (1u << 2)   /* accept multicast (hash) */
#define RTL_RCR_AB          (1u << 3)   /* accept broadcast */
#define RTL_RCR_AR          (1u << 4)   /* accept runt */
#define RTL_RCR_AER         (1u << 5)   /* accept error */
#define RTL_RCR_WRAP        (1u << 7)   /* 1 = write past end, 0 = wrap */
#define RTL_RCR_RBLEN_SHIFT 11
#define RTL_RCR_RBLEN_MASK  (3u << 11)  /* 8K << n */
#define RTL_RCR_WMASK       0x0f0fffbfu /* ERTH, MulERINT, RER8, RXFTH, RBLEN,
                                           MXDMA, WRAP, AER..AAP (bit 6 reserved) */

/* ---- CONFIG0 / CONFIG1 / CONFIG3 ---- */
#define RTL_CONFIG0_BS_MASK 0x07        /* boot ROM size: the writable bits */
#define RTL_CONFIG1_LWACT   0x04        /* LWAKE active mode */
#define RTL_CONFIG1_DVRLOAD 0x08        /* driver loaded */
#define RTL_CONFIG3_FBTBEN  0x01        /* fast back-to-back enable (read only) */

/* ---- MSR ---- */
#define RTL_MSR_LINKB       0x04        /* 1 = link down */
#define RTL_MSR_AUX_STATUS  0x10
#define RTL_MSR_RXFCE       0x40
#define RTL_MSR_TXFCE       0x80

/* ---- MULINT ---- */
#define RTL_MULINT_MISR_MASK 0x0fff     /* multiple interrupt select */

/* ---- RX packet header status (C mode) ---- */
#define RTL_RXS_ROK         0x0001
#define RTL_RXS_FAE         0x0002
#define RTL_RXS_CRC         0x0004
#define RTL_RXS_LONG        0x0008
#define RTL_RXS_RUNT        0x0010
#define RTL_RXS_ISE         0x0020
#define RTL_RXS_BAR         0x2000      /* broadcast */
#define RTL_RXS_PAM         0x4000      /* physical address matched */
#define RTL_RXS_MAR         0x8000      /* multicast */

/* ---- 9346CR ---- */
#define RTL_9346_EEDO       0x01
#define RTL_9346_EEDI       0x02
#define RTL_9346_EESK       0x04
#define RTL_9346_EECS       0x08
#define RTL_9346_EEM_SHIFT  6
#define RTL_9346_EEM_MASK   0xc0
#define RTL_9346_EEM_NORMAL 0x00
#define RTL_9346_EEM_AUTOLOAD 0x40
#define RTL_9346_EEM_PROGRAM  0x80
#define RTL_9346_EEM_CFGWE  0xc0        /* config register write enable */

/* ---- 93C46 EEPROM (64 x 16 bits, 6-bit addresses) ---- */
#define RTL_EEPROM_WORDS    64
#define RTL_EEPROM_ADDR_BITS 6
#define RTL_EEPROM_OP_READ  0x2         /* after the start bit: 10 */
#define RTL_EEPROM_OP_WRITE 0x1         /* 01 */
#define RTL_EEPROM_OP_ERASE 0x3         /* 11 */
#define RTL_EEPROM_OP_EXT   0x0         /* 00: EWEN/EWDS/ERAL/WRAL by address */
#define RTL_EEPROM_MAGIC    0x8129      /* word 0 */
#define RTL_EEPROM_MAC_WORD 7           /* words 7..9: station address */

/* ---- C+ CPlusCmd ---- */
#define RTL_CPCR_TXENB      (1u << 0)
#define RTL_CPCR_RXENB      (1u << 1)
#define RTL_CPCR_MULRW      (1u << 3)
#define RTL_CPCR_DAC        (1u << 4)
#define RTL_CPCR_RXCHKSUM   (1u << 5)
#define RTL_CPCR_RXVLAN     (1u << 6)

/* ---- C+ TPPoll ---- */
#define RTL_TPPOLL_FSWINT   (1u << 0)
#define RTL_TPPOLL_NPQ      (1u << 6)
#define RTL_TPPOLL_HPQ      (1u << 7)

/* ---- C+ descriptors: 16 bytes, dw0 flags/length, dw1 VLAN, dw2/3 buffer ---- */
#define RTL_CP_DESC_SIZE    16
#define RTL_CPD_DW0         0           /* flags and length */
#define RTL_CPD_DW1         4           /* VLAN */
#define RTL_CPD_BUF_LO      8           /* buffer address, low 32 bits */
#define RTL_CPD_BUF_HI      12
#define RTL_CP_RING_MAX     64          /* descriptors before an implicit wrap */
#define RTL_CPD_OWN         (1u << 31)
#define RTL_CPD_EOR         (1u << 30)
#define RTL_CPD_FS          (1u << 29)
#define RTL_CPD_LS          (1u << 28)
/* TX dw0 */
#define RTL_CPTX_LGSEN      (1u << 27)
#define RTL_CPTX_MSS_SHIFT  16
#define RTL_CPTX_MSS_MASK   0x7ffu
#define RTL_CPTX_IPCS       (1u << 18)
#define RTL_CPTX_UDPCS      (1u << 17)
#define RTL_CPTX_TCPCS      (1u << 16)
#define RTL_CPTX_LEN_MASK   0xffffu
/* TX status written back */
#define RTL_CPTX_UNF        (1u << 25)  /* underrun / error summary */
/* TX dw1 */
#define RTL_CPTX_TAGC       (1u << 17)  /* insert the tag in bits 0-15 (big-endian) */
/* RX dw0 written back */
#define RTL_CPRX_MAR        (1u << 26)
#define RTL_CPRX_PAM        (1u << 25)
#define RTL_CPRX_BAR        (1u << 24)
#define RTL_CPRX_RES        (1u << 20)  /* error summary */
#define RTL_CPRX_PID_SHIFT  16          /* 1 TCP/IP, 2 UDP/IP, 3 IP */
#define RTL_CPRX_PID_TCP    1u
#define RTL_CPRX_PID_UDP    2u
#define RTL_CPRX_PID_IP     3u
#define RTL_CPRX_IPF        (1u << 15)
#define RTL_CPRX_UDPF       (1u << 14)
#define RTL_CPRX_TCPF       (1u << 13)
#define RTL_CPRX_LEN_MASK   0x1fffu     /* guest: buffer size; device: frame + CRC */
/* RX dw1 */
#define RTL_CPRX_TAVA       (1u << 16)  /* a VLAN tag was stripped to bits 0-15 */

/* ---- MII (mapped) reset values, as QEMU 7.2 shows them ---- */
#define RTL_BMCR_RESET      0x1000      /* auto-negotiation enabled */
#define RTL_BMSR_RESET      0x782d      /* 10/100 capable, AN done, link up */
#define RTL_ANAR_RESET      0x05e1
#define RTL_ANLPAR_RESET    0x05e1
#define RTL_ANER_RESET      0x0001
#define RTL_CSCR_RESET      0x0340
#define RTL_CAPR_RESET      0xfff0      /* CAPR is 16 behind the read pointer */

#endif
