/* bench_job: what the gate in front of every job costs, single process:
 * job_parse() of a minimal document (id derived: canonical form + SHA-256),
 * of a full document with a given id, of a rejected one, job_to_json() (the
 * retry path), and config_load() of the shipped config.ini. Prints figures,
 * never pass/fail. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "job.h"
#include "retry.h"

/* Runs fn until about 1 s has passed; returns calls per second. */
static double rate(void (*fn)(void *), void *arg)
{
    long n = 0;
    int64_t t0 = mono_ms(), t;
    do {
        for (int i = 0; i < 1000; i++)
            fn(arg);
        n += 1000;
    } while ((t = mono_ms()) - t0 < 1000);
    return (double)n * 1000.0 / (double)(t - t0);
}

static job_limits L;

static void parse_doc(void *arg)
{
    const char *doc = arg;
    job_request r;
    aq_err e;
    (void)job_parse(doc, strlen(doc), &L, &r, &e);
}

static void to_json(void *arg)
{
    free(job_to_json(arg));
}

static void load_config(void *arg)
{
    aq_config c;
    aq_err e;
    (void)config_load_string(&c, arg, "config.ini", &e);
}

int main(void)
{
    aq_config c;
    aq_err e;
    config_defaults(&c);
    if (job_limits_from_config(&L, &c, &e) != 0) {
        printf("skipped: %s\n", e.msg);
        return 0;
    }
    static const struct { const char *what, *doc; } docs[] = {
        {"minimal, id derived", "{\"seed\":\"user-42@example.com\"}"},
        {"full, id given",
         "{\"v\":1,\"id\":\"user-42\",\"seed\":\"user-42@example.com\",\"style\":\"gradient\","
         "\"sizes\":[32,64,128,256,512],\"primary\":\"#ff0000\",\"foreign\":\"navy\",\"angle\":45.5,"
         "\"filter\":\"sepia\",\"max_attempts\":3,\"created_at\":1764000000000}"},
        {"rejected (bad size)", "{\"id\":\"user-42\",\"seed\":\"a\",\"sizes\":[64,9]}"},
        {"rejected (invalid JSON)", "{\"seed\":\"a\",\"sizes\":[64,"},
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++)
        printf("job_parse %-24s %9.0f /s\n", docs[i].what, rate(parse_doc, (void *)docs[i].doc));
    job_request r;
    if (job_parse(docs[1].doc, strlen(docs[1].doc), &L, &r, &e) == 0)
        printf("job_to_json %-22s %9.0f /s\n", "full", rate(to_json, &r));
    FILE *f = fopen("config.ini", "rb");
    if (!f) {
        printf("config_load: skipped: no ./config.ini\n");
        return 0;
    }
    static char text[1 << 16];
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    printf("config_load_string %-15s %9.0f /s\n", "config.ini", rate(load_config, text));
    return 0;
}
