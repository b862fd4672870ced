/* gradient: a linear gradient at an angle (CSS convention: 0 = towards the
 * top, 90 = towards the right; the seed picks one when the request has
 * none), crossed by a soft seed-placed band of light, on a three-stop ramp:
 * pale primary -> primary -> a deeper primary turned round the hue circle.
 * 256 palette steps, 8-bit PNG.
 *
 * Why an integer direction: the colour is a function of u = A*x + B*y for
 * small integers (A, B) pointing along the angle (within about half a
 * degree), so row y + A is exactly row y moved sideways by B pixels. zlib
 * then codes nearly every row as one long match, which keeps a 256 px
 * gradient near 1-2 KB and fast to encode; a free angle would make every
 * row new data. u -> palette index is one table (in scratch memory after
 * the pixels), so the inner loop is an add and a load. */
#include <string.h>

#include "render_style.h"

#define STEPS 256
#define MID 112        /* palette index of the primary colour */
#define LIGHT_END 72   /* the gradient runs from here to STEPS - 1 */
#define MAX_DIR 12     /* largest |A| or |B| of the direction */

/* Three stops: a pale tint of the primary (0, render_tint: close to the
 * foreign colour of most schemes, never mud between contrasting ones),
 * the primary (MID), and a deeper primary turned 30
 * degrees round the hue circle (STEPS - 1), which gives the gradient depth
 * without leaving the scheme's family of colours. The turn goes away from
 * yellow (greens to teal, blues to violet, oranges and reds to crimson),
 * since a darkened yellow reads as mud. */
static void gradient_palette(const render_params *p, render_image *img)
{
    int h, s, l;
    color_to_hsl(p->primary, &h, &s, &l);
    int turn = h >= 100 && h < 300 ? 30 : -30;
    aq_rgb light = render_tint(p, 4, 5);
    aq_rgb deep = color_hsl(h + turn, s + 8, l > 30 ? l - 12 : l / 2 + 3);
    for (int i = 0; i < MID; i++)
        img->palette[i] = color_mix(light, p->primary, i, MID);
    for (int i = MID; i < STEPS; i++)
        img->palette[i] = color_mix(p->primary, deep, i - MID, STEPS - 1 - MID);
    img->ncolors = STEPS;
}

/* The integer vector (A, B) closest in angle to (sx, sy) (Q14) with
 * components up to MAX_DIR, preferring short vectors (a short repeat)
 * when they are within half a degree. */
static void integer_direction(int32_t sx, int32_t sy, int *a, int *b)
{
    int32_t big = (sx < 0 ? -sx : sx) > (sy < 0 ? -sy : sy) ? (sx < 0 ? -sx : sx)
                                                             : (sy < 0 ? -sy : sy);
    int64_t best_num = -1, best_den = 1;
    for (int m = 1; m <= MAX_DIR; m++) {
        /* round(m * s / big), half away from zero */
        int ca = (int)((2 * (int64_t)m * sx + (sx < 0 ? -big : big)) / (2 * big));
        int cb = (int)((2 * (int64_t)m * sy + (sy < 0 ? -big : big)) / (2 * big));
        /* squared sine of the angle between (ca, cb) and (sx, sy), as a
         * fraction num/den (|s| is 2^14 up to rounding) */
        int64_t cross = (int64_t)ca * sy - (int64_t)cb * sx;
        int64_t num = cross * cross, den = ((int64_t)ca * ca + (int64_t)cb * cb) << 28;
        if (best_num < 0 || num * best_den < best_num * den) {
            best_num = num;
            best_den = den;
            *a = ca;
            *b = cb;
        }
        if (num * 13132 < den)   /* sin^2(0.5 deg) = 1/13132 */
            break;
    }
}

/* The light band: a bump of amp palette steps (negative: lighter) that
 * falls off as (1 - d^2/w^2)^2 over distance d from its centre:
 * amp * (f / w)^2 / w^2 with f = w^2 - d^2, in integers. */
typedef struct band {
    int64_t centre, width;   /* in units of u */
    int amp;
} band;

/* u -> palette index for u = 0..span into lut: the ramp from LIGHT_END to
 * the last step plus the band, clamped. The quotients u * k / span and
 * f / width are carried from one u to the next (the numerator moves by a
 * known amount, so the quotient moves by a step or two): one division per
 * u instead of four, the same integers. */
static void gradient_lut(const band *bd, int64_t span, uint8_t *lut)
{
    const int64_t k = STEPS - 1 - LIGHT_END, w = bd->width, w2 = w * w;
    int64_t rq = 0, rr = span / 2;           /* (u * k + span / 2) = rq * span + rr */
    for (; rr >= span; rr -= span)
        rq++;
    int64_t d0 = -bd->centre, f = w2 - d0 * d0; /* f and f / w = bq rem br at u */
    int64_t bq = f / w, br = f % w;
    if (br < 0)
        br += w, bq--;                       /* floor division: the remainder stays in 0..w-1 */
    for (int64_t u = 0; u <= span; u++) {
        int64_t d = u - bd->centre, v = LIGHT_END + rq;
        if (d > -w && d < w) /* f > 0 here: floor and C's division agree */
            v += bd->amp * bq * bq / w2;
        lut[u] = (uint8_t)(v < 0 ? 0 : v > STEPS - 1 ? STEPS - 1 : v);
        for (rr += k; rr >= span; rr -= span)
            rq++;
        for (br -= 2 * d + 1; br < 0; br += w) /* f(u + 1) = f(u) - (2d + 1) */
            bq--;
        for (; br >= w; br -= w)
            bq++;
    }
}

int render_gradient(const render_params *p, int size, render_image *img)
{
    render_rng rng;
    render_rng_init(&rng, p->hash, 0);
    int angle = p->angle_deg100 >= 0 ? p->angle_deg100 : render_rng_range(&rng, 0, 35999);
    uint32_t phase = (uint32_t)((int64_t)angle * 65536 / 36000);
    int a, b;
    integer_direction(render_sin(phase), -render_cos(phase), &a, &b);

    /* u over the image runs from umin to umin + span */
    int64_t umin = (int64_t)(a < 0 ? a : 0) * (size - 1) + (int64_t)(b < 0 ? b : 0) * (size - 1);
    int64_t span = (int64_t)((a < 0 ? -a : a) + (b < 0 ? -b : b)) * (size - 1);
    size_t npix = (size_t)size * size;
    if (render_reserve(img, npix + (size_t)span + 1) < 0)
        return -1;
    gradient_palette(p, img);

    band bd = {
        .centre = span * render_rng_range(&rng, 25, 75) / 100,
        .width = span * render_rng_range(&rng, 30, 50) / 100 + 1,
        .amp = -render_rng_range(&rng, 35, 60),
    };
    uint8_t *lut = img->pixels + npix;
    gradient_lut(&bd, span, lut);

    /* Row y is row y - |a| moved by s = b * sign(a) pixels (see the top of
     * the file): copy what it shares and look up only the s new pixels. */
    int k = a < 0 ? -a : a, sh = a < 0 ? -b : b;
    for (int y = 0; y < size; y++) {
        uint8_t *row = img->pixels + (size_t)y * size;
        const uint8_t *l = lut + ((int64_t)b * y - umin);
        int from = 0, to = size;           /* the columns still to look up */
        if (k > 0 && y >= k && sh > -size && sh < size) {
            const uint8_t *src = row - (size_t)k * size;
            if (sh >= 0) {
                memcpy(row, src + sh, (size_t)(size - sh));
                from = size - sh;
            } else {
                memcpy(row - sh, src, (size_t)(size + sh));
                to = -sh;
            }
        }
        for (int x = from; x < to; x++)
            row[x] = l[(int64_t)a * x];
    }
    return 0;
}
