/* emoji: the emoji artwork (Twemoji SVGs from the pinned npm package
 * @twemoji/svg, see data/emoji/) - names, validation and rasterising.
 *
 * An artwork name is the emoji's code points in lower-case hex joined by
 * '-' ("1f600", "1f1fa-1f1f8", "1f469-200d-1f4bb"), with U+FE0F dropped
 * unless the sequence has a zero-width joiner (Twemoji's file naming).
 * The list of names is compiled in (emoji_names.c, generated from the
 * pinned package), so a job is validated without reading the artwork. */
#ifndef AQ_EMOJI_H
#define AQ_EMOJI_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

extern const char *const emoji_names[];
extern const int emoji_names_count;
extern const char emoji_artwork_version[];

/* Maps the UTF-8 text s (len bytes) of exactly one emoji (ZWJ sequences,
 * flags, keycaps and skin tones included) to its artwork name in out.
 * Returns 0, or -1 with a reason in why (n bytes) when s is not exactly
 * one emoji of the artwork set. */
int emoji_name_of(const char *s, size_t len, char *out, size_t n, char *why, size_t whyn);

/* Whether name is an artwork name. */
int emoji_known(const char *name);

/* The emoji the seed picks when a job names none: r-th of a curated set of
 * faces, animals, food and objects (r any number). */
const char *emoji_pick(uint64_t r);

/* The artwork directory: $AQ_EMOJI_DIR, else AQ_DATADIR/emoji (the one
 * `make install` fills). */
const char *emoji_dir(void);

/* The artwork of name rasterised at px x px by librsvg and reduced to at
 * most EMOJI_COLOURS palette entries (median cut; entry 0 transparent,
 * entries premultiplied RGBA), one entry index a pixel, from the process's
 * cache of recent sizes (shared by its threads, at most 48 MB). Valid until
 * emoji_art_put. Returns 0, or -1 with a reason in why when the artwork
 * cannot be read or drawn. */
#define EMOJI_COLOURS 96

typedef struct emoji_art {
    int px;
    const uint8_t *idx;
    const uint8_t (*pal)[4];
    int npal;
    void *ref;          /* the cache entry held for the caller */
} emoji_art;

int emoji_art_get(const char *name, int px, emoji_art *out, char *why, size_t whyn);
/* Gives back what emoji_art_get handed out (its pixels may go after). */
void emoji_art_put(emoji_art *art);

/* Draws any SVG document (len bytes) at px x px with the same librsvg into
 * *rgba (malloc'd, premultiplied RGBA). Returns 0, or -1 with a reason in
 * why. For tests and tools that check SVG output. */
int emoji_svg_draw(const uint8_t *svg, size_t len, int px, uint8_t **rgba, char *why, size_t whyn);

/* Appends the artwork's SVG text to out. Returns 0 or -1 (reason in why). */
int emoji_svg(const char *name, buf *out, char *why, size_t whyn);

/* Frees the raster cache (no emoji_art may be held). */
void emoji_release(void);

#endif
