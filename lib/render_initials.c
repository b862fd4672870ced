/* initials: one or two letters (initials.c picks them from the name or
 * the seed) in the foreign colour on the primary, in a Noto font chosen by
 * the script of the first letter (Debian's fonts-noto-core and
 * fonts-noto-cjk), shaped by HarfBuzz (Arabic joining, Devanagari
 * clusters, combining marks) and rasterised by FreeType.
 *
 * Scripts outside the table fall back to the CJK font when it has their
 * glyphs (kana, Hangul, many symbols).
 *
 * Optical centring: the letters are placed by the box of their ink, not
 * by advance widths and the baseline, so "Ω", "李" and "мa" all sit in the
 * middle. Size: the em is a fixed fraction of the avatar, reduced only when
 * the ink would be wider than WIDTH_PCT; a fixed em keeps the per-thread
 * glyph cache useful.
 *
 * Output: coverage in 16 steps, an indexed ramp primary -> foreign (a
 * 4-bit PNG, small and quick to encode); entries 0..15 are the background
 * fading into the letters, so a transparent background drops cleanly.
 * FreeType and HarfBuzz work in integers (26.6 fixed point), so the same
 * fonts give the same pixels everywhere. */
#include <ft2build.h>
#include FT_FREETYPE_H
#include <hb-ft.h>
#include <hb.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "render_style.h"

#define LEVELS 16
#define EM_PCT 46       /* em as percent of the size */
#define WIDTH_PCT 72    /* widest ink allowed, percent of the size */
#define HEIGHT_PCT 60   /* tallest ink allowed */
#define MAX_GLYPHS 16

/* ---- fonts ---- */

typedef struct font_file {
    const char *path;
    int index;          /* face in a collection */
} font_file;

enum { F_LATIN, F_ARABIC, F_HEBREW, F_DEVANAGARI, F_BENGALI, F_TAMIL, F_THAI, F_ARMENIAN,
       F_GEORGIAN, F_GURMUKHI, F_GUJARATI, F_ORIYA, F_TELUGU, F_KANNADA, F_MALAYALAM, F_SINHALA,
       F_LAO, F_MYANMAR, F_ETHIOPIC, F_CHEROKEE, F_KHMER, F_CJK, F_COUNT };

#define NOTO_TT "/usr/share/fonts/truetype/noto/"
#define NOTO_OT "/usr/share/fonts/opentype/noto/"

static const font_file fonts[F_COUNT] = {
    [F_LATIN] = {NOTO_TT "NotoSans-Bold.ttf", 0},          /* Latin, Greek, Cyrillic */
    [F_ARABIC] = {NOTO_TT "NotoSansArabic-Bold.ttf", 0},
    [F_HEBREW] = {NOTO_TT "NotoSansHebrew-Bold.ttf", 0},
    [F_DEVANAGARI] = {NOTO_TT "NotoSansDevanagari-Bold.ttf", 0},
    [F_BENGALI] = {NOTO_TT "NotoSansBengali-Bold.ttf", 0},
    [F_TAMIL] = {NOTO_TT "NotoSansTamil-Bold.ttf", 0},
    [F_THAI] = {NOTO_TT "NotoSansThai-Bold.ttf", 0},
    [F_ARMENIAN] = {NOTO_TT "NotoSansArmenian-Bold.ttf", 0},
    [F_GEORGIAN] = {NOTO_TT "NotoSansGeorgian-Bold.ttf", 0},
    [F_GURMUKHI] = {NOTO_TT "NotoSansGurmukhi-Bold.ttf", 0},
    [F_GUJARATI] = {NOTO_TT "NotoSansGujarati-Bold.ttf", 0},
    [F_ORIYA] = {NOTO_TT "NotoSansOriya-Bold.ttf", 0},
    [F_TELUGU] = {NOTO_TT "NotoSansTelugu-Bold.ttf", 0},
    [F_KANNADA] = {NOTO_TT "NotoSansKannada-Bold.ttf", 0},
    [F_MALAYALAM] = {NOTO_TT "NotoSansMalayalam-Bold.ttf", 0},
    [F_SINHALA] = {NOTO_TT "NotoSansSinhala-Bold.ttf", 0},
    [F_LAO] = {NOTO_TT "NotoSansLao-Bold.ttf", 0},
    [F_MYANMAR] = {NOTO_TT "NotoSansMyanmar-Bold.ttf", 0},
    [F_ETHIOPIC] = {NOTO_TT "NotoSansEthiopic-Bold.ttf", 0},
    [F_CHEROKEE] = {NOTO_TT "NotoSansCherokee-Bold.ttf", 0},
    [F_KHMER] = {NOTO_TT "NotoSansKhmer-Bold.ttf", 0},
    [F_CJK] = {NOTO_OT "NotoSansCJK-Bold.ttc", 0},
};

typedef struct script_range {
    uint32_t lo, hi;
    int font;
} script_range;

static const script_range scripts[] = {
    {0x0530, 0x058f, F_ARMENIAN}, {0x0590, 0x05ff, F_HEBREW},     {0x0600, 0x06ff, F_ARABIC},
    {0x0750, 0x077f, F_ARABIC},   {0x08a0, 0x08ff, F_ARABIC},     {0x0900, 0x097f, F_DEVANAGARI},
    {0x0980, 0x09ff, F_BENGALI},  {0x0a00, 0x0a7f, F_GURMUKHI},   {0x0a80, 0x0aff, F_GUJARATI},
    {0x0b00, 0x0b7f, F_ORIYA},    {0x0b80, 0x0bff, F_TAMIL},      {0x0c00, 0x0c7f, F_TELUGU},
    {0x0c80, 0x0cff, F_KANNADA},  {0x0d00, 0x0d7f, F_MALAYALAM},  {0x0d80, 0x0dff, F_SINHALA},
    {0x0e00, 0x0e7f, F_THAI},     {0x0e80, 0x0eff, F_LAO},        {0x1000, 0x109f, F_MYANMAR},
    {0x10a0, 0x10ff, F_GEORGIAN}, {0x1100, 0x11ff, F_CJK},        {0x1200, 0x139f, F_ETHIOPIC},
    {0x13a0, 0x13ff, F_CHEROKEE}, {0x1780, 0x17ff, F_KHMER},      {0x2e80, 0x9fff, F_CJK},
    {0xac00, 0xd7af, F_CJK},      {0xf900, 0xfaff, F_CJK},        {0xfb1d, 0xfb4f, F_HEBREW},
    {0xfb50, 0xfdff, F_ARABIC},   {0xfe70, 0xfeff, F_ARABIC},     {0xff00, 0xffef, F_CJK},
    {0x20000, 0x3134f, F_CJK},
};

static uint32_t first_codepoint(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80)
        return u[0];
    if ((u[0] >> 5) == 6)
        return (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f);
    if ((u[0] >> 4) == 14)
        return (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
    return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3f) << 12 |
           (uint32_t)(u[2] & 0x3f) << 6 | (u[3] & 0x3f);
}

static int font_for(const char *text)
{
    uint32_t c = first_codepoint(text);
    for (size_t i = 0; i < sizeof scripts / sizeof scripts[0]; i++)
        if (c >= scripts[i].lo && c <= scripts[i].hi)
            return scripts[i].font;
    return F_LATIN;
}

/* Per-thread FreeType state: faces open on first use and stay open. */
typedef struct font_state {
    FT_Face face;
    hb_font_t *hb;
    int em;             /* pixel size the face is set to */
} font_state;

static _Thread_local FT_Library ft;
static _Thread_local font_state open_fonts[F_COUNT];

static font_state *font_open(int f, int em)
{
    if (!ft && FT_Init_FreeType(&ft) != 0)
        return NULL;
    font_state *fs = &open_fonts[f];
    if (!fs->face) {
        if (FT_New_Face(ft, fonts[f].path, fonts[f].index, &fs->face) != 0) {
            fs->face = NULL;
            return NULL;
        }
        fs->hb = hb_ft_font_create_referenced(fs->face);
        fs->em = 0;
    }
    if (fs->em != em) {
        FT_Set_Pixel_Sizes(fs->face, 0, (FT_UInt)em);
        hb_ft_font_changed(fs->hb);
        fs->em = em;
    }
    return fs;
}

/* ---- glyph cache: coverage bitmaps by (font, glyph, em) ---- */

#define GCACHE 256

typedef struct gbitmap {
    int font, em;
    unsigned gid;
    int left, top, w, h;   /* offset from the pen, FreeType's convention */
    uint8_t *cov;          /* w*h bytes */
} gbitmap;

static _Thread_local gbitmap gcache[GCACHE];

static const gbitmap *glyph_get(font_state *fs, int f, int em, unsigned gid)
{
    gbitmap *g = &gcache[(gid * 31u + (unsigned)f * 7919u + (unsigned)em * 131u) % GCACHE];
    if (g->cov && g->font == f && g->em == em && g->gid == gid)
        return g;
    /* no hinting: outlines as drawn, the same at every size */
    if (FT_Load_Glyph(fs->face, gid, FT_LOAD_NO_HINTING) != 0 ||
        FT_Render_Glyph(fs->face->glyph, FT_RENDER_MODE_NORMAL) != 0)
        return NULL;
    FT_GlyphSlot s = fs->face->glyph;
    int w = (int)s->bitmap.width, h = (int)s->bitmap.rows;
    uint8_t *cov = malloc((size_t)(w * h) + 1);
    if (!cov)
        return NULL;
    for (int y = 0; y < h; y++)
        memcpy(cov + (size_t)y * (size_t)w, s->bitmap.buffer + (ptrdiff_t)y * s->bitmap.pitch, (size_t)w);
    free(g->cov);
    *g = (gbitmap){f, em, gid, s->bitmap_left, s->bitmap_top, w, h, cov};
    return g;
}

/* ---- layout ---- */

typedef struct placed {
    const gbitmap *g;
    int x, y;           /* top-left of the bitmap, pixels from the pen origin */
} placed;

/* Whether font f has a glyph for every character of text. */
/* text shaped with fs's font (script and direction guessed from it); the
 * caller destroys the buffer. */
static hb_buffer_t *shape(font_state *fs, const char *text)
{
    hb_buffer_t *b = hb_buffer_create();
    hb_buffer_add_utf8(b, text, -1, 0, -1);
    hb_buffer_guess_segment_properties(b);
    hb_shape(fs->hb, b, NULL, 0);
    return b;
}

static bool font_covers(const char *text, int f, int em)
{
    font_state *fs = font_open(f, em);
    if (!fs)
        return false;
    hb_buffer_t *b = shape(fs, text);
    unsigned n = 0;
    hb_glyph_info_t *info = hb_buffer_get_glyph_infos(b, &n);
    bool all = true;
    for (unsigned i = 0; i < n; i++)
        all &= info[i].codepoint != 0;
    hb_buffer_destroy(b);
    return all;
}

/* Shapes text at em and places its glyphs; *box receives the ink box
 * (x0, y0, x1, y1). Returns the number of glyphs, or -1. */
static int layout(const char *text, int f, int em, placed *out, int box[4])
{
    font_state *fs = font_open(f, em);
    if (!fs)
        return render_fail("initials: font %s cannot be opened (install fonts-noto-core, fonts-noto-cjk)",
                           fonts[f].path);
    hb_buffer_t *b = shape(fs, text);
    unsigned n = 0;
    hb_glyph_info_t *info = hb_buffer_get_glyph_infos(b, &n);
    hb_glyph_position_t *pos = hb_buffer_get_glyph_positions(b, &n);
    int32_t pen_x = 0, pen_y = 0, count = 0;
    box[0] = box[1] = 1 << 30, box[2] = box[3] = -(1 << 30);
    for (unsigned i = 0; i < n && count < MAX_GLYPHS; i++) {
        const gbitmap *g = glyph_get(fs, f, em, info[i].codepoint);
        if (g && g->w > 0 && g->h > 0) {
            int x = (pen_x + pos[i].x_offset + 32) / 64 + g->left;
            int y = -((pen_y + pos[i].y_offset + 32) / 64) - g->top;
            out[count++] = (placed){g, x, y};
            box[0] = x < box[0] ? x : box[0], box[1] = y < box[1] ? y : box[1];
            box[2] = x + g->w > box[2] ? x + g->w : box[2], box[3] = y + g->h > box[3] ? y + g->h : box[3];
        }
        pen_x += pos[i].x_advance;
        pen_y += pos[i].y_advance;
    }
    hb_buffer_destroy(b);
    return count;
}

int render_initials(const render_params *p, int size, render_image *img)
{
    const char *text = p->text[0] ? p->text : "?";
    if (render_reserve(img, (size_t)size * (size_t)size) < 0)
        return render_fail("out of memory");
    int f = font_for(text), em = size * EM_PCT / 100, box[4];
    /* a script outside the table: the CJK font covers the most besides */
    if (f != F_CJK && !font_covers(text, f, em) && font_covers(text, F_CJK, em))
        f = F_CJK;
    placed gl[MAX_GLYPHS];
    int n = layout(text, f, em, gl, box);
    if (n < 0)
        return -1;
    int w = box[2] - box[0], h = box[3] - box[1];
    if (n > 0 && (w * 100 > size * WIDTH_PCT || h * 100 > size * HEIGHT_PCT)) {
        /* too wide or tall: the largest em that fits, then lay out again */
        int by_w = em * size * WIDTH_PCT / (100 * w), by_h = em * size * HEIGHT_PCT / (100 * h);
        em = by_w < by_h ? by_w : by_h;
        if (em < 4)
            em = 4;
        if ((n = layout(text, f, em, gl, box)) < 0)
            return -1;
        w = box[2] - box[0], h = box[3] - box[1];
    }
    memset(img->pixels, 0, (size_t)size * (size_t)size);
    /* the ink box's centre on the avatar's centre */
    int ox = (size - w) / 2 - box[0], oy = (size - h) / 2 - box[1];
    for (int i = 0; i < n; i++) {
        const gbitmap *g = gl[i].g;
        for (int y = 0; y < g->h; y++) {
            int ty = gl[i].y + oy + y;
            if (ty < 0 || ty >= size)
                continue;
            uint8_t *row = img->pixels + (size_t)ty * (size_t)size;
            for (int x = 0; x < g->w; x++) {
                int tx = gl[i].x + ox + x;
                int c = g->cov[(size_t)y * (size_t)g->w + (size_t)x];
                if (tx < 0 || tx >= size || c == 0)
                    continue;
                int level = (c * (LEVELS - 1) + 127) / 255;
                if (level > row[tx]) /* overlapping glyphs: the stronger ink */
                    row[tx] = (uint8_t)level;
            }
        }
    }
    for (int i = 0; i < LEVELS; i++)
        img->palette[i] = color_mix(p->primary, p->foreign, i, LEVELS - 1);
    img->ncolors = LEVELS;
    img->bg_ramp = LEVELS - 1;
    return 0;
}
