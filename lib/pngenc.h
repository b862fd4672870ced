/* pngenc: render_image -> PNG bytes in memory through libpng, and back (for
 * tests and `avatarq get`). Named pngenc, not png, so as not to shadow
 * libpng's <png.h>. Indexed images become palette PNGs at the smallest bit
 * depth that holds their colours (1, 2, 4 or 8 bits); truecolour images RGB8
 * or RGBA8. Avatars' image data is compressed by libdeflate.
 * The same image always gives the same bytes (no time chunks). */
#ifndef AQ_PNGENC_H
#define AQ_PNGENC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "render.h"

/* Appends the PNG encoding of img to out. Returns 0 or AQ_EPERM. */
int pngenc_encode(const render_image *img, buf *out, aq_err *e);

/* Appends the PNG encoding of a width x height RGB8 image (rows packed,
 * 3 bytes per pixel) to out: for pictures that are not avatars, such as
 * the contact sheet. Returns 0 or AQ_EPERM. */
int pngenc_encode_rgb(const uint8_t *rgb, int width, int height, buf *out, aq_err *e);

/* Frees the memory the process keeps between encodes (libpng and zlib
 * state, libdeflate compressors and image data buffers: about 1 MB per
 * encode that ran at the same time, shared by all threads). Optional: for
 * leak checkers and long idle periods; the next encode just allocates
 * again. Safe while other threads encode. */
void pngenc_release(void);

/* Empties the process's cache of compressed image data (see pngenc.c:
 * images whose render_image.plane_key matches one encoded before reuse its
 * compressed data; at most 4 MB). For tests and memory pressure; encodes
 * give the same bytes either way. */
void pngenc_forget(void);

/* Decodes PNG bytes into 8-bit RGBA (*rgba malloc'd, width*height*4).
 * Returns 0 or AQ_EPERM with the reason. */
int pngenc_decode(const uint8_t *data, size_t len, uint8_t **rgba,
                  int *width, int *height, aq_err *e);

#endif
