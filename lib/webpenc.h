/* webpenc: render_image -> lossless WebP bytes in memory (libwebp), and
 * back to RGBA for tests and `avatarq get`. Lossless, so the pixels a
 * WebP decodes to are exactly the PNG's; the same image always gives the
 * same bytes (no metadata chunks). */
#ifndef AQ_WEBPENC_H
#define AQ_WEBPENC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "render.h"

/* Appends the lossless WebP encoding of img to out. Returns 0 or AQ_EPERM. */
int webpenc_encode(const render_image *img, buf *out, aq_err *e);

/* Decodes WebP bytes into 8-bit RGBA (*rgba malloc'd, width*height*4).
 * Returns 0 or AQ_EPERM with the reason. */
int webpenc_decode(const uint8_t *data, size_t len, uint8_t **rgba, int *width, int *height,
                   aq_err *e);

#endif
