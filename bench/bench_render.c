/* bench_render: render + encode speed per style, size and format, one core,
 * after a warm-up (the emoji raster and glyph caches filled, as in a worker
 * that has run a while). Prints avatars/s, mean bytes and whether the PNG
 * is a palette image, and, for 256 px, the same cell of the peer that draws
 * the same kind of picture, measured in this run on this machine by
 * bench/peers/render/peer.mjs (jdenticon for the geometric styles,
 * DiceBear fun-emoji and initials through @dicebear/converter), with the
 * ratio. Rates are per CPU second of the process, for both sides. Never
 * pass/fail. AQ_BENCH_SECONDS (default 1) sets the time per cell. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "job.h"
#include "pngenc.h"
#include "render.h"
#include "webpenc.h"

#define PEER_DIR "bench/peers/render"

static double cpu_s(void)
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

typedef struct cell {
    double rate, bytes;
    int palette;           /* PNG colour type 3 in every picture */
} cell;

/* Renders and encodes distinct seeds of one style and size in one format
 * for about seconds of CPU time. */
static cell run(int style, int size, job_format f, double seconds)
{
    render_image img = RENDER_IMAGE_INIT;
    buf out = BUF_INIT;
    aq_err e;
    long n = 0;
    cell c = {0, 0, 1};
    double total = 0, t0 = cpu_s(), t = t0;
    while (t - t0 < seconds) {
        for (int k = 0; k < 16; k++, n++) {
            char seed[32];
            int len = snprintf(seed, sizeof seed, "user-%ld", n);
            render_params p;
            render_params_init(&p, seed, (size_t)len, style, NULL, NULL, NULL, -1, FILTER_NONE);
            buf_reset(&out);
            int rc = f == JOB_FORMAT_SVG ? render_svg(&p, size, &out)
                     : render_make(&p, size, &img) < 0 ? -1
                     : f == JOB_FORMAT_WEBP ? webpenc_encode(&img, &out, &e)
                                            : pngenc_encode(&img, &out, &e);
            if (rc != 0) {
                fprintf(stderr, "bench_render: %s at %d px failed: %s\n", render_style_name(style), size,
                        render_error());
                exit(1);
            }
            if (f == JOB_FORMAT_PNG && out.data[25] != 3)
                c.palette = 0;
            total += (double)out.len;
        }
        t = cpu_s();
    }
    render_image_free(&img);
    buf_free(&out);
    c.bytes = total / (double)n;
    c.rate = (double)n / (t - t0);
    return c;
}

/* The peer drawing the same kind of picture as style. */
static const char *peer_of(const char *style)
{
    if (strcmp(style, "emoji") == 0)
        return "dicebear-fun-emoji";
    if (strcmp(style, "initials") == 0)
        return "dicebear-initials";
    return "jdenticon";
}

/* The peers' npm packages, installed on first use (pinned by the lock file). */
static int peers_ready(void)
{
    struct stat st;
    if (stat(PEER_DIR "/node_modules/@dicebear/converter", &st) == 0)
        return 1;
    fprintf(stderr, "bench_render: installing the peers (npm ci in %s)\n", PEER_DIR);
    return system("cd " PEER_DIR " && npm ci --no-audit --no-fund --loglevel=error >/dev/null 2>&1") == 0;
}

/* The peer's rate at size, measured now; 0 when it cannot run. */
static double peer_rate(const char *peer, int size, double seconds, double *bytes)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "node " PEER_DIR "/peer.mjs rate %s %d %.2f 2>/dev/null", peer, size, seconds);
    FILE *p = popen(cmd, "r");
    double rate = 0;
    *bytes = 0;
    if (p) {
        if (fscanf(p, "rate %lf bytes %lf", &rate, bytes) != 2)
            rate = 0;
        pclose(p);
    }
    return rate;
}

/* Fills the caches as a worker that has run a while has them: every
 * curated emoji at this size, the glyphs of many initials. */
static void warm(int style, int size)
{
    render_image img = RENDER_IMAGE_INIT;
    for (int n = 0; n < 1500; n++) {
        char seed[32];
        int len = snprintf(seed, sizeof seed, "user-%d", n);
        render_params p;
        render_params_init(&p, seed, (size_t)len, style, NULL, NULL, NULL, -1, FILTER_NONE);
        if (render_make(&p, size, &img) < 0)
            break;
    }
    render_image_free(&img);
}

int main(void)
{
    const char *env = getenv("AQ_BENCH_SECONDS");
    double seconds = env && atof(env) > 0 ? atof(env) : 1.0;
    if (!getenv("AQ_EMOJI_DIR"))
        setenv("AQ_EMOJI_DIR", "data/emoji/node_modules/@twemoji/svg", 0);
    static const int sizes[] = {64, 256, 512};
    int peers = peers_ready();
    printf("render + encode, one core (CPU seconds), after warm-up, %.1f s per cell\n", seconds);
    printf("%-9s %5s %6s %11s %9s %8s   %s\n", "style", "size", "format", "avatars/s", "mean B", "palette",
           "peer at 256 px, this run");
    for (int s = 0; s < render_style_count(); s++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            warm(s, sizes[i]);
            for (int f = 0; f < JOB_FORMAT_COUNT; f++) {
                if (f == JOB_FORMAT_SVG && !render_style_has_svg(s))
                    continue;
                if (f != JOB_FORMAT_PNG && sizes[i] != 256)
                    continue;
                cell c = run(s, sizes[i], (job_format)f, seconds);
                printf("%-9s %5d %6s %11.0f %9.0f %8s", render_style_name(s), sizes[i],
                       job_format_name((job_format)f), c.rate, c.bytes,
                       f != JOB_FORMAT_PNG ? "" : c.palette ? "yes" : "no");
                if (f == JOB_FORMAT_PNG && sizes[i] == 256 && peers) {
                    double pb, pr = peer_rate(peer_of(render_style_name(s)), 256, seconds, &pb);
                    if (pr > 0)
                        printf("   %s %.0f/s %.0f B: %.1fx", peer_of(render_style_name(s)), pr, pb, c.rate / pr);
                    else
                        printf("   %s did not run", peer_of(render_style_name(s)));
                }
                printf("\n");
                fflush(stdout);
            }
        }
    printf("peak RSS: %ld KB\n", peak_rss_kb());
    return 0;
}
