/* Helpers shared by the fuzz targets: reading typed values from the input. */
#ifndef QNIC_FUZZ_H
#define QNIC_FUZZ_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>

typedef struct FuzzIn {
    const uint8_t *p;
    size_t len;
} FuzzIn;

static inline size_t fuzz_bytes(FuzzIn *in, void *out, size_t n)
{
    size_t k = n < in->len ? n : in->len;
    memcpy(out, in->p, k);
    if (k < n) {
        memset((uint8_t *)out + k, 0, n - k);
    }
    in->p += k;
    in->len -= k;
    return k;
}

static inline uint8_t fuzz_u8(FuzzIn *in) { uint8_t v; fuzz_bytes(in, &v, 1); return v; }
static inline uint16_t fuzz_u16(FuzzIn *in) { uint16_t v; fuzz_bytes(in, &v, 2); return v; }
static inline uint32_t fuzz_u32(FuzzIn *in) { uint32_t v; fuzz_bytes(in, &v, 4); return v; }
static inline uint64_t fuzz_u64(FuzzIn *in) { uint64_t v; fuzz_bytes(in, &v, 8); return v; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Observations of the device harness (fuzz-device.c) that replay.c checks
 * against a reproducer's NAME.expect file: frames the device sent to the
 * wire during the last input, and a hook run after an input, while its
 * machine still exists (guest RAM can be inspected). Weak in replay.c so
 * that targets without a machine link too. */
typedef struct QnicMachine QnicMachine;
extern uint64_t fuzz_frames_out;
extern void (*fuzz_after_run)(QnicMachine *m);

#endif
