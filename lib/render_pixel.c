/* pixel: a 5x5 grid mirrored about its middle column, like GitHub
 * identicons, on a margin of half a cell. Two colours, so the PNG is a tiny
 * 1-bit palette image. Cell edges fall on whole pixels at every size: the
 * pixels that do not divide evenly are handed out symmetrically, so cells
 * differ by at most one pixel and the picture stays mirror-exact. */
#include <string.h>

#include "render_style.h"

#define GRID 5
#define HALF ((GRID + 1) / 2) /* columns drawn; the rest are mirrored */

/* Each grid line's pixel offset: edge[0] = margin, edge[GRID] = size - margin,
 * with edge[GRID - i] = size - edge[i]. */
static void grid_edges(int size, int edge[GRID + 1])
{
    int margin = (size + 6) / 12;          /* half a cell of a 6-cell width */
    int inner = size - 2 * margin;
    int cell = inner / GRID, extra = inner % GRID;
    /* extra is 0..4: an odd one goes to the middle cell, pairs to the
     * outer (0,4) then inner (1,3) pairs of cells */
    int width[GRID];
    for (int i = 0; i < GRID; i++)
        width[i] = cell;
    if (extra & 1)
        width[GRID / 2]++;
    for (int pair = 0; pair < extra / 2; pair++) {
        width[pair]++;
        width[GRID - 1 - pair]++;
    }
    edge[0] = margin;
    for (int i = 0; i < GRID; i++)
        edge[i + 1] = edge[i] + width[i];
}

/* The cells that are set, as HALF columns x GRID rows of bits. Too few or
 * too many set cells make a blank or a blob; redraw until the count is in
 * a pleasant range (the PRNG is deterministic, so so is the result). */
uint32_t render_pixel_cells(const render_params *p)
{
    render_rng r;
    render_rng_init(&r, p->hash, 0);
    uint32_t bits = 0;
    for (int tries = 0; tries < 64; tries++) {
        bits = (uint32_t)(render_rng_next(&r) >> 40) & ((1u << (HALF * GRID)) - 1);
        int n = __builtin_popcount(bits);
        if (n >= 5 && n <= 11)
            break;
    }
    return bits;
}

int render_pixel(const render_params *p, int size, render_image *img)
{
    size_t n = (size_t)size * size;
    if (render_reserve(img, n) < 0)
        return -1;
    img->ncolors = 2;
    img->palette[0] = p->foreign;
    img->bg_ramp = 1; /* entry 0 is the background */
    img->palette[1] = p->primary;

    int edge[GRID + 1];
    grid_edges(size, edge);
    uint32_t cells = render_pixel_cells(p);
    uint8_t *px = img->pixels;

    /* margin rows above and below */
    memset(px, 0, (size_t)edge[0] * size);
    memset(px + (size_t)edge[GRID] * size, 0, (size_t)(size - edge[GRID]) * size);

    for (int row = 0; row < GRID; row++) {
        /* build the first pixel row of this grid row, then copy it down */
        uint8_t *line = px + (size_t)edge[row] * size;
        memset(line, 0, (size_t)size);
        for (int col = 0; col < GRID; col++) {
            int src = col < HALF ? col : GRID - 1 - col;
            if (cells >> (row * HALF + src) & 1)
                memset(line + edge[col], 1, (size_t)(edge[col + 1] - edge[col]));
        }
        for (int y = edge[row] + 1; y < edge[row + 1]; y++)
            memcpy(px + (size_t)y * size, line, (size_t)size);
    }
    return 0;
}
