/*
 * The byte cursor both readers of the device-state stream use (util/state.c
 * with the tables, util/state-dump.c without): bounded reads over the
 * caller's buffer that fail instead of reading past its end.
 */
#ifndef QNIC_STATE_INT_H
#define QNIC_STATE_INT_H

#include "qnic/common.h"

typedef struct Cur {
    const uint8_t *p;
    size_t len, pos;
} Cur;

static inline bool take(Cur *c, size_t n, const uint8_t **out)
{
    if (c->len - c->pos < n) {
        return false;
    }
    *out = c->p + c->pos;
    c->pos += n;
    return true;
}

static inline bool get_le(Cur *c, unsigned size, uint64_t *v)
{
    const uint8_t *b;
    if (!take(c, size, &b)) {
        return false;
    }
    *v = 0;
    for (unsigned i = 0; i < size; i++) {
        *v |= (uint64_t)b[i] << (8 * i);
    }
    return true;
}

#endif
