/* emoji: artwork names, validation and rasterising with librsvg.
 *
 * Rasterising an SVG and quantizing it cost about a millisecond, far more
 * than the rest of an avatar, and a worker draws the same few emoji at the
 * same few sizes again and again, so the quantized artwork is kept in a
 * per-thread cache (threads never share one, so no locks; a forked process
 * starts with its parent's copy, which is as good), least recently used out
 * first. At one byte a pixel, CACHE_BYTES holds the 70 curated emoji at
 * both emoji sizes for every default avatar size (32..512 px: ~40 MB). */
#include "emoji.h"
#include "quantize.h"
#include "utf8.h"

#include <cairo.h>
#include <dlfcn.h>
#include <librsvg/rsvg.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AQ_DATADIR
#define AQ_DATADIR "/usr/local/share/avatarq"
#endif

#define MAX_CODEPOINTS 16

/* ---- names ---- */

static int cmp_name(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

int emoji_known(const char *name)
{
    return bsearch(name, emoji_names, (size_t)emoji_names_count, sizeof emoji_names[0], cmp_name) != NULL;
}

/* Joins cp[0..n) as hex with '-', leaving out U+FE0F when drop_vs16. */
static void join_hex(const uint32_t *cp, int n, int drop_vs16, char *out, size_t size)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < n && o < size; i++) {
        if (drop_vs16 && cp[i] == 0xfe0f)
            continue;
        int w = snprintf(out + o, size - o, "%s%x", o ? "-" : "", (unsigned)cp[i]);
        o += w > 0 ? (size_t)w : 0;
    }
}

int emoji_name_of(const char *s, size_t len, char *out, size_t n, char *why, size_t whyn)
{
    uint32_t cp[MAX_CODEPOINTS];
    int count = len ? utf8_decode(s, len, cp, MAX_CODEPOINTS) : 0;
    if (count <= 0) {
        snprintf(why, whyn, len ? "not UTF-8 text of at most %d code points" : "empty", MAX_CODEPOINTS);
        return -1;
    }
    int zwj = 0;
    for (int i = 0; i < count; i++)
        zwj |= cp[i] == 0x200d;
    /* Twemoji's naming first (FE0F kept only in ZWJ sequences), then the
     * other spelling, since people type FE0F or leave it out either way. */
    char name[256];
    for (int attempt = 0; attempt < 2; attempt++) {
        join_hex(cp, count, attempt == 0 ? !zwj : zwj, name, sizeof name);
        if (emoji_known(name) && strlen(name) < n) {
            memcpy(out, name, strlen(name) + 1);
            return 0;
        }
    }
    join_hex(cp, count, 0, name, sizeof name);
    snprintf(why, whyn, "not exactly one emoji of %s (code points %s)", emoji_artwork_version, name);
    return -1;
}

/* Faces, animals, plants, food and a few objects: friendly at any size. */
static const char *const curated[] = {
    "1f600", "1f603", "1f604", "1f601", "1f606", "1f60a", "1f60e", "1f60d", "1f913", "1f920",
    "1f973", "1f929", "1f917", "1f92d", "1f47b", "1f47d", "1f916", "1f431", "1f436", "1f98a",
    "1f43b", "1f43c", "1f428", "1f42f", "1f981", "1f42e", "1f437", "1f438", "1f435", "1f414",
    "1f427", "1f426", "1f989", "1f984", "1f41d", "1f98b", "1f422", "1f419", "1f42c", "1f433",
    "1f335", "1f33b", "1f337", "1f344", "1f34e", "1f34a", "1f34b", "1f349", "1f347", "1f353",
    "1f352", "1f351", "1f34d", "1f951", "1f955", "1f33d", "1f355", "1f369", "1f36a", "1f382",
    "1f680", "1f308", "2b50", "1f525", "26a1", "1f388", "1f3b8", "1f3a8", "1f48e", "1f381",
};

const char *emoji_pick(uint64_t r)
{
    return curated[r % (sizeof curated / sizeof curated[0])];
}

const char *emoji_dir(void)
{
    const char *d = getenv("AQ_EMOJI_DIR");
    return d && *d ? d : AQ_DATADIR "/emoji";
}

/* ---- artwork files ---- */

static int read_artwork(const char *name, buf *out, char *why, size_t whyn)
{
    if (!emoji_known(name)) {
        snprintf(why, whyn, "no artwork named '%s'", name);
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.svg", emoji_dir(), name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whyn, "artwork %s missing (install it: make install, or set AQ_EMOJI_DIR)", path);
        return -1;
    }
    char chunk[8192];
    size_t got;
    int rc = 0;
    while (rc == 0 && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(out, chunk, got);
    if (ferror(f) || rc != 0) {
        snprintf(why, whyn, "reading %s failed", path);
        rc = -1;
    }
    fclose(f);
    return rc;
}

int emoji_svg(const char *name, buf *out, char *why, size_t whyn)
{
    return read_artwork(name, out, why, whyn);
}

/* ---- rasters ---- */

#define CACHE_ENTRIES 1024
#define CACHE_BYTES (48u << 20)

/* One artwork at one size, kept quantized only (1 byte a pixel + the
 * palette): what every avatar is drawn from. */
typedef struct raster {
    char name[96];
    int px;
    uint8_t *idx;       /* px*px entry indexes; NULL: slot empty */
    uint8_t pal[256][4];
    int npal;
    uint64_t used;      /* clock of the last use */
    int refs;           /* emoji_art handed out and not yet put back */
    bool loose;         /* not in the cache (it was full of held entries) */
} raster;

/* One cache for the whole process: a worker's job threads draw the same
 * few dozen emoji, and a copy per thread would cost 48 MB each. Change
 * procedure: every field of every slot, clock_now and cache_bytes only under
 * mu; an entry with refs > 0 is never evicted (its pixels are being drawn
 * from); the slow part, reading and rasterising artwork, runs unlocked. */
static raster cache[CACHE_ENTRIES];
static uint64_t clock_now;
static size_t cache_bytes;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

void emoji_release(void)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        free(cache[i].idx);
        memset(&cache[i], 0, sizeof cache[i]);
    }
    cache_bytes = 0;
    pthread_mutex_unlock(&mu);
}

static size_t entry_bytes(int px) { return (size_t)px * (size_t)px + sizeof(raster); }

/* The least recently used slot that nobody holds, emptied; older ones go too
 * while the cache holds more than CACHE_BYTES. NULL when every entry is
 * held. Under mu. */
static raster *cache_slot(size_t need)
{
    for (;;) {
        raster *old = NULL;
        for (int i = 0; i < CACHE_ENTRIES; i++)
            if (cache[i].refs == 0 && (!old || cache[i].used < old->used))
                old = &cache[i];
        if (!old)
            return NULL;
        if (old->idx) {
            cache_bytes -= entry_bytes(old->px);
            free(old->idx);
            memset(old, 0, sizeof *old);
        }
        bool evictable = false;
        for (int i = 0; i < CACHE_ENTRIES && !evictable; i++)
            evictable = cache[i].idx && cache[i].refs == 0;
        if (cache_bytes + need <= CACHE_BYTES || !evictable)
            return old;
    }
}

static uint8_t *rasterise(const buf *svg, int px, char *why, size_t whyn);

/* ---- librsvg, loaded when first needed ----
 * librsvg links GIO, whose libselinux reads /proc/filesystems as soon as it
 * is loaded: a sandboxed worker (ProcSubset=pid, tests/test_units.c) must
 * not touch that unless it draws emoji. So librsvg is opened with dlopen()
 * on the first emoji, and only its headers are needed to build. */
static struct {
    RsvgHandle *(*new_from_data)(const guint8 *data, gsize len, GError **err);
    gboolean (*render_document)(RsvgHandle *h, cairo_t *cr, const RsvgRectangle *vp, GError **err);
    char error[200];
} rsvg;

static pthread_once_t rsvg_once = PTHREAD_ONCE_INIT;

static void rsvg_load(void)
{
    void *lib = dlopen("librsvg-2.so.2", RTLD_NOW | RTLD_LOCAL);
    if (lib) {
        *(void **)&rsvg.new_from_data = dlsym(lib, "rsvg_handle_new_from_data");
        *(void **)&rsvg.render_document = dlsym(lib, "rsvg_handle_render_document");
    }
    if (!rsvg.new_from_data || !rsvg.render_document)
        snprintf(rsvg.error, sizeof rsvg.error, "librsvg-2.so.2 cannot be loaded (install librsvg2-2): %s",
                 lib ? "symbols missing" : dlerror());
}

int emoji_svg_draw(const uint8_t *svg, size_t len, int px, uint8_t **rgba, char *why, size_t whyn)
{
    buf b = {(uint8_t *)svg, len, len};
    *rgba = rasterise(&b, px, why, whyn);
    return *rgba ? 0 : -1;
}

/* Draws the SVG text into a cairo ARGB32 surface and copies it out as
 * premultiplied RGBA bytes. */
static uint8_t *rasterise(const buf *svg, int px, char *why, size_t whyn)
{
    pthread_once(&rsvg_once, rsvg_load);
    if (rsvg.error[0]) {
        snprintf(why, whyn, "%s", rsvg.error);
        return NULL;
    }
    GError *err = NULL;
    RsvgHandle *h = rsvg.new_from_data(svg->data, svg->len, &err);
    if (!h) {
        snprintf(why, whyn, "artwork does not parse: %s", err ? err->message : "?");
        g_clear_error(&err);
        return NULL;
    }
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, px, px);
    cairo_t *cr = cairo_create(s);
    RsvgRectangle vp = {0, 0, px, px};
    gboolean ok = rsvg.render_document(h, cr, &vp, &err);
    cairo_destroy(cr);
    cairo_surface_flush(s);
    uint8_t *out = ok ? malloc((size_t)px * (size_t)px * 4) : NULL;
    if (out) {
        const uint8_t *data = cairo_image_surface_get_data(s);
        int stride = cairo_image_surface_get_stride(s);
        for (int y = 0; y < px; y++) {
            const uint32_t *row = (const uint32_t *)(data + (size_t)y * (size_t)stride);
            uint8_t *o = out + (size_t)y * (size_t)px * 4;
            for (int x = 0; x < px; x++, o += 4) {
                uint32_t v = row[x]; /* native-endian ARGB, premultiplied */
                o[0] = (uint8_t)(v >> 16), o[1] = (uint8_t)(v >> 8), o[2] = (uint8_t)v;
                o[3] = (uint8_t)(v >> 24);
            }
        }
    } else {
        snprintf(why, whyn, ok ? "out of memory" : "artwork does not draw: %s", err ? err->message : "?");
    }
    g_clear_error(&err);
    cairo_surface_destroy(s);
    g_object_unref(h);
    return out;
}

/* Reads, rasterises and quantizes name at px into r (not in the cache:
 * runs unlocked). */
static int fill(raster *r, const char *name, int px, char *why, size_t whyn)
{
    buf svg = BUF_INIT;
    uint8_t *rgba = read_artwork(name, &svg, why, whyn) == 0 ? rasterise(&svg, px, why, whyn) : NULL;
    buf_free(&svg);
    if (!rgba)
        return -1;
    size_t n = (size_t)px * (size_t)px;
    uint8_t *idx = malloc(n + 1);
    int npal = idx ? quantize_rgba(rgba, n, EMOJI_COLOURS, r->pal, idx) : -1;
    free(rgba);
    if (npal < 0) {
        free(idx);
        snprintf(why, whyn, "out of memory");
        return -1;
    }
    snprintf(r->name, sizeof r->name, "%s", name);
    r->px = px;
    r->idx = idx;
    r->npal = npal;
    return 0;
}

/* The cached entry for name at px, held (refs + 1), or NULL. Under mu. */
static raster *cache_find(const char *name, int px)
{
    for (int i = 0; i < CACHE_ENTRIES; i++)
        if (cache[i].idx && cache[i].px == px && strcmp(cache[i].name, name) == 0) {
            cache[i].refs++;
            cache[i].used = ++clock_now;
            return &cache[i];
        }
    return NULL;
}

/* Puts a freshly filled raster into the cache (or keeps it loose when every
 * entry is held), held once. Another thread may have filled the same one
 * meanwhile: then that one is used and ours dropped. */
static raster *cache_add(raster *fresh)
{
    pthread_mutex_lock(&mu);
    raster *r = cache_find(fresh->name, fresh->px);
    if (r) {
        free(fresh->idx);
        free(fresh);
    } else if ((r = cache_slot(entry_bytes(fresh->px))) != NULL) {
        *r = *fresh;
        free(fresh);
        r->refs = 1;
        r->used = ++clock_now;
        cache_bytes += entry_bytes(r->px);
    } else {
        r = fresh;
        r->refs = 1;
        r->loose = true;
    }
    pthread_mutex_unlock(&mu);
    return r;
}

int emoji_art_get(const char *name, int px, emoji_art *out, char *why, size_t whyn)
{
    if (strlen(name) >= sizeof cache[0].name) {
        snprintf(why, whyn, "no artwork named '%s'", name);
        return -1;
    }
    pthread_mutex_lock(&mu);
    raster *r = cache_find(name, px);
    pthread_mutex_unlock(&mu);
    if (!r) {
        raster *fresh = calloc(1, sizeof *fresh);
        if (!fresh) {
            snprintf(why, whyn, "out of memory");
            return -1;
        }
        if (fill(fresh, name, px, why, whyn) != 0) {
            free(fresh);
            return -1;
        }
        r = cache_add(fresh);
    }
    *out = (emoji_art){px, r->idx, (const uint8_t(*)[4])r->pal, r->npal, r};
    return 0;
}

void emoji_art_put(emoji_art *art)
{
    raster *r = art->ref;
    if (!r)
        return;
    pthread_mutex_lock(&mu);
    r->refs--;
    bool drop = r->loose && r->refs == 0;
    pthread_mutex_unlock(&mu);
    if (drop) {
        free(r->idx);
        free(r);
    }
    art->ref = NULL;
}
