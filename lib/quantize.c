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
    int box;
} colour;

typedef struct box {
    size_t lo, hi;       /* colours[lo..hi) */
} box;

static int channel_of(uint32_t v, int c) { return (int)(v >> (8 * c)) & 255; }


static int cmp_value(const void *a, const void *b)
{
    uint32_t x = ((const colour *)a)->v, y = ((const colour *)b)->v;
    return (x > y) - (x < y);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* The channel with the widest range in the box, and that range. */
static int widest(const colour *c, const box *b, int *range)
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
    *range = hi[best] - lo[best];
    return best;
}

static _Thread_local int cmp_ch;

static int cmp_along(const void *a, const void *b)
{
    uint32_t x = ((const colour *)a)->v, y = ((const colour *)b)->v;
    int d = channel_of(x, cmp_ch) - channel_of(y, cmp_ch);
    return d ? d : (x > y) - (x < y);
}

/* Splits the widest splittable box; returns 0 when none can be split. */
static int split_one(colour *c, box *boxes, int *nbox)
{
    int pick = -1, pick_range = 0, pick_ch = 0;
    for (int i = 0; i < *nbox; i++) {
        if (boxes[i].hi - boxes[i].lo < 2)
            continue;
        int range, ch = widest(c, &boxes[i], &range);
        if (range > pick_range)
            pick = i, pick_range = range, pick_ch = ch;
    }
    if (pick < 0)
        return 0;
    box *b = &boxes[pick];
    cmp_ch = pick_ch;
    qsort(c + b->lo, b->hi - b->lo, sizeof *c, cmp_along);
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
    boxes[*nbox] = (box){cut, b->hi};
    b->hi = cut;
    (*nbox)++;
    return 1;
}

int quantize_rgba(const uint8_t *rgba, size_t n, int max, uint8_t pal[][4], uint8_t *idx)
{
    if (max < 2)
        max = 2;
    if (max > 256)
        max = 256;
    uint32_t *v = malloc(n * sizeof *v + 1);
    colour *c = malloc(n * sizeof *c + 1);
    box *boxes = malloc(256 * sizeof *boxes);
    if (!v || !c || !boxes) {
        free(v), free(c), free(boxes);
        return -1;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = rgba + 4 * i;
        if (p[3])
            v[m++] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    qsort(v, m, sizeof *v, cmp_u32);
    size_t nc = 0;
    for (size_t i = 0; i < m; i++) {
        if (nc && c[nc - 1].v == v[i])
            c[nc - 1].count++;
        else
            c[nc++] = (colour){v[i], 1, 0};
    }
    int nbox = 0;
    if (nc) {
        boxes[0] = (box){0, nc};
        nbox = 1;
        while (nbox < max - 1 && split_one(c, boxes, &nbox))
            ;
    }
    memset(pal[0], 0, 4);
    for (int b = 0; b < nbox; b++) {
        uint64_t sum[4] = {0, 0, 0, 0}, cnt = 0;
        for (size_t i = boxes[b].lo; i < boxes[b].hi; i++) {
            for (int k = 0; k < 4; k++)
                sum[k] += (uint64_t)channel_of(c[i].v, k) * c[i].count;
            cnt += c[i].count;
            c[i].box = b + 1;
        }
        for (int k = 0; k < 4; k++)
            pal[b + 1][k] = (uint8_t)((sum[k] + cnt / 2) / cnt);
    }
    /* pixel -> its colour (binary search by value) -> its box */
    qsort(c, nc, sizeof *c, cmp_value);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = rgba + 4 * i;
        if (!p[3]) {
            idx[i] = 0;
            continue;
        }
        colour key = {(uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24, 0, 0};
        const colour *hit = bsearch(&key, c, nc, sizeof *c, cmp_value);
        idx[i] = (uint8_t)(hit ? hit->box : 0);
    }
    free(v), free(c), free(boxes);
    return nbox + 1;
}
