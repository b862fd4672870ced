/* buf: a growable byte buffer, reused across jobs to keep the hot path free
 * of allocations. */
#ifndef AQ_BUF_H
#define AQ_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    uint8_t *data;
    size_t len, cap;
} buf;

#define BUF_INIT {NULL, 0, 0}

/* Makes room for n more bytes; returns 0, or -1 when out of memory. */
int buf_reserve(buf *b, size_t n);
/* Appends n bytes; returns 0, or -1 when out of memory. */
int buf_append(buf *b, const void *p, size_t n);
/* Appends printf output (no NUL counted in len, though one follows it);
 * returns 0, or -1 when out of memory or the format fails. */
int buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Empties b, keeping its memory. */
void buf_reset(buf *b);
/* Frees b's memory and empties it. */
void buf_free(buf *b);

#endif
