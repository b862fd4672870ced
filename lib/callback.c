/* callback: see callback.h. The signature covers the exact bytes sent, so a
 * receiver verifies it over the raw request body before parsing it. */
#include "callback.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct callback_client {
    CURL *h;
    int timeout_ms;
};

bool callback_url_valid(const char *url)
{
    size_t n = url ? strlen(url) : 0;
    if (n == 0 || n > CALLBACK_URL_MAX)
        return false;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f)
            return false;
    return n > (url[4] == 's' ? 8u : 7u);
}

int callback_entry_parse(const char *s, size_t len, callback_entry *out, aq_err *e)
{
    memset(out, 0, sizeof *out);
    json_t *o = json_loadb(s, len, 0, NULL);
    json_t *url = json_object_get(o, "url"), *body = json_object_get(o, "body");
    json_t *att = json_object_get(o, "attempts");
    int rc = 0;
    if (!json_is_object(o))
        rc = err_set(e, AQ_EPERM, "callback entry: not a JSON object");
    else if (!json_is_string(url) || !callback_url_valid(json_string_value(url)))
        rc = err_set(e, AQ_EPERM, "callback entry: url: not an http(s) URL");
    else if (!json_is_string(body))
        rc = err_set(e, AQ_EPERM, "callback entry: body: not a string");
    else if (att && !json_is_integer(att))
        rc = err_set(e, AQ_EPERM, "callback entry: attempts: not an integer");
    if (rc == 0) {
        out->url = strdup(json_string_value(url));
        out->body = strdup(json_string_value(body));
        out->attempts = att ? (int)json_integer_value(att) : 0;
        if (!out->url || !out->body)
            rc = err_set(e, AQ_EAGAIN, "callback entry: out of memory");
    }
    json_decref(o);
    if (rc != 0)
        callback_entry_free(out);
    return rc;
}

char *callback_entry_json(const callback_entry *c)
{
    json_t *o = json_pack("{s:s, s:s, s:i}", "url", c->url, "body", c->body, "attempts",
                          c->attempts);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

void callback_entry_free(callback_entry *c)
{
    free(c->url);
    free(c->body);
    c->url = c->body = NULL;
}

void callback_sign(const char *secret, const char *body, size_t len, char out[72])
{
    unsigned char mac[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac, &n);
    memcpy(out, "sha256=", 7);
    hash_hex(mac, 32, out + 7);
}

callback_client *callback_client_new(int timeout_ms, aq_err *e)
{
    callback_client *c = calloc(1, sizeof *c);
    if (!c) {
        err_set(e, AQ_EAGAIN, "callbacks: out of memory");
        return NULL;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT); /* reference-counted */
    c->h = curl_easy_init();
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    if (!c->h) {
        err_set(e, AQ_EAGAIN, "callbacks: curl_easy_init failed");
        callback_client_free(c);
        return NULL;
    }
    return c;
}

void callback_client_free(callback_client *c)
{
    if (!c)
        return;
    if (c->h) {
        curl_easy_cleanup(c->h);
        curl_global_cleanup();
    }
    free(c);
}

/* The receiver's reply body is not ours to keep. */
static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

int callback_post(callback_client *c, const char *url, const char *body, size_t len,
                  const char *secret, int attempt, long *status, aq_err *e)
{
    *status = 0;
    char sig[120], att[64];
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    snprintf(att, sizeof att, "X-Avatarq-Attempt: %d", attempt);
    hd = hd ? curl_slist_append(hd, att) : NULL;
    if (hd && secret && *secret) {
        char s[72];
        callback_sign(secret, body, len, s);
        snprintf(sig, sizeof sig, "X-Avatarq-Signature: %s", s);
        hd = curl_slist_append(hd, sig);
    }
    if (!hd)
        return err_set(e, AQ_EAGAIN, "callback: out of memory");
    CURL *h = c->h;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "avatarq-callback/" AQ_VERSION);
    CURLcode rc = curl_easy_perform(h);
    curl_slist_free_all(hd);
    if (rc != CURLE_OK)
        return err_set(e, AQ_EAGAIN, "callback %.200s: %s", url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    if (*status < 200 || *status > 299)
        return err_set(e, AQ_EAGAIN, "callback %.200s: HTTP %ld", url, *status);
    return 0;
}
