/* wave: layered smooth waves, like hills or a sea at dusk. The sky is the
 * foreign colour and each wave below is one step nearer the primary, so
 * the deepest layer is the primary itself. Each wave line is the sum of two
 * sines of seed-chosen frequency, amplitude and phase.
 *
 * Anti-aliasing: a pixel's value is how much of it lies below each wave
 * line, in S sub-steps, summed over the n lines (0..S*n); the palette is the
 * even ramp foreign -> primary in S*n + 1 steps, so partial coverage of one
 * line is exactly the blend of the two layers it separates, and lines that
 * cross still give the right colour. Neighbouring layers are close in
 * colour, so S = 15/n sub-steps (3..5) are as smooth to the eye as more,
 * and the palette fits 16 colours: a 4-bit PNG, half the data to compress
 * of an 8-bit one. */
#include "render_style.h"

#define MAX_LINES 5

typedef struct wave_line {
    int32_t base;               /* mean height, 1/16 px */
    int32_t amp[2];             /* amplitudes, 1/16 px */
    uint32_t phase[2];          /* 1/65536 turn */
    int32_t freq[2];            /* hundredths of a cycle across the image */
} wave_line;

static int plan_lines(const render_params *p, int size, wave_line *w)
{
    render_rng rng;
    render_rng_init(&rng, p->hash, 0);
    int n = render_rng_range(&rng, 3, MAX_LINES);
    int32_t s16 = size * 16;
    /* spread the mean heights over 30%..88% of the image, jittered */
    int32_t top = s16 * 30 / 100, bottom = s16 * 88 / 100;
    for (int i = 0; i < n; i++) {
        int32_t slot = (bottom - top) / (n - 1 > 0 ? n - 1 : 1);
        w[i].base = top + slot * i + slot * render_rng_range(&rng, -15, 15) / 100;
        w[i].amp[0] = s16 * render_rng_range(&rng, 35, 75) / 1000;
        w[i].freq[0] = render_rng_range(&rng, 60, 150);
        w[i].amp[1] = s16 * render_rng_range(&rng, 8, 25) / 1000;
        w[i].freq[1] = render_rng_range(&rng, 180, 320);
        w[i].phase[0] = (uint32_t)render_rng_range(&rng, 0, 65535);
        w[i].phase[1] = (uint32_t)render_rng_range(&rng, 0, 65535);
    }
    return n;
}

/* Height of line w at the centre of column x, in 1/16 px. */
static int32_t line_at(const wave_line *w, int x, int size)
{
    int32_t y = w->base;
    for (int k = 0; k < 2; k++) {
        /* (x + 1/2) / size of the way across, times freq/100 turns */
        uint32_t ph = w->phase[k] +
            (uint32_t)((int64_t)(2 * x + 1) * w->freq[k] * 65536 / (200 * (int64_t)size));
        y += (int32_t)(((int64_t)w->amp[k] * render_sin(ph)) >> 14);
    }
    return y;
}

static void sort_small(int32_t *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int32_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
}

/* How much of pixel row y lies below the lines b[0..n-1], in sub-steps
 * of 1/sub, summed. */
static int coverage(const int32_t *b, int n, int y, int sub)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        int32_t c = 16 * y + 16 - b[i];
        c = c < 0 ? 0 : c > 16 ? 16 : c;
        v += (c * sub + 8) / 16;
    }
    return v;
}

/* One column: constant runs between the rows the lines cross, computed
 * values only in those rows. */
static void fill_column(uint8_t *col, int size, const int32_t *b, int n, int sub)
{
    int y = 0;
    for (int k = 0; k <= n; k++) {
        int end = k < n ? b[k] >> 4 : size;   /* row holding line k */
        if (end > size)
            end = size;
        for (; y < end; y++)
            col[(size_t)y * size] = (uint8_t)(sub * k);
        if (k < n && y < size && y == end) {
            col[(size_t)y * size] = (uint8_t)coverage(b, n, y, sub);
            y++;
        }
    }
}

/* The sky is the foreign colour; the waves are tints of the primary
 * (render_tint), palest first, down to the primary itself. Entry v is
 * v/sub of the way along that chain. */
static void wave_palette(const render_params *p, int n, int sub, render_image *img)
{
    aq_rgb chain[MAX_LINES + 1];
    aq_rgb light = render_tint(p, 3, 5);
    chain[0] = p->foreign;
    for (int i = 1; i <= n; i++)
        chain[i] = color_mix(light, p->primary, i - 1, n - 1);
    for (int v = 0; v < sub * n; v++)
        img->palette[v] = color_mix(chain[v / sub], chain[v / sub + 1], v % sub, sub);
    img->palette[sub * n] = p->primary;
    img->ncolors = sub * n + 1;
}

int render_wave(const render_params *p, int size, render_image *img)
{
    if (render_reserve(img, (size_t)size * size) < 0)
        return -1;
    wave_line w[MAX_LINES];
    int n = plan_lines(p, size, w);
    int sub = 15 / n;
    wave_palette(p, n, sub, img);
    img->bg_ramp = sub; /* sky to the first wave */
    for (int x = 0; x < size; x++) {
        int32_t b[MAX_LINES];
        for (int i = 0; i < n; i++) {
            b[i] = line_at(&w[i], x, size);
            if (b[i] < 0)
                b[i] = 0;
        }
        sort_small(b, n);
        fill_column(img->pixels + x, size, b, n, sub);
    }
    return 0;
}
