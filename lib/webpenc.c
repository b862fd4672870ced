/* webpenc: lossless WebP through libwebp's advanced API.
 *
 * Effort: lossless level 1 (of 0..9) measured as the knee on avatars
 * (bench/bench_render.c): higher levels spend several times the time for
 * a few percent, and at level 1 the files are already below the palette
 * PNG's size on average, since WebP lossless finds the palette by itself.
 * For the few pictures (0-12 % by style and size) where level 1 is larger
 * than the PNG, levels 3, 6 and 9 are tried in turn until one is not (level
 * 9 is slow, ~0.1-0.4 s at 256 px, but needed for about 1 gradient in 40);
 * the smallest is kept. */
#include "webpenc.h"

#include <stdlib.h>
#include <string.h>
#include <webp/decode.h>
#include <webp/encode.h>

#include "pngenc.h"

/* Effort levels tried in turn while the WebP is larger than the PNG. */
static const int retry_levels[] = {1, 3, 6, 9};

/* One lossless encode of pic at effort level into w. Returns 0 or libwebp's
 * error code. */
static int encode_level(WebPPicture *pic, int level, WebPMemoryWriter *w)
{
    WebPConfig cfg;
    if (!WebPConfigInit(&cfg) || !WebPConfigLosslessPreset(&cfg, level))
        return -1;
    cfg.exact = 0; /* colours under alpha 0 may go: they are invisible */
    WebPMemoryWriterInit(w);
    pic->writer = WebPMemoryWrite;
    pic->custom_ptr = w;
    if (WebPEncode(&cfg, pic))
        return 0;
    WebPMemoryWriterClear(w);
    return pic->error_code ? (int)pic->error_code : -1;
}

/* Imports img into pic (ARGB); returns libwebp's success flag. */
static int import(const render_image *img, WebPPicture *pic)
{
    int size = img->size;
    pic->use_argb = 1;
    pic->width = pic->height = size;
    if (img->ncolors == 0)
        return img->has_alpha ? WebPPictureImportRGBA(pic, img->pixels, size * 4)
                              : WebPPictureImportRGB(pic, img->pixels, size * 3);
    uint8_t *rgba = malloc((size_t)size * (size_t)size * 4);
    if (!rgba)
        return 0;
    render_image_rgba(img, rgba);
    int ok = img->has_alpha ? WebPPictureImportRGBA(pic, rgba, size * 4)
                            : WebPPictureImportRGBX(pic, rgba, size * 4);
    free(rgba);
    return ok;
}

/* The PNG's size, the bound a WebP must meet. */
static size_t png_size(const render_image *img)
{
    buf png = BUF_INIT;
    aq_err e;
    size_t n = pngenc_encode(img, &png, &e) == 0 ? png.len : (size_t)-1;
    buf_free(&png);
    return n;
}

int webpenc_encode(const render_image *img, buf *out, aq_err *e)
{
    int size = img->size;
    if (size < 1 || size > RENDER_MAX_SIZE || !img->pixels)
        return err_set(e, AQ_EPERM, "webp: cannot encode a %dx%d image", size, size);
    WebPPicture pic;
    if (!WebPPictureInit(&pic))
        return err_set(e, AQ_EPERM, "webp: libwebp version mismatch");
    if (!import(img, &pic)) {
        WebPPictureFree(&pic);
        return err_set(e, AQ_EPERM, "webp: out of memory importing %d px", size);
    }
    WebPMemoryWriter w, again;
    int code = encode_level(&pic, retry_levels[0], &w);
    /* The few pictures where the quick effort loses to the PNG get more
     * effort, step by step (rare, so the cost hardly shows); the smallest
     * wins. */
    size_t bound = code == 0 && w.size > 0 ? png_size(img) : (size_t)-1;
    for (size_t k = 1; code == 0 && w.size > bound && k < sizeof retry_levels / sizeof *retry_levels; k++) {
        if (encode_level(&pic, retry_levels[k], &again) != 0)
            break;
        if (again.size < w.size) {
            WebPMemoryWriterClear(&w);
            w = again;
        } else {
            WebPMemoryWriterClear(&again);
        }
    }
    WebPPictureFree(&pic);
    if (code != 0)
        return err_set(e, AQ_EPERM, "webp: encoding failed (libwebp error %d)", code);
    int rc = buf_append(out, w.mem, w.size) < 0 ? err_set(e, AQ_EPERM, "webp: out of memory") : 0;
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
