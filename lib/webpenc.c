/* webpenc: lossless WebP through libwebp's advanced API.
 *
 * Effort: lossless level 1 (of 0..9) measured as the knee on avatars
 * (bench/bench_render.c): higher levels spend several times the time for
 * a few percent, and at level 1 the files are already at or below the
 * palette PNG's size, since WebP lossless finds the palette by itself. */
#include "webpenc.h"

#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/encode.h>

#define WEBP_LEVEL 1

int webpenc_encode(const render_image *img, buf *out, aq_err *e)
{
    int size = img->size;
    if (size < 1 || size > RENDER_MAX_SIZE || !img->pixels)
        return err_set(e, AQ_EPERM, "webp: cannot encode a %dx%d image", size, size);
    WebPConfig cfg;
    WebPPicture pic;
    if (!WebPConfigInit(&cfg) || !WebPConfigLosslessPreset(&cfg, WEBP_LEVEL) || !WebPPictureInit(&pic))
        return err_set(e, AQ_EPERM, "webp: libwebp version mismatch");
    cfg.exact = 0; /* colours under alpha 0 may go: they are invisible */
    pic.use_argb = 1;
    pic.width = pic.height = size;
    uint8_t *rgba = NULL;
    int ok;
    if (img->ncolors == 0 && !img->has_alpha) {
        ok = WebPPictureImportRGB(&pic, img->pixels, size * 3);
    } else if (img->ncolors == 0) {
        ok = WebPPictureImportRGBA(&pic, img->pixels, size * 4);
    } else {
        rgba = malloc((size_t)size * (size_t)size * 4);
        if (!rgba)
            return err_set(e, AQ_EPERM, "webp: out of memory");
        render_image_rgba(img, rgba);
        ok = img->has_alpha ? WebPPictureImportRGBA(&pic, rgba, size * 4)
                            : WebPPictureImportRGBX(&pic, rgba, size * 4);
    }
    free(rgba);
    if (!ok) {
        WebPPictureFree(&pic);
        return err_set(e, AQ_EPERM, "webp: out of memory importing %d px", size);
    }
    WebPMemoryWriter w;
    WebPMemoryWriterInit(&w);
    pic.writer = WebPMemoryWrite;
    pic.custom_ptr = &w;
    ok = WebPEncode(&cfg, &pic);
    int code = pic.error_code;
    WebPPictureFree(&pic);
    int rc = 0;
    if (!ok)
        rc = err_set(e, AQ_EPERM, "webp: encoding failed (libwebp error %d)", code);
    else if (buf_append(out, w.mem, w.size) < 0)
        rc = err_set(e, AQ_EPERM, "webp: out of memory");
    WebPMemoryWriterClear(&w);
    return rc;
}

int webpenc_decode(const uint8_t *data, size_t len, uint8_t **rgba, int *width, int *height,
                   aq_err *e)
{
    *rgba = NULL;
    int w = 0, h = 0;
    if (!WebPGetInfo(data, len, &w, &h))
        return err_set(e, AQ_EPERM, "webp: not a readable WebP");
    if (w < 1 || h < 1 || w > 16384 || h > 16384)
        return err_set(e, AQ_EPERM, "webp: %dx%d is out of range", w, h);
    uint8_t *px = WebPDecodeRGBA(data, len, &w, &h);
    if (!px)
        return err_set(e, AQ_EPERM, "webp: corrupt image data");
    /* hand back memory the caller frees with free() */
    size_t n = (size_t)w * (size_t)h * 4;
    *rgba = malloc(n);
    if (*rgba)
        memcpy(*rgba, px, n);
    WebPFree(px);
    if (!*rgba)
        return err_set(e, AQ_EPERM, "webp: out of memory");
    *width = w, *height = h;
    return 0;
}
