/* quantize: median-cut colour reduction of an RGBA picture to a palette,
 * with integer maths only (the same palette on every machine). Used once
 * per cached emoji raster, so that an emoji avatar can be a palette PNG. */
#ifndef AQ_QUANTIZE_H
#define AQ_QUANTIZE_H

#include <stddef.h>
#include <stdint.h>

/* Reduces the n pixels of rgba (4 bytes each, any alpha convention) to at
 * most max colours (2..256): pal[0] is always fully transparent (0,0,0,0)
 * and takes every pixel of alpha 0; idx[i] receives pixel i's entry.
 * Entries are count-weighted means of the colours they stand for, so a
 * picture of few colours keeps them exactly. Returns the number of entries,
 * or -1 when out of memory. */
int quantize_rgba(const uint8_t *rgba, size_t n, int max, uint8_t pal[][4], uint8_t *idx);

#endif
