/*
 * The freestanding C library of the test guest: memory and string helpers
 * that GCC may call implicitly, a small printf, the 16550 serial console on
 * COM1, the isa-debug-exit verdict, CRC32 (the checksum the functional tests
 * compare against Python's zlib.crc32) and a bump allocator for rings and
 * buffers.
 */
#include "guest.h"

#define COM1 0x3f8
#define DEBUG_EXIT_PORT 0xf4

void *memset(void *d, int c, size_t n)
{
    uint8_t *p = d;
    while (n--) {
        *p++ = (uint8_t)c;
    }
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    __asm__ __volatile__("rep movsb" : "+D"(d), "+S"(s), "+c"(n) :: "memory");
    return d;
}

void *memmove(void *d, const void *s, size_t n)
{
    uint8_t *dp = d;
    const uint8_t *sp = s;
    if (dp < sp) {
        while (n--) {
            *dp++ = *sp++;
        }
    } else {
        while (n--) {
            dp[n] = sp[n];
        }
    }
    return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) {
            return x[i] - y[i];
        }
    }
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++, b++;
    }
    return (uint8_t)*a - (uint8_t)*b;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i] || !a[i]) {
            return (uint8_t)a[i] - (uint8_t)b[i];
        }
    }
    return 0;
}

char *strchr(const char *s, int c)
{
    for (; *s; s++) {
        if (*s == c) {
            return (char *)s;
        }
    }
    return c ? NULL : (char *)s;
}

/* ---- formatting ---- */

struct outbuf {
    char *buf;
    size_t size, len;
};

static void put(struct outbuf *o, char c)
{
    if (o->len + 1 < o->size) {
        o->buf[o->len] = c;
    }
    o->len++;
}

static void put_num(struct outbuf *o, uint64_t v, unsigned base, int width, bool zero, bool neg)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg) {
        tmp[n++] = '-';
    }
    while (n < width) {
        put(o, zero ? '0' : ' ');
        width--;
    }
    while (n) {
        put(o, tmp[--n]);
    }
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct outbuf o = { buf, size, 0 };
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            put(&o, *fmt);
            continue;
        }
        fmt++;
        bool zero = false;
        int width = 0, lng = 0;
        if (*fmt == '0') {
            zero = true;
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }
        while (*fmt == 'l' || *fmt == 'z') {
            lng++;
            fmt++;
        }
        switch (*fmt) {
        case 'd': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            put_num(&o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, width, zero, v < 0);
            break;
        }
        case 'u':
            put_num(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width, zero, false);
            break;
        case 'x':
            put_num(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width, zero, false);
            break;
        case 'p':
            put(&o, '0');
            put(&o, 'x');
            put_num(&o, (uint64_t)va_arg(ap, void *), 16, width, zero, false);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s) {
                s = "(null)";
            }
            while (*s) {
                put(&o, *s++);
            }
            break;
        }
        case 'c':
            put(&o, (char)va_arg(ap, int));
            break;
        case '%':
            put(&o, '%');
            break;
        default:
            put(&o, '?');
            break;
        }
    }
    if (size) {
        buf[o.len < size ? o.len : size - 1] = 0;
    }
    return (int)o.len;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* ---- serial ---- */

void serial_init(void)
{
    outb(COM1 + 1, 0x00);   /* no UART interrupts: we poll LSR */
    outb(COM1 + 3, 0x80);   /* DLAB */
    outb(COM1 + 0, 0x01);   /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);   /* 8N1 */
    outb(COM1 + 2, 0xc7);   /* FIFO on */
    outb(COM1 + 4, 0x03);
}

static void serial_putc(char c)
{
    /* Bounded: a VMM without a UART model returns 0xff (THRE set) or 0. */
    for (int i = 0; i < 100000; i++) {
        if (inb(COM1 + 5) & 0x20) {
            break;
        }
        cpu_relax();
    }
    outb(COM1, (uint8_t)c);
}

static void serial_puts(const char *s)
{
    for (; *s; s++) {
        if (*s == '\n') {
            serial_putc('\r');
        }
        serial_putc(*s);
    }
}

void printf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    serial_puts(buf);
}

void report(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    serial_puts("QNIC-GUEST: ");
    serial_puts(buf);
    serial_puts("\n");
}

void guest_exit(bool pass)
{
    report("result=%s", pass ? "pass" : "fail");
    /* isa-debug-exit: the VMM exits with status (value << 1) | 1. */
    outb(DEBUG_EXIT_PORT, pass ? 0 : 1);
    for (;;) {
        /* Only reached without isa-debug-exit; hlt needs CPL 0. */
        kcall(k_wait_irq, 0);
    }
}

void fail(const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    report("error=\"%s\"", buf);
    guest_exit(false);
}

/* ---- CRC32 (IEEE 802.3, reflected, as zlib) ---- */

static uint32_t crc_table[256];

uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    if (!crc_table[1]) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) {
                c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
            }
            crc_table[i] = c;
        }
    }
    const uint8_t *p = data;
    crc = ~crc;
    while (len--) {
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return ~crc;
}

/* ---- heap ---- */

static uint64_t heap_cur, heap_end;

void heap_init(uint64_t start, uint64_t end)
{
    heap_cur = ALIGN_UP(start, 4096);
    heap_end = end;
}

void *alloc(size_t size, size_t align)
{
    uint64_t p = ALIGN_UP(heap_cur, align ? align : 16);
    if (p + size > heap_end) {
        fail("out of memory allocating %zu bytes", size);
    }
    heap_cur = p + size;
    memset((void *)p, 0, size);
    return (void *)p;
}

void *alloc_page_aligned(size_t size)
{
    return alloc(ALIGN_UP(size, 4096), 4096);
}

/* ---- parsing ---- */

uint64_t parse_uint(const char *s, bool *ok)
{
    uint64_t v = 0;
    unsigned base = 10;
    bool any = false;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    for (; *s && *s != ' '; s++) {
        unsigned d;
        if (*s >= '0' && *s <= '9') {
            d = *s - '0';
        } else if (base == 16 && *s >= 'a' && *s <= 'f') {
            d = *s - 'a' + 10;
        } else if (base == 16 && *s >= 'A' && *s <= 'F') {
            d = *s - 'A' + 10;
        } else if (*s == 'k' || *s == 'K') {
            v *= 1024;
            continue;
        } else if (*s == 'M') {
            v *= 1024 * 1024;
            continue;
        } else {
            break;
        }
        v = v * base + d;
        any = true;
    }
    if (ok) {
        *ok = any;
    }
    return v;
}

bool parse_ip(const char *s, uint32_t *ip)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned part = 0, digits = 0;
        while (*s >= '0' && *s <= '9' && digits < 4) {
            part = part * 10 + (*s++ - '0');
            digits++;
        }
        if (!digits || part > 255) {
            return false;
        }
        v = (v << 8) | part;
        if (i < 3) {
            if (*s != '.') {
                return false;
            }
            s++;
        }
    }
    *ip = v;
    return true;
}

void fmt_ip(char *buf, uint32_t ip)
{
    snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff, ip & 0xff);
}
