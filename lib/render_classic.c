/* classic: nested geometric frames, each a circle, square or diamond chosen
 * by the seed, inscribed one in the next and coloured alternately, like a
 * tiled medallion. Edges are anti-aliased with 16 blend levels between the
 * two colours, so the PNG is a 4-bit palette image.
 *
 * All distances are in 1/16 pixel. The picture is symmetric about both axes
 * and both diagonals, so only one eighth of it is computed; the rest is
 * copied (rows with memcpy, the lower-left triangle of the quadrant from
 * the transposed pixels). */
#include <string.h>

#include "render_style.h"

#define LEVELS 16
#define MAX_EDGES 6
#define SQRT2_Q7 181 /* sqrt(2) in 1/128 */

typedef enum { SHAPE_RING, SHAPE_SQUARE, SHAPE_DIAMOND, SHAPE_COUNT } shape;

typedef struct edge {
    shape kind;
    int32_t r;             /* radius / half-width / apothem, 1/16 px */
    int64_t lo2, hi2;      /* rings: squared radii where coverage is full/none */
} edge;

/* corner_out[a][b]: whether shape b of parameter r reaches r*sqrt(2) in the
 * metric of shape a (1) or only r (0). A circle fits snugly in anything;
 * a square in a square and a diamond in a diamond; otherwise corners stick
 * out by sqrt(2). Index SHAPE_COUNT is the image frame (a square). */
static const uint8_t corner_out[SHAPE_COUNT + 1][SHAPE_COUNT] = {
    [SHAPE_RING] = {0, 1, 1},
    [SHAPE_SQUARE] = {0, 0, 1},
    [SHAPE_DIAMOND] = {0, 1, 0},
    [SHAPE_COUNT] = {0, 0, 1},
};

static int32_t inscribe(int32_t r, shape outer_metric, shape inner)
{
    return corner_out[outer_metric][inner] ? r * 128 / SQRT2_Q7 : r;
}

/* Chooses the frames from the seed: the outermost fills most of the image,
 * each next one sits inside the previous with a gap of 0..3 units (0 makes
 * a shape inscribed in the last, which shows its corners). */
static int plan_edges(const render_params *p, int size, edge *e)
{
    render_rng rng;
    render_rng_init(&rng, p->hash, 0);
    int n = render_rng_range(&rng, 3, 5);
    int32_t limit = size * 16 * 45 / 100;   /* outer extent: 5% margin */
    int32_t unit = limit / 11;
    shape prev = SHAPE_COUNT;
    int32_t r = limit;
    int count = 0;
    for (int i = 0; i < n; i++) {
        shape kind = (shape)render_rng_range(&rng, 0, SHAPE_COUNT - 1);
        int gap = render_rng_range(&rng, 0, 3);
        if (kind == prev && gap == 0)
            gap = 2; /* the same shape needs a gap or its band vanishes */
        if (prev == SHAPE_COUNT)
            gap = 0;
        int32_t next = inscribe(r, prev, kind) - gap * unit;
        if (next < limit / 8)
            break;
        e[count].kind = kind;
        e[count].r = r = next;
        int64_t lo = next - 8, hi = next + 8;
        e[count].lo2 = lo > 0 ? lo * lo : -1;
        e[count].hi2 = hi * hi;
        prev = kind;
        count++;
    }
    return count;
}

static int32_t clamp16(int32_t v) { return v < 0 ? 0 : v > 16 ? 16 : v; }

/* Ink (0..16 sixteenths) at offset (dx, dy) >= 0 from the centre: the
 * alternating sum of how much of the pixel lies inside each frame. */
static int ink_at(const edge *e, int n, int32_t dx, int32_t dy)
{
    int64_t r2 = (int64_t)dx * dx + (int64_t)dy * dy;
    int32_t cheb = dx > dy ? dx : dy;
    int32_t diam = (dx + dy) * 128 / SQRT2_Q7;
    int32_t ink = 0;
    for (int i = 0; i < n; i++) {
        int32_t cov;
        switch (e[i].kind) {
        case SHAPE_RING:
            /* the square root only where the pixel straddles the circle */
            cov = r2 <= e[i].lo2 ? 16 : r2 >= e[i].hi2 ? 0
                : clamp16(e[i].r + 8 - (int32_t)render_isqrt((uint64_t)r2));
            break;
        case SHAPE_SQUARE:
            cov = clamp16(e[i].r + 8 - cheb);
            break;
        default:
            cov = clamp16(e[i].r + 8 - diam);
            break;
        }
        ink += i & 1 ? -cov : cov;
    }
    return clamp16(ink);
}

int render_classic(const render_params *p, int size, render_image *img)
{
    if (render_reserve(img, (size_t)size * size) < 0)
        return -1;
    render_ramp(img, p->foreign, p->primary, LEVELS);
    img->bg_ramp = LEVELS - 1; /* the whole ramp is coverage over the background */
    edge e[MAX_EDGES];
    int n = plan_edges(p, size, e);

    /* the lower-right quadrant, h x h pixels from (base, base) */
    int h = (size + 1) / 2, base = size - h;
    int odd0 = size % 2 == 0;          /* even sizes: centres at +-1/2 px */
    uint8_t *px = img->pixels;
    for (int j = 0; j < h; j++) {
        uint8_t *row = px + (size_t)(base + j) * size + base;
        int32_t dy = (2 * j + odd0) * 8;
        for (int i = 0; i < j; i++)      /* below the diagonal: transpose */
            row[i] = px[(size_t)(base + i) * size + base + j];
        for (int i = j; i < h; i++) {
            int ink = ink_at(e, n, (2 * i + odd0) * 8, dy);
            row[i] = (uint8_t)((ink * (LEVELS - 1) + 8) / 16);
        }
        /* mirror into the left half of the row */
        uint8_t *full = px + (size_t)(base + j) * size;
        for (int i = 0; i < base; i++)
            full[i] = full[size - 1 - i];
    }
    for (int y = 0; y < base; y++)
        memcpy(px + (size_t)y * size, px + (size_t)(size - 1 - y) * size, (size_t)size);
    return 0;
}
