/* libFuzzer target for job_parse(): any bytes, never a crash, a leak or
 * undefined behaviour; every rejection carries a message; every accepted
 * document has a valid id and survives job_to_json() -> job_parse() with the
 * same id and canonical form (so a retried job keeps its name). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static job_limits limits;

static void limits_once(void)
{
    static int done;
    if (done)
        return;
    aq_config c;
    aq_err e;
    config_defaults(&c);
    if (job_limits_from_config(&limits, &c, &e) != 0)
        abort();
    done = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    limits_once();
    job_request r, back;
    aq_err e;
    err_clear(&e);
    if (job_parse((const char *)data, size, &limits, &r, &e) != 0) {
        if (!e.msg[0] || (r.id[0] && !job_id_valid(r.id)))
            abort();
        return 0;
    }
    if (!job_id_valid(r.id))
        abort();
    char *doc = job_to_json(&r);
    if (!doc || job_parse(doc, strlen(doc), &limits, &back, &e) != 0 || strcmp(back.id, r.id) != 0)
        abort();
    if (r.seed_len) {
        char *c1 = job_canonical(&r), *c2 = job_canonical(&back);
        if (!c1 || !c2 || strcmp(c1, c2) != 0)
            abort();
        free(c1);
        free(c2);
    }
    free(doc);
    return 0;
}
