/* bench_render: render + PNG encode speed per style and size, one core.
 * Prints avatars/s, mean PNG bytes and peak RSS; never pass/fail. Seeds are
 * varied so the figures are means over many different pictures. Set
 * AQ_BENCH_SECONDS (default 1) for longer runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "pngenc.h"
#include "render.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Renders and encodes distinct seeds of one style and size for about
 * seconds; returns the rate and the mean size in *bytes. */
static double run(int style, int size, double seconds, double *bytes)
{
    render_image img = RENDER_IMAGE_INIT;
    buf png = BUF_INIT;
    aq_err e;
    long n = 0;
    double total = 0, t0 = now_s(), t = t0;
    while (t - t0 < seconds) {
        for (int k = 0; k < 16; k++, n++) {
            char seed[32];
            int len = snprintf(seed, sizeof seed, "user-%ld", n);
            render_params p;
            render_params_init(&p, seed, (size_t)len, style, NULL, NULL, NULL, -1, FILTER_NONE);
            buf_reset(&png);
            if (render_make(&p, size, &img) < 0 || pngenc_encode(&img, &png, &e) < 0) {
                fprintf(stderr, "bench_render: %s at %d failed\n", render_style_name(style), size);
                exit(1);
            }
            total += (double)png.len;
        }
        t = now_s();
    }
    render_image_free(&img);
    buf_free(&png);
    *bytes = total / (double)n;
    return (double)n / (t - t0);
}

int main(void)
{
    const char *env = getenv("AQ_BENCH_SECONDS");
    double seconds = env && atof(env) > 0 ? atof(env) : 1.0;
    static const int sizes[] = {64, 256, 512};
    /* jdenticon 3.x (npm), measured earlier on a 2-core machine of the same
     * kind; a recorded figure, not re-run here */
    static const double jdenticon[] = {1500, 560, 185};
    printf("render + PNG encode, one core, %.1f s per cell\n", seconds);
    printf("%-9s %5s %12s %10s %12s\n", "style", "size", "avatars/s", "mean B", "x jdenticon");
    for (int s = 0; s < render_style_count(); s++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            double bytes, rate = run(s, sizes[i], seconds, &bytes);
            printf("%-9s %5d %12.0f %10.0f %11.1fx\n", render_style_name(s), sizes[i], rate,
                   bytes, rate / jdenticon[i]);
            fflush(stdout);
        }
    printf("peak RSS: %ld KB\n", peak_rss_kb());
    return 0;
}
