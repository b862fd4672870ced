/* utf8: code points from and to UTF-8, for the styles that take text
 * (emoji names, initials). */
#ifndef AQ_UTF8_H
#define AQ_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decodes len bytes of s into at most max code points in cp. Returns their
 * number, or -1 for bytes that are not UTF-8 (a bad lead or continuation
 * byte, a sequence cut short) or more than max code points. Overlong forms
 * are not refused: callers match code points against known tables. */
int utf8_decode(const char *s, size_t len, uint32_t *cp, int max);

/* Writes v as UTF-8 into o (room for 4 bytes); returns the bytes written. */
size_t utf8_encode(uint32_t v, char *o);

#endif
