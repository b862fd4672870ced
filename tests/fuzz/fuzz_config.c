/* libFuzzer target for config_load_string(): any text, never a crash, a
 * leak or undefined behaviour; a rejection always names where it happened;
 * an accepted configuration keeps every cross-key rule, and its Redis URL
 * redacts without overflowing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    aq_config c;
    aq_err e;
    err_clear(&e);
    char red[64];
    config_redact_url(text, red, sizeof red); /* any string, any length */
    if (config_load_string(&c, text, "fuzz.ini", &e) != 0) {
        if (!e.msg[0])
            abort();
    } else {
        if (c.worker.heartbeat_ttl_s <= c.worker.heartbeat_interval_s ||
            c.worker.backoff_max_ms < c.worker.backoff_base_ms || c.worker.processes < 1 ||
            c.worker.processes > 256 || c.render.n_default_sizes < 1 ||
            c.render.n_default_sizes > CONFIG_MAX_SIZES)
            abort();
        for (size_t i = 0; i < c.render.n_default_sizes; i++)
            if (c.render.default_sizes[i] > c.render.max_size || c.render.default_sizes[i] < 16)
                abort();
        if (!c.redis.unix_path[0] && (!c.redis.host[0] || c.redis.port < 1 || c.redis.port > 65535))
            abort();
        char full[600];
        config_redact_url(c.redis.url, full, sizeof full);
    }
    free(text);
    return 0;
}
