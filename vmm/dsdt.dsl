/*
 * The DSDT of qnic-vmm's pc board, compiled by iasl (acpica-tools) at build
 * time and copied into guest RAM by vmm/acpi.c. It describes:
 * - \_SB.PCI0, the PCI root bus (PNP0A03) behind the host bridge at
 *   0xcf8/0xcfc, with its bus, I/O and memory windows (_CRS) and its INTx
 *   routing (_PRT): pin P (INTA = 0) of slot S goes to I/O APIC GSI
 *   16 + ((S + P) & 3), the fixed routing of hw/pci/host.c and of the MP
 *   table (vmm/mptable.c);
 * - the hotpluggable slots S02..S1F (slot 0 is the host bridge, slot 1 the
 *   PIIX3, both built in and never ejected: hw/pci/pcihp.c's RMV), each with
 *   _ADR, _SUN, _STA (a function 0 answers its vendor ID) and _EJ0, which
 *   writes the slot's bit to the EJ register;
 * - \_GPE._E01: GPE0 bit 1 is the hotplug event of hw/pci/pcihp.c; it reads
 *   UP (slots plugged, cleared by the read) and DOWN (slots the host wants
 *   gone) and notifies each slot: bus check (1) or eject request (3);
 * - the I/O ports of the ACPI register blocks, reserved as motherboard
 *   resources (PNP0C02) so that the OS places no BAR on them.
 * The hotplug registers (docs/qmp.md "Hotplug") are those of QEMU's PIIX4
 * power-management function: UP 0xae00, DOWN 0xae04, EJ 0xae08, RMV
 * 0xae0c, SEL 0xae10, all 32-bit; GPE0 is the byte block at 0xafe0.
 */
DefinitionBlock ("", "DSDT", 2, "QNIC  ", "QNICDSDT", 1)
{
    Scope (\_SB)
    {
        Device (PCI0)
        {
            Name (_HID, EisaId ("PNP0A03"))
            Name (_UID, Zero)
            Name (_BBN, Zero)

            /* Bus 0-255; config ports; I/O around them; the legacy VGA
             * window; the hole below the I/O APIC where BARs go
             * (QNIC_PCI_HOLE_START..QNIC_PCI_HOLE_END, qnic/machine.h). */
            Name (_CRS, ResourceTemplate ()
            {
                WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,
                    0x0000, 0x0000, 0x00FF, 0x0000, 0x0100)
                IO (Decode16, 0x0CF8, 0x0CF8, 0x01, 0x08)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000, 0x0000, 0x0CF7, 0x0000, 0x0CF8)
                WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,
                    0x0000, 0x0D00, 0xFFFF, 0x0000, 0xF300)
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, Cacheable,
                    ReadWrite, 0x00000000, 0x000A0000, 0x000BFFFF, 0x00000000, 0x00020000)
                DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable,
                    ReadWrite, 0x00000000, 0xE0000000, 0xFEBFFFFF, 0x00000000, 0x1EC00000)
            })

            /* 32 slots x 4 pins, built once when the OS asks. */
            Method (_PRT, 0, Serialized)
            {
                Local0 = Package (0x80) {}
                Local1 = Zero
                While (Local1 < 0x80)
                {
                    Local2 = (Local1 >> 2)          /* slot */
                    Local3 = (Local1 & 0x03)        /* pin, INTA = 0 */
                    Local4 = Package (0x04) { Zero, Zero, Zero, Zero }
                    Local4 [Zero] = ((Local2 << 16) | 0xFFFF)
                    Local4 [One] = Local3
                    Local4 [0x03] = (0x10 + ((Local2 + Local3) & 0x03))
                    Local0 [Local1] = Local4
                    Local1++
                }
                Return (Local0)
            }

            OperationRegion (PCST, SystemIO, 0xAE00, 0x08)
            Field (PCST, DWordAcc, NoLock, WriteAsZeros)
            {
                PCIU,   32,     /* UP: read clears */
                PCID,   32,     /* DOWN */
            }
            OperationRegion (SEJ, SystemIO, 0xAE08, 0x04)
            Field (SEJ, DWordAcc, NoLock, WriteAsZeros)
            {
                B0EJ,   32,     /* EJ: write the slot's bit */
            }
            OperationRegion (BNMR, SystemIO, 0xAE10, 0x04)
            Field (BNMR, DWordAcc, NoLock, WriteAsZeros)
            {
                BNUM,   32,     /* SEL: bus 0 is the only one */
            }

            Mutex (HPLK, 0x00)

            /* Eject slot Arg0. */
            Method (PCEJ, 1, NotSerialized)
            {
                Acquire (HPLK, 0xFFFF)
                BNUM = Zero
                B0EJ = (One << Arg0)
                Release (HPLK)
                Return (Zero)
            }

            /* The hotplug event: the slots of UP get a bus check, those of
             * DOWN an eject request. */
            Method (PCNT, 0, NotSerialized)
            {
                Acquire (HPLK, 0xFFFF)
                BNUM = Zero
                Local0 = PCIU
                Local1 = PCID
                Release (HPLK)
                DVNT (Local0, One)
                DVNT (Local1, 0x03)
            }

            /* Notify every slot whose bit is set in Arg0 with event Arg1. */
            Method (DVNT, 2, NotSerialized)
            {
                If ((Arg0 & 0x00000004)) { Notify (S02, Arg1) }
                If ((Arg0 & 0x00000008)) { Notify (S03, Arg1) }
                If ((Arg0 & 0x00000010)) { Notify (S04, Arg1) }
                If ((Arg0 & 0x00000020)) { Notify (S05, Arg1) }
                If ((Arg0 & 0x00000040)) { Notify (S06, Arg1) }
                If ((Arg0 & 0x00000080)) { Notify (S07, Arg1) }
                If ((Arg0 & 0x00000100)) { Notify (S08, Arg1) }
                If ((Arg0 & 0x00000200)) { Notify (S09, Arg1) }
                If ((Arg0 & 0x00000400)) { Notify (S0A, Arg1) }
                If ((Arg0 & 0x00000800)) { Notify (S0B, Arg1) }
                If ((Arg0 & 0x00001000)) { Notify (S0C, Arg1) }
                If ((Arg0 & 0x00002000)) { Notify (S0D, Arg1) }
                If ((Arg0 & 0x00004000)) { Notify (S0E, Arg1) }
                If ((Arg0 & 0x00008000)) { Notify (S0F, Arg1) }
                If ((Arg0 & 0x00010000)) { Notify (S10, Arg1) }
                If ((Arg0 & 0x00020000)) { Notify (S11, Arg1) }
                If ((Arg0 & 0x00040000)) { Notify (S12, Arg1) }
                If ((Arg0 & 0x00080000)) { Notify (S13, Arg1) }
                If ((Arg0 & 0x00100000)) { Notify (S14, Arg1) }
                If ((Arg0 & 0x00200000)) { Notify (S15, Arg1) }
                If ((Arg0 & 0x00400000)) { Notify (S16, Arg1) }
                If ((Arg0 & 0x00800000)) { Notify (S17, Arg1) }
                If ((Arg0 & 0x01000000)) { Notify (S18, Arg1) }
                If ((Arg0 & 0x02000000)) { Notify (S19, Arg1) }
                If ((Arg0 & 0x04000000)) { Notify (S1A, Arg1) }
                If ((Arg0 & 0x08000000)) { Notify (S1B, Arg1) }
                If ((Arg0 & 0x10000000)) { Notify (S1C, Arg1) }
                If ((Arg0 & 0x20000000)) { Notify (S1D, Arg1) }
                If ((Arg0 & 0x40000000)) { Notify (S1E, Arg1) }
                If ((Arg0 & 0x80000000)) { Notify (S1F, Arg1) }
            }

            Device (S02)
            {
                Name (_ADR, 0x00020000)
                Name (_SUN, 0x02)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S03)
            {
                Name (_ADR, 0x00030000)
                Name (_SUN, 0x03)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S04)
            {
                Name (_ADR, 0x00040000)
                Name (_SUN, 0x04)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S05)
            {
                Name (_ADR, 0x00050000)
                Name (_SUN, 0x05)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S06)
            {
                Name (_ADR, 0x00060000)
                Name (_SUN, 0x06)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S07)
            {
                Name (_ADR, 0x00070000)
                Name (_SUN, 0x07)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S08)
            {
                Name (_ADR, 0x00080000)
                Name (_SUN, 0x08)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S09)
            {
                Name (_ADR, 0x00090000)
                Name (_SUN, 0x09)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S0A)
            {
                Name (_ADR, 0x000A0000)
                Name (_SUN, 0x0A)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S0B)
            {
                Name (_ADR, 0x000B0000)
                Name (_SUN, 0x0B)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S0C)
            {
                Name (_ADR, 0x000C0000)
                Name (_SUN, 0x0C)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S0D)
            {
                Name (_ADR, 0x000D0000)
                Name (_SUN, 0x0D)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S0E)
            {
                Name (_ADR, 0x000E0000)
                Name (_SUN, 0x0E)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S0F)
            {
                Name (_ADR, 0x000F0000)
                Name (_SUN, 0x0F)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S10)
            {
                Name (_ADR, 0x00100000)
                Name (_SUN, 0x10)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S11)
            {
                Name (_ADR, 0x00110000)
                Name (_SUN, 0x11)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S12)
            {
                Name (_ADR, 0x00120000)
                Name (_SUN, 0x12)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S13)
            {
                Name (_ADR, 0x00130000)
                Name (_SUN, 0x13)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S14)
            {
                Name (_ADR, 0x00140000)
                Name (_SUN, 0x14)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S15)
            {
                Name (_ADR, 0x00150000)
                Name (_SUN, 0x15)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S16)
            {
                Name (_ADR, 0x00160000)
                Name (_SUN, 0x16)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S17)
            {
                Name (_ADR, 0x00170000)
                Name (_SUN, 0x17)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S18)
            {
                Name (_ADR, 0x00180000)
                Name (_SUN, 0x18)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S19)
            {
                Name (_ADR, 0x00190000)
                Name (_SUN, 0x19)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S1A)
            {
                Name (_ADR, 0x001A0000)
                Name (_SUN, 0x1A)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S1B)
            {
                Name (_ADR, 0x001B0000)
                Name (_SUN, 0x1B)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S1C)
            {
                Name (_ADR, 0x001C0000)
                Name (_SUN, 0x1C)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S1D)
            {
                Name (_ADR, 0x001D0000)
                Name (_SUN, 0x1D)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S1E)
            {
                Name (_ADR, 0x001E0000)
                Name (_SUN, 0x1E)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }
            Device (S1F)
            {
                Name (_ADR, 0x001F0000)
                Name (_SUN, 0x1F)
                OperationRegion (PCIC, PCI_Config, Zero, 0x04)
                Field (PCIC, DWordAcc, NoLock, Preserve) { VDID, 32 }
                Method (_STA, 0, NotSerialized) { Return (SSTA (VDID)) }
                Method (_EJ0, 1, NotSerialized) { PCEJ (_SUN) }
            }

            /* _STA of a slot from the vendor/device ID dword of its
             * function 0: all ones when nothing answers. */
            Method (SSTA, 1, NotSerialized)
            {
                If ((Arg0 == 0xFFFFFFFF)) { Return (Zero) }
                Return (0x0F)
            }
        }

        /* The ACPI register blocks, kept out of the PCI I/O window's
         * allocations: PM1 and PM timer (vmm/acpi-pm.h), PCI hotplug,
         * GPE0. */
        Device (MBRS)
        {
            Name (_HID, EisaId ("PNP0C02"))
            Name (_UID, One)
            Name (_CRS, ResourceTemplate ()
            {
                IO (Decode16, 0x0600, 0x0600, 0x01, 0x0C)
                IO (Decode16, 0xAE00, 0xAE00, 0x01, 0x18)
                IO (Decode16, 0xAFE0, 0xAFE0, 0x01, 0x04)
            })
        }
    }

    Scope (\_GPE)
    {
        Name (_HID, "ACPI0006")

        Method (_E01, 0, NotSerialized)
        {
            \_SB.PCI0.PCNT ()
        }
    }
}
