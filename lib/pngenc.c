/* pngenc: render_image <-> PNG bytes in memory with libpng.
 *
 * Encoding choices come from measurements (bench/bench_render.c):
 * the pixel data of an avatar is tiny once packed to its real bit depth, so
 * compression time dominates and depends on the settings per kind of image.
 * Avatars are compressed by libdeflate (one call over the whole image data,
 * SIMD Adler-32), not by libpng's zlib stream: measured at 256 px it takes
 * 30-50 % less time than zlib for smaller output. libpng still writes every
 * chunk (signature, IHDR, PLTE, tRNS, the IDAT libdeflate filled, IEND). */
#include "pngenc.h"

#include <libdeflate.h>
#include <png.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* How one kind of image is written. */
typedef struct png_recipe {
    int max_colors;        /* palette images up to this many colours */
    int bit_depth;         /* palette index bits */
    int level;             /* compression level (libdeflate's for avatars) */
    int strategy;          /* zlib strategy (pngenc_encode_rgb) */
    int filters;           /* PNG row filters libpng may pick from (pngenc_encode_rgb;
                              avatars are written unfiltered) */
} png_recipe;

/* Palette images: the first recipe whose max_colors holds the image.
 * Measured over many seeds at 256 px (bench/bench_render.c and a sweep of
 * libdeflate levels 1-8 and row filters), without a row filter: 1-bit
 * grids take ~16 us at any level up to 6, which codes them in ~155 bytes
 * (zlib level 3: ~25 us, ~220 bytes); 4-bit rings and waves ~60 us and
 * 1.5-1.8 KB at level 3, where levels 5-6 took 10-40 % more time for 5-10 %
 * fewer bytes; 8-bit gradients ~110 us, 3.2 KB and emoji ~160 us, 6.3 KB at
 * level 3 (zlib level 3: 150 us, 3.5 KB and 270 us, 7.0 KB), where level 6
 * took 1.6x the time on emoji. SUB/UP filters did not pay on these images
 * (their rows repeat or are flat runs already, and a filter only adds
 * bytes to chew). */
static const png_recipe palette_recipes[] = {
    {2, 1, 6, Z_DEFAULT_STRATEGY, PNG_FILTER_NONE},
    {4, 2, 3, Z_DEFAULT_STRATEGY, PNG_FILTER_NONE},
    {16, 4, 3, Z_DEFAULT_STRATEGY, PNG_FILTER_NONE},
    {256, 8, 3, Z_DEFAULT_STRATEGY, PNG_FILTER_NONE},
};

static const png_recipe truecolour_recipe = {0, 8, 6, Z_DEFAULT_STRATEGY, PNG_FILTER_SUB};

/* Truecolour avatars (emoji on a gradient, RGBA after rounding): flat
 * artwork and backgrounds whose rows repeat shifted (linear, see
 * render_emoji.c) leave long matches that a row filter would only break;
 * libdeflate level 1 is the fast end, as zlib level 1 was. */
static const png_recipe avatar_truecolour_recipe = {0, 8, 1, Z_DEFAULT_STRATEGY, PNG_FILTER_NONE};

static const png_recipe *recipe_for(const render_image *img)
{
    if (img->ncolors == 0)
        return &avatar_truecolour_recipe;
    for (size_t i = 0; i < sizeof palette_recipes / sizeof palette_recipes[0]; i++)
        if (img->ncolors <= palette_recipes[i].max_colors)
            return &palette_recipes[i];
    return NULL;
}

/* ---- memory ----
 * Every encode makes a libpng write struct (and, for the contact sheet, a
 * zlib deflate state of about 300 KB). With plain malloc, glibc gives that
 * back to the kernel on free and faults it in again on the next encode,
 * which cost more than the compression itself for small avatars. So an
 * encode works with a kit: libpng's allocations (zlib's included: libpng
 * routes them through the callbacks below) come from the kit's blocks, kept
 * for the next encode, beside the kit's libdeflate compressors (one per
 * level, each some hundred KB of match tables, made on first use) and its
 * image data buffer. Kits wait in a process-wide pool between encodes, not
 * in each thread: a worker has many job threads but only as many encode at
 * once as it has cores (its render gate), and per-thread memory kept a
 * megabyte in every one of them. */
#define MAX_LEVEL 12
#define KIT_BLOCKS 16

typedef struct block {
    size_t size;
    max_align_t align[]; /* the caller's memory starts here */
} block;

typedef struct kit {
    block *blocks[KIT_BLOCKS];
    struct libdeflate_compressor *compressors[MAX_LEVEL + 1];
    buf scratch;
    struct kit *next;
} kit;

static pthread_mutex_t kit_lock = PTHREAD_MUTEX_INITIALIZER;
static kit *idle_kits;

/* Scratch a kit keeps between encodes: enough for 1024 px avatars; a
 * bigger one's memory goes back once it is written. */
#define SCRATCH_KEEP (4u << 20)

/* libpng's malloc: the smallest of the kit's blocks that fits size without
 * wasting more than half of it, else a new one. */
static png_voidp kit_malloc(png_structp png, png_alloc_size_t size)
{
    kit *k = png_get_mem_ptr(png);
    int best = -1;
    for (int i = 0; i < KIT_BLOCKS; i++)
        if (k->blocks[i] && k->blocks[i]->size >= size && k->blocks[i]->size <= 2 * size + 256 &&
            (best < 0 || k->blocks[i]->size < k->blocks[best]->size))
            best = i;
    block *b = best >= 0 ? k->blocks[best] : malloc(sizeof(block) + size);
    if (best >= 0)
        k->blocks[best] = NULL;
    else if (b)
        b->size = size;
    return b ? b->align : NULL;
}

/* libpng's free: the block goes back to the kit (or to the system when the
 * kit holds KIT_BLOCKS already). */
static void kit_release_block(png_structp png, png_voidp ptr)
{
    if (!ptr)
        return;
    kit *k = png_get_mem_ptr(png);
    block *b = (block *)((char *)ptr - offsetof(block, align));
    for (int i = 0; i < KIT_BLOCKS; i++)
        if (!k->blocks[i]) {
            k->blocks[i] = b;
            return;
        }
    free(b);
}

/* An idle kit, or a new one; NULL when out of memory. */
static kit *kit_take(void)
{
    pthread_mutex_lock(&kit_lock);
    kit *k = idle_kits;
    if (k)
        idle_kits = k->next;
    pthread_mutex_unlock(&kit_lock);
    return k ? k : calloc(1, sizeof(kit));
}

static void kit_give(kit *k)
{
    if (k->scratch.cap > SCRATCH_KEEP)
        buf_free(&k->scratch);
    pthread_mutex_lock(&kit_lock);
    k->next = idle_kits;
    idle_kits = k;
    pthread_mutex_unlock(&kit_lock);
}

static void kit_free(kit *k)
{
    for (int i = 0; i < KIT_BLOCKS; i++)
        free(k->blocks[i]);
    for (int i = 0; i <= MAX_LEVEL; i++)
        libdeflate_free_compressor(k->compressors[i]);
    buf_free(&k->scratch);
    free(k);
}

void pngenc_release(void)
{
    pthread_mutex_lock(&kit_lock);
    kit *k = idle_kits;
    idle_kits = NULL;
    pthread_mutex_unlock(&kit_lock);
    while (k) {
        kit *next = k->next;
        kit_free(k);
        k = next;
    }
}

typedef struct write_state {
    buf *out;
    int failed;
} write_state;

static void write_cb(png_structp png, png_bytep data, png_size_t len)
{
    write_state *ws = png_get_io_ptr(png);
    if (buf_append(ws->out, data, len) < 0) {
        ws->failed = 1;
        png_error(png, "out of memory");
    }
}

static void flush_cb(png_structp png) { (void)png; }

/* libpng's error callback: keep the message and unwind to the setjmp. */
static void error_cb(png_structp png, png_const_charp msg)
{
    aq_err *e = png_get_error_ptr(png);
    err_set(e, AQ_EPERM, "libpng: %s", msg);
    png_longjmp(png, 1);
}

static void warning_cb(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* Packs one row of 1-byte indices into BITS bits per pixel, leftmost pixel
 * in the most significant bits as PNG wants. BITS is a constant in each
 * caller below, so the divisions become shifts. */
static inline void pack_bits(const uint8_t *in, int width, int bits, uint8_t *out)
{
    const int per = 8 / bits;
    int full = width / per, x = 0;
    for (int i = 0; i < full; i++) {
        unsigned v = 0;
        for (int k = 0; k < per; k++)
            v = (v << bits) | in[x++];
        out[i] = (uint8_t)v;
    }
    if (x < width) {
        unsigned v = 0;
        int k = 0;
        for (; x < width; k++)
            v = (v << bits) | in[x++];
        out[full] = (uint8_t)(v << (bits * (per - k)));
    }
}

static void pack1(const uint8_t *in, int w, uint8_t *out) { pack_bits(in, w, 1, out); }
static void pack2(const uint8_t *in, int w, uint8_t *out) { pack_bits(in, w, 2, out); }
static void pack4(const uint8_t *in, int w, uint8_t *out) { pack_bits(in, w, 4, out); }

static void (*const packers[9])(const uint8_t *, int, uint8_t *) = {
    [1] = pack1, [2] = pack2, [4] = pack4,
};

/* The write itself, separate from pngenc_encode so that no local variable
 * of the caller lives across the setjmp. */
typedef struct png_job {
    int width, height;
    int ncolors;              /* 0: RGB8 or RGBA8 */
    const aq_rgb *palette;
    const uint8_t *pixels;
    const uint8_t *alpha;     /* palette: opacity per entry; NULL = opaque */
    bool rgba;                /* truecolour with alpha */
    const char *plane_key;    /* render_image.plane_key of an indexed image, or "" */
} png_job;

/* Number of leading palette entries tRNS must list (up to the last one
 * that is not opaque); 0 when all are opaque. */
static int trns_count(const png_job *img)
{
    int n = 0;
    for (int i = 0; img->alpha && i < img->ncolors; i++)
        if (img->alpha[i] != 255)
            n = i + 1;
    return n;
}

/* IHDR, PLTE and tRNS of img, written. */
static void write_header(png_structp png, png_infop info, const png_job *img, const png_recipe *rc)
{
    int width = img->width, height = img->height;
    if (img->ncolors) {
        png_color pal[256];
        for (int i = 0; i < img->ncolors; i++)
            pal[i] = (png_color){img->palette[i].r, img->palette[i].g, img->palette[i].b};
        png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, rc->bit_depth,
                     PNG_COLOR_TYPE_PALETTE, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE,
                     PNG_FILTER_TYPE_BASE);
        png_set_PLTE(png, info, pal, img->ncolors);
        int ntrns = trns_count(img);
        if (ntrns)
            png_set_tRNS(png, info, img->alpha, ntrns, NULL);
    } else {
        png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
                     img->rgba ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_BASE, PNG_FILTER_TYPE_BASE);
    }
    png_write_info(png, info);
}

static size_t row_bytes(const png_job *img, const png_recipe *rc)
{
    if (img->ncolors)
        return ((size_t)img->width * (size_t)rc->bit_depth + 7) / 8;
    return (size_t)img->width * (img->rgba ? 4 : 3);
}

/* libpng compresses the rows itself (pngenc_encode_rgb). */
static void write_rows_zlib(png_structp png, png_infop info, const png_job *img, const png_recipe *rc)
{
    png_set_compression_level(png, rc->level);
    png_set_compression_strategy(png, rc->strategy);
    png_set_filter(png, PNG_FILTER_TYPE_BASE, rc->filters);
    write_header(png, info, img, rc);
    size_t stride = row_bytes(img, rc);
    for (int y = 0; y < img->height; y++)
        png_write_row(png, img->pixels + (size_t)y * stride);
    png_write_end(png, info);
}

/* ---- compressed image data kept by plane key ----
 * Many avatars share their pixel indexes and differ in the palette only
 * (an emoji on one colour: the same indexes for every seed that picks that
 * emoji, whatever the colours; render.h, plane_key). Their image data is
 * then the same bytes, so the process keeps the compressed data of the
 * last IDAT_SLOTS keys (at most IDAT_BYTES, entries up to IDAT_ENTRY_MAX)
 * and copies it instead of compressing again. The key names the recipe
 * too (bit depth, level). Shared by the threads; copies are made under
 * the lock, so an entry can go at any time. */
#define IDAT_SLOTS 512
#define IDAT_BYTES (4u << 20)
#define IDAT_ENTRY_MAX (128u << 10)
#define IDAT_KEY (RENDER_PLANE_KEY + 16)

typedef struct idat_entry {
    uint64_t hash;            /* of key, compared first */
    char key[IDAT_KEY];
    uint8_t *data;            /* NULL: slot empty */
    size_t len;
    uint64_t used;            /* clock of the last use */
} idat_entry;

static idat_entry idat_cache[IDAT_SLOTS];
static size_t idat_total;
static uint64_t idat_clock;
static pthread_mutex_t idat_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t key_hash(const char *k)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 0x100000001b3ull;
    return h;
}

/* The cached data of key copied to out (cap bytes); its length, or 0 when
 * there is none. */
static size_t idat_find(const char *key, uint64_t hash, uint8_t *out, size_t cap)
{
    size_t len = 0;
    pthread_mutex_lock(&idat_mu);
    for (int i = 0; i < IDAT_SLOTS; i++) {
        idat_entry *c = &idat_cache[i];
        if (c->data && c->hash == hash && strcmp(c->key, key) == 0 && c->len <= cap) {
            memcpy(out, c->data, c->len);
            len = c->len;
            c->used = ++idat_clock;
            break;
        }
    }
    pthread_mutex_unlock(&idat_mu);
    return len;
}

/* The least recently used entry that holds data, or NULL. Under idat_mu. */
static idat_entry *idat_oldest(void)
{
    idat_entry *old = NULL;
    for (int i = 0; i < IDAT_SLOTS; i++)
        if (idat_cache[i].data && (!old || idat_cache[i].used < old->used))
            old = &idat_cache[i];
    return old;
}

static void idat_drop(idat_entry *c)
{
    idat_total -= c->len;
    free(c->data);
    c->data = NULL;
}

/* Keeps a copy of data under key, evicting the least recently used
 * entries as needed; nothing when memory is short (the cache is only a
 * saving). */
static void idat_keep(const char *key, uint64_t hash, const uint8_t *data, size_t len)
{
    uint8_t *copy = len <= IDAT_ENTRY_MAX ? malloc(len) : NULL;
    if (!copy)
        return;
    memcpy(copy, data, len);
    pthread_mutex_lock(&idat_mu);
    for (int i = 0; i < IDAT_SLOTS; i++)
        if (idat_cache[i].data && idat_cache[i].hash == hash && strcmp(idat_cache[i].key, key) == 0) {
            pthread_mutex_unlock(&idat_mu); /* another thread kept it meanwhile */
            free(copy);
            return;
        }
    idat_entry *old;
    while (idat_total + len > IDAT_BYTES && (old = idat_oldest()) != NULL)
        idat_drop(old);
    idat_entry *slot = NULL;
    for (int i = 0; i < IDAT_SLOTS && !slot; i++)
        if (!idat_cache[i].data)
            slot = &idat_cache[i];
    if (!slot) {
        slot = idat_oldest();
        idat_drop(slot);
    }
    *slot = (idat_entry){hash, "", copy, len, ++idat_clock};
    snprintf(slot->key, sizeof slot->key, "%s", key);
    idat_total += len;
    pthread_mutex_unlock(&idat_mu);
}

void pngenc_forget(void)
{
    pthread_mutex_lock(&idat_mu);
    for (int i = 0; i < IDAT_SLOTS; i++)
        if (idat_cache[i].data)
            idat_drop(&idat_cache[i]);
    pthread_mutex_unlock(&idat_mu);
}

/* The image data of an avatar, unfiltered (filter byte 0 before each row,
 * indexes packed to the bit depth), compressed by libdeflate into *idat.
 * Memory is k's. Returns the compressed length, 0 when out of memory. */
static size_t deflate_rows(const png_job *img, const png_recipe *rc, kit *k, const uint8_t **idat)
{
    struct libdeflate_compressor **compressors = k->compressors;
    buf *sc = &k->scratch;
    size_t rb = row_bytes(img, rc), raw = (rb + 1) * (size_t)img->height;
    size_t stride = img->ncolors ? (size_t)img->width : rb;
    if (!compressors[rc->level] && !(compressors[rc->level] = libdeflate_alloc_compressor(rc->level)))
        return 0;
    size_t bound = libdeflate_zlib_compress_bound(compressors[rc->level], raw);
    buf_reset(sc);
    if (buf_reserve(sc, raw + bound) < 0)
        return 0;
    *idat = sc->data + raw;
    char key[IDAT_KEY];
    uint64_t hash = 0;
    if (img->ncolors && img->plane_key[0]) {
        snprintf(key, sizeof key, "%d/%d %s", rc->bit_depth, rc->level, img->plane_key);
        hash = key_hash(key);
        size_t got = idat_find(key, hash, sc->data + raw, bound);
        if (got)
            return got;
    }
    uint8_t *o = sc->data;
    const uint8_t *prev = NULL;
    for (int y = 0; y < img->height; y++, o += rb + 1) {
        const uint8_t *row = img->pixels + (size_t)y * stride;
        o[0] = PNG_FILTER_VALUE_NONE;
        if (img->ncolors && rc->bit_depth < 8 && prev && memcmp(prev, row, (size_t)img->width) == 0)
            memcpy(o + 1, o - rb, rb); /* avatars repeat rows a lot: pack a row only when it changed */
        else if (img->ncolors && rc->bit_depth < 8)
            packers[rc->bit_depth](row, img->width, o + 1);
        else
            memcpy(o + 1, row, rb);
        prev = row;
    }
    size_t len = libdeflate_zlib_compress(compressors[rc->level], sc->data, raw, sc->data + raw, bound);
    if (len && hash)
        idat_keep(key, hash, sc->data + raw, len);
    return len;
}

/* The write itself, separate from encode() so that no local variable of
 * the caller lives across the setjmp. idat: the avatar path's compressed
 * data (see the top of this file); NULL: libpng's zlib compresses. libpng
 * allocates from k. */
static int write_png(const png_job *job, const png_recipe *rc, const uint8_t *idat, size_t idat_len,
                     kit *k, buf *out, aq_err *e)
{
    size_t start = out->len;
    write_state ws = {out, 0};
    png_structp png = png_create_write_struct_2(PNG_LIBPNG_VER_STRING, e, error_cb, warning_cb,
                                                k, kit_malloc, kit_release_block);
    if (!png)
        return err_set(e, AQ_EPERM, "png: out of memory");
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return err_set(e, AQ_EPERM, "png: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        out->len = start;
        return AQ_EPERM;
    }
    png_set_write_fn(png, &ws, write_cb, flush_cb);
    if (idat) {
        write_header(png, info, job, rc);
        png_write_chunk(png, (png_const_bytep) "IDAT", idat, idat_len);
        png_write_chunk(png, (png_const_bytep) "IEND", NULL, 0);
    } else {
        write_rows_zlib(png, info, job, rc);
    }
    png_destroy_write_struct(&png, &info);
    return 0;
}

/* With a kit from the pool. own: the avatar path (libdeflate), else
 * libpng's zlib. */
static int encode(const png_job *job, const png_recipe *rc, bool own, buf *out, aq_err *e)
{
    kit *k = kit_take();
    if (!k)
        return err_set(e, AQ_EPERM, "png: out of memory");
    const uint8_t *idat = NULL;
    size_t idat_len = own ? deflate_rows(job, rc, k, &idat) : 0;
    int st = own && !idat_len ? err_set(e, AQ_EPERM, "png: out of memory")
                              : write_png(job, rc, idat, idat_len, k, out, e);
    kit_give(k);
    return st;
}

int pngenc_encode(const render_image *img, buf *out, aq_err *e)
{
    const png_recipe *rc = recipe_for(img);
    if (!rc || img->size < 1 || img->size > RENDER_MAX_SIZE || !img->pixels)
        return err_set(e, AQ_EPERM, "png: cannot encode a %dx%d image of %d colours",
                       img->size, img->size, img->ncolors);
    png_job job = {img->size, img->size, img->ncolors, img->palette, img->pixels,
                   img->has_alpha ? img->alpha : NULL, img->has_alpha && !img->ncolors, img->plane_key};
    return encode(&job, rc, true, out, e);
}

int pngenc_encode_rgb(const uint8_t *rgb, int width, int height, buf *out, aq_err *e)
{
    if (!rgb || width < 1 || height < 1 || width > 16384 || height > 16384)
        return err_set(e, AQ_EPERM, "png: cannot encode a %dx%d picture", width, height);
    png_job job = {width, height, 0, NULL, rgb, NULL, false, ""};
    return encode(&job, &truecolour_recipe, false, out, e);
}

/* Decoding goes through libpng's simplified API, which catches libpng's
 * errors internally (its own setjmp) and reports them in image.message. */
int pngenc_decode(const uint8_t *data, size_t len, uint8_t **rgba, int *width, int *height,
                  aq_err *e)
{
    *rgba = NULL;
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(&im, data, len))
        return err_set(e, AQ_EPERM, "png: not a readable PNG (%s)", im.message);
    /* refuse absurd dimensions before allocating for them */
    if (im.width == 0 || im.height == 0 || im.width > 16384 || im.height > 16384) {
        png_image_free(&im);
        return err_set(e, AQ_EPERM, "png: %ux%u is out of range", im.width, im.height);
    }
    im.format = PNG_FORMAT_RGBA;
    uint8_t *pix = malloc(PNG_IMAGE_SIZE(im));
    if (!pix) {
        png_image_free(&im);
        return err_set(e, AQ_EPERM, "png: out of memory for %ux%u", im.width, im.height);
    }
    if (!png_image_finish_read(&im, NULL, pix, 0, NULL)) {
        free(pix);
        png_image_free(&im);
        return err_set(e, AQ_EPERM, "png: corrupt image data (%s)", im.message);
    }
    *rgba = pix;
    *width = (int)im.width;
    *height = (int)im.height;
    png_image_free(&im);
    return 0;
}
