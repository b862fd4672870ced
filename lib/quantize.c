/* quantize: median cut over the distinct colours of a picture.
 *
 * The distinct colours (with their pixel counts) are sorted once; a box is
 * a range of that array. The box with the widest channel is sorted along
 * that channel (ties by the whole value, so the order is total) and split
 * at its count-weighted median, until there are max - 1 boxes (entry 0 is
 * the transparent one) or no box holds two colours. */
#include "quantize.h"

#include <stdlib.h>
#include <string.h>

typedef struct colour {
    uint32_t v;          /* r | g << 8 | b << 16 | a << 24 */
    uint32_t count;
} colour;

typedef struct box {
    size_t lo, hi;       /* colours[lo..hi) */
    int ch, range;       /* its widest channel and that channel's range */
} box;

static int channel_of(uint32_t v, int c) { return (int)(v >> (8 * c)) & 255; }


/* The channel with the widest range in the box, and that range. */
static void widest(const colour *c, box *b)
{
    int lo[4] = {255, 255, 255, 255}, hi[4] = {0, 0, 0, 0};
    for (size_t i = b->lo; i < b->hi; i++)
        for (int k = 0; k < 4; k++) {
            int v = channel_of(c[i].v, k);
            lo[k] = v < lo[k] ? v : lo[k];
            hi[k] = v > hi[k] ? v : hi[k];
        }
    int best = 0;
    for (int k = 1; k < 4; k++)
        if (hi[k] - lo[k] > hi[best] - lo[best])
            best = k;
    b->range = hi[best] - lo[best];
    b->ch = best;
}

/* A box of colours [lo, hi), measured once (split_one looks at every box
 * for every split). */
static box box_of(const colour *c, size_t lo, size_t hi)
{
    box b = {lo, hi, 0, 0};
    widest(c, &b);
    return b;
}

/* Sorts c[0..n) by the key (byte ch of v, then v) - ch 0..3, or 4 for v
 * alone - with stable counting passes over v's bytes from the lowest, then
 * over byte ch: the order a comparison sort on that key gives, without a
 * comparator call per step (the sorts were a third of rasterising an
 * emoji). tmp holds n colours. A pass whose byte is the same for every
 * colour changes nothing and is skipped. */
static void sort_along(colour *c, size_t n, int ch, colour *tmp)
{
    static const int passes[5][5] = {
        {0, 1, 2, 3, 0}, {0, 1, 2, 3, 1}, {0, 1, 2, 3, 2}, {0, 1, 2, 3, 3}, {0, 1, 2, 3, -1},
    };
    colour *from = c, *to = tmp;
    for (int p = 0; p < 5 && passes[ch][p] >= 0; p++) {
        int shift = 8 * passes[ch][p];
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[((from[i].v >> shift) & 255) + 1]++;
        if (n == 0 || count[((from[0].v >> shift) & 255) + 1] == n)
            continue;
        for (int k = 0; k < 256; k++)
            count[k + 1] += count[k];
        for (size_t i = 0; i < n; i++)
            to[count[(from[i].v >> shift) & 255]++] = from[i];
        colour *t = from;
        from = to, to = t;
    }
    if (from != c)
        memcpy(c, from, n * sizeof *c);
}

/* Splits the widest splittable box; returns 0 when none can be split. */
static int split_one(colour *c, box *boxes, int *nbox, colour *tmp)
{
    int pick = -1, pick_range = 0, pick_ch = 0;
    for (int i = 0; i < *nbox; i++) {
        if (boxes[i].hi - boxes[i].lo < 2)
            continue;
        if (boxes[i].range > pick_range)
            pick = i, pick_range = boxes[i].range, pick_ch = boxes[i].ch;
    }
    if (pick < 0)
        return 0;
    box *b = &boxes[pick];
    sort_along(c + b->lo, b->hi - b->lo, pick_ch, tmp);
    uint64_t total = 0, run = 0;
    for (size_t i = b->lo; i < b->hi; i++)
        total += c[i].count;
    size_t cut = b->lo + 1;
    for (size_t i = b->lo; i < b->hi - 1; i++) {
        run += c[i].count;
        cut = i + 1;
        if (2 * run >= total)
            break;
    }
    boxes[*nbox] = box_of(c, cut, b->hi);
    *b = box_of(c, b->lo, cut);
    (*nbox)++;
    return 1;
}

/* Distinct colours by value: an open-addressed table (value 0 marks an
 * empty slot; transparent pixels, the only ones that could be 0, are not
 * counted), so each pixel costs one hash probe instead of a place in a
 * sort of every pixel. */
typedef struct slot {
    uint32_t v, count;
    int box;
} slot;

typedef struct table {
    slot *s;
    uint32_t mask;
    int shift;
    size_t used;
} table;

static slot *table_at(const table *t, uint32_t v)
{
    uint32_t i = (v * 0x9e3779b1u) >> t->shift;
    while (t->s[i].v && t->s[i].v != v)
        i = (i + 1) & t->mask;
    return &t->s[i];
}

static uint32_t pixel_value(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* An empty table of 2^bits slots. Returns 0 or -1. */
static int table_init(table *t, int bits)
{
    t->s = calloc((size_t)1 << bits, sizeof *t->s);
    t->mask = (uint32_t)(((size_t)1 << bits) - 1);
    t->shift = 32 - bits;
    t->used = 0;
    return t->s ? 0 : -1;
}

/* Counts one pixel of value v, doubling the table when half full (a few
 * thousand colours is usual: sizing it for every pixel cost more in
 * clearing and scanning than the counting). Returns 0 or -1. */
static int table_count(table *t, uint32_t v)
{
    slot *s = table_at(t, v);
    if (!s->v) {
        if (2 * (t->used + 1) > (size_t)t->mask + 1) {
            table old = *t;
            if (table_init(t, 33 - old.shift) < 0) {
                *t = old;
                return -1;
            }
            for (uint32_t i = 0; i <= old.mask; i++)
                if (old.s[i].v)
                    *table_at(t, old.s[i].v) = old.s[i];
            t->used = old.used;
            free(old.s);
            s = table_at(t, v);
        }
        s->v = v;
        t->used++;
    }
    s->count++;
    return 0;
}

/* The distinct colours of the picture that are not fully transparent,
 * with their pixel counts, into c (sorted by value; c holds 2n colours,
 * the upper half scratch), counted through t. Returns how many, or -1
 * when out of memory. */
static long distinct(const uint8_t *rgba, size_t n, table *t, colour *c)
{
    for (size_t i = 0; i < n; i++)
        if (rgba[4 * i + 3] && table_count(t, pixel_value(rgba + 4 * i)) < 0)
            return -1;
    size_t nc = 0;
    for (uint32_t i = 0; i <= t->mask; i++)
        if (t->s[i].v)
            c[nc++] = (colour){t->s[i].v, t->s[i].count};
    sort_along(c, nc, 4, c + n);
    return (long)nc;
}

int quantize_rgba(const uint8_t *rgba, size_t n, int max, uint8_t pal[][4], uint8_t *idx)
{
    if (max < 2)
        max = 2;
    if (max > 256)
        max = 256;
    table t = {NULL, 0, 0, 0};
    colour *c = malloc(2 * n * sizeof *c + 1); /* the colours, then sort_along's scratch */
    box *boxes = malloc(256 * sizeof *boxes);
    long got = c && boxes && table_init(&t, 12) == 0 ? distinct(rgba, n, &t, c) : -1;
    if (got < 0) {
        free(t.s), free(c), free(boxes);
        return -1;
    }
    size_t nc = (size_t)got;
    int nbox = 0;
    if (nc) {
        boxes[0] = box_of(c, 0, nc);
        nbox = 1;
        while (nbox < max - 1 && split_one(c, boxes, &nbox, c + n))
            ;
    }
    memset(pal[0], 0, 4);
    for (int b = 0; b < nbox; b++) {
        uint64_t sum[4] = {0, 0, 0, 0}, cnt = 0;
        for (size_t i = boxes[b].lo; i < boxes[b].hi; i++) {
            for (int k = 0; k < 4; k++)
                sum[k] += (uint64_t)channel_of(c[i].v, k) * c[i].count;
            cnt += c[i].count;
            table_at(&t, c[i].v)->box = b + 1;
        }
        for (int k = 0; k < 4; k++)
            pal[b + 1][k] = (uint8_t)((sum[k] + cnt / 2) / cnt);
    }
    /* pixel -> its colour's box */
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = rgba + 4 * i;
        idx[i] = p[3] ? (uint8_t)table_at(&t, pixel_value(p))->box : 0;
    }
    free(t.s), free(c), free(boxes);
    return nbox + 1;
}
