#!/bin/sh
# qnic-vmm boot, end to end (TAP output): assembles a minimal PVH guest with
# the system's as/ld (32-bit code that checks EBX points at the hvm_start_info
# magic, prints "hello" on COM1 and writes 0x10 to isa-debug-exit), boots it
# under qnic-vmm and under QEMU 7.2 with the same options, and expects
# "hello" on stdout and exit status 33 from both. Then the bad-input cases:
# missing -kernel file, not an ELF, ELF without PVH note, -m too small and
# too large must each end with one "qnic-vmm: ..." line and status 1.
# Usage: test-vmm-boot.sh [path/to/qnic-vmm]   ($QNIC_VMM also works)

VMM=${1:-${QNIC_VMM:-}}
QEMU=${QEMU_BINARY:-qemu-system-x86_64}
TIMEOUT=${TEST_TIMEOUT:-30}

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
not_ok() { n=$((n + 1)); failed=1; echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

if [ -z "$VMM" ] || [ ! -x "$VMM" ]; then
    echo "1..0 # SKIP qnic-vmm binary not given (argument or \$QNIC_VMM)"
    exit 0
fi
for tool in as ld timeout; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "1..0 # SKIP $tool is not installed (binutils/coreutils)"
        exit 0
    fi
done

# Every case goes through qnic-vmm's KVM path (it opens /dev/kvm before it
# loads the kernel), and QEMU's runs are only the reference for them: with
# no usable KVM nothing here would check qnic (the PVH/bzImage loader's
# errors are unit-tested without KVM in test-boot).
kvm_problem=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import guestlib
print(guestlib.kvm_problem() or "")' "$(dirname "$0")" 2>/dev/null) || kvm_problem="/dev/kvm could not be checked"
if [ -n "$kvm_problem" ]; then
    echo "1..0 # SKIP qnic-vmm needs KVM and $kvm_problem: qnic-vmm's PVH boot and its -kernel/-m errors"
    exit 0
fi

tmp=$(mktemp -d /tmp/qnic-vmm-boot.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

cat > "$tmp/guest.S" <<'EOF'
/* PVH entry: 32-bit protected mode, flat segments, EBX = hvm_start_info */
        .section .note.Xen, "a", @note
        .balign 4
        .long 4                 /* namesz */
        .long 4                 /* descsz */
        .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
        .asciz "Xen"
        .long _start

        .text
        .code32
        .globl _start
_start:
        cli
        cmpl $0x336ec578, (%ebx)
        jne bad
        mov $msg, %esi
1:      lodsb
        test %al, %al
        jz 2f
        mov $0x3f8, %dx
        out %al, %dx
        jmp 1b
2:      mov $0x10, %eax
        out %eax, $0xf4         /* exit status (0x10 << 1) | 1 = 33 */
3:      hlt
        jmp 3b
bad:    mov $0x20, %eax
        out %eax, $0xf4         /* 65: no start info */
        jmp 3b

        .data
msg:    .asciz "hello\n"
EOF
cat > "$tmp/guest.ld" <<'EOF'
ENTRY(_start)
PHDRS { text PT_LOAD; note PT_NOTE; }
SECTIONS {
    . = 0x100000;
    .text : { *(.text) } :text
    .data : { *(.data) } :text
    .note : { *(.note.Xen) } :text :note
    /DISCARD/ : { *(.note.gnu.*) }
}
EOF
if ! as --32 -o "$tmp/guest.o" "$tmp/guest.S" 2>"$tmp/as.err" ||
   ! ld -m elf_i386 -T "$tmp/guest.ld" -o "$tmp/guest.elf" "$tmp/guest.o" 2>"$tmp/ld.err"; then
    echo "1..0 # SKIP cannot assemble the guest: $(cat "$tmp/as.err" "$tmp/ld.err" | head -1)"
    exit 0
fi
# the same code without the note: a plain ELF that is not PVH
cat > "$tmp/nonote.ld" <<'EOF'
ENTRY(_start)
SECTIONS {
    . = 0x100000;
    .text : { *(.text) }
    .data : { *(.data) }
    /DISCARD/ : { *(.note*) }
}
EOF
ld -m elf_i386 -T "$tmp/nonote.ld" -o "$tmp/nonote.elf" "$tmp/guest.o" 2>/dev/null ||
    cp /bin/true "$tmp/nonote.elf"
printf 'this is not a kernel\n' > "$tmp/notelf"

echo "1..9"

# run NAME EXPECTED_STATUS CMD... : stdout/stderr into $tmp/NAME.{out,err}
run() {
    name=$1
    shift
    timeout -k 5 "$TIMEOUT" "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" < /dev/null
    echo $?
}

boot_args="-nodefaults -display none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4"

# shellcheck disable=SC2086
st=$(run vmm-boot "$VMM" -machine pc -m 64 $boot_args -kernel "$tmp/guest.elf")
out=$(cat "$tmp/vmm-boot.out")
if [ "$st" = 33 ] && [ "$out" = "hello" ]; then
    ok "qnic-vmm boots the PVH guest: 'hello', status 33"
else
    not_ok "qnic-vmm boots the PVH guest" "status $st, stdout '$out'" "$(cat "$tmp/vmm-boot.err")"
fi

if ! command -v "$QEMU" >/dev/null 2>&1; then
    skip "QEMU boots the same guest" "no $QEMU"
else
    # shellcheck disable=SC2086
    st=$(run qemu-boot "$QEMU" -enable-kvm -M pc -m 64 $boot_args -kernel "$tmp/guest.elf")
    out=$(cat "$tmp/qemu-boot.out")
    if [ "$st" = 33 ] && [ "$out" = "hello" ]; then
        ok "QEMU boots the same guest: 'hello', status 33"
    else
        not_ok "QEMU boots the same guest" "status $st, stdout '$out'" "$(cat "$tmp/qemu-boot.err")"
    fi
fi

# Bad input: exit status 1 and exactly one line "qnic-vmm: ..." naming the problem.
expect_error() {
    desc=$1; name=$2; needle=$3
    shift 3
    st=$(run "$name" "$VMM" "$@")
    lines=$(wc -l < "$tmp/$name.err")
    first=$(head -1 "$tmp/$name.err")
    case "$first" in
        "qnic-vmm: "*"$needle"*) good=1 ;;
        *) good=0 ;;
    esac
    if [ "$st" = 1 ] && [ "$lines" = 1 ] && [ "$good" = 1 ]; then
        ok "$desc: $first"
    else
        not_ok "$desc" "status $st (want 1), $lines stderr lines (want 1), want '$needle'" \
            "$(cat "$tmp/$name.err")"
    fi
}

# shellcheck disable=SC2086
expect_error "missing -kernel file" missing "could not load kernel" \
    $boot_args -kernel "$tmp/does-not-exist.elf"
# shellcheck disable=SC2086
expect_error "-kernel not an ELF" notelf "not an ELF" $boot_args -kernel "$tmp/notelf"
# shellcheck disable=SC2086
expect_error "ELF without PVH note" nonote "no PVH entry note" \
    $boot_args -kernel "$tmp/nonote.elf"
# shellcheck disable=SC2086
expect_error "-m too small" small "too small" -m 1M $boot_args -kernel "$tmp/guest.elf"
# shellcheck disable=SC2086
expect_error "-m too large" large "exceeds the host" -m 1000G $boot_args -kernel "$tmp/guest.elf"
# shellcheck disable=SC2086
expect_error "no -kernel" nokernel "no -kernel given" $boot_args

# QEMU refuses a missing kernel the same way (status 1); its wording differs.
if ! command -v "$QEMU" >/dev/null 2>&1; then
    skip "QEMU also refuses a missing -kernel" "no $QEMU"
else
    # shellcheck disable=SC2086
    st=$(run qemu-missing "$QEMU" -enable-kvm -M pc $boot_args -kernel "$tmp/does-not-exist.elf")
    if [ "$st" = 1 ]; then
        ok "QEMU also refuses a missing -kernel with status 1"
    else
        not_ok "QEMU also refuses a missing -kernel" "status $st" "$(cat "$tmp/qemu-missing.err")"
    fi
fi

exit $failed
