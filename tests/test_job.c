/* job: the job document of docs/protocol.md. A table of hostile documents, each
 * with the error it must get; good documents with their defaults; the
 * canonical form and derived id (one pinned, so every machine agrees);
 * requests built in code; the crash inputs the fuzzer found, replayed from
 * tests/fuzz/regressions/job/; and a seeded mutation run that checks every
 * document that parses survives a round trip through job_to_json(). */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "hash.h"
#include "job.h"
#include "support.h"

static job_limits L;

static void limits_setup(void)
{
    aq_config c;
    aq_err e;
    config_defaults(&c);
    ck_assert_int_eq(job_limits_from_config(&L, &c, &e), 0);
}

static int parse(const char *doc, job_request *r, aq_err *e)
{
    err_clear(e);
    return job_parse(doc, strlen(doc), &L, r, e);
}

/* A document of n bytes: {"seed":"xxx...x"} or padding with spaces. */
static char *doc_with_seed(size_t seed_len)
{
    char *d = malloc(seed_len + 32);
    ck_assert_ptr_nonnull(d);
    strcpy(d, "{\"seed\":\"");
    memset(d + 9, 'x', seed_len);
    strcpy(d + 9 + seed_len, "\"}");
    return d;
}

static char *doc_padded(size_t total)
{
    const char *base = "{\"seed\":\"alice\"}";
    char *d = malloc(total + 1);
    ck_assert_ptr_nonnull(d);
    memset(d, ' ', total);
    memcpy(d, base, strlen(base));
    d[total] = '\0';
    return d;
}

static char *depth_bomb(size_t depth, const char *open, const char *close, const char *head)
{
    char *d = malloc(strlen(head) + depth * 6 + 16);
    ck_assert_ptr_nonnull(d);
    size_t n = (size_t)sprintf(d, "%s", head);
    for (size_t i = 0; i < depth; i++)
        n += (size_t)sprintf(d + n, "%s", open);
    for (size_t i = 0; i < depth; i++)
        n += (size_t)sprintf(d + n, "%s", close);
    sprintf(d + n, "%s", *head ? "}" : "");
    return d;
}

/* ---- the hostile table ---- */

typedef struct bad_doc {
    const char *doc;
    const char *want;   /* substring of the error */
    const char *id;     /* r->id after the failure */
} bad_doc;

static const bad_doc BAD[] = {
    /* not JSON, or not an object */
    {"", "document: empty", ""},
    {"   ", "invalid JSON", ""},
    {"{", "invalid JSON", ""},
    {"{\"seed\":\"a\"", "invalid JSON", ""},
    {"{\"seed\":\"a\"} x", "end of file expected", ""},
    {"{'seed':'a'}", "invalid JSON", ""},
    {"{\"seed\":\"a\",}", "invalid JSON", ""},
    {"[1,2]", "must be a JSON object, got an array", ""},
    {"\"alice\"", "must be a JSON object, got string 'alice'", ""},
    {"42", "must be a JSON object, got integer 42", ""},
    {"null", "must be a JSON object, got null", ""},
    /* numbers JSON has no room for */
    {"{\"seed\":NaN}", "invalid token near 'NaN'", ""},
    {"{\"seed\":\"a\",\"angle\":NaN}", "invalid token", ""},
    {"{\"seed\":\"a\",\"angle\":Infinity}", "invalid token", ""},
    {"{\"seed\":\"a\",\"angle\":-Infinity}", "invalid token", ""},
    {"{\"seed\":\"a\",\"angle\":1e999}", "real number overflow", ""},
    {"{\"seed\":\"a\",\"sizes\":[99999999999999999999]}", "too big integer", ""},
    /* invalid UTF-8 and escapes */
    {"{\"seed\":\"\xff\"}", "unable to decode byte 0xff", ""},
    {"{\"seed\":\"\xc0\xaf\"}", "unable to decode byte 0xc0", ""},
    {"{\"seed\":\"\xed\xa0\x80\"}", "unable to decode byte 0xed", ""},
    {"{\"seed\":\"\\ud800\"}", "invalid Unicode", ""},
    {"{\"seed\":\"a\\u0000b\"}", "seed: contains a NUL character (\\u0000) at byte 1", ""},
    /* duplicates and unknown fields */
    {"{\"seed\":\"a\",\"seed\":\"b\"}", "duplicate object key", ""},
    {"{\"seed\":\"a\",\"colour\":\"red\"}", "unknown field 'colour'", ""},
    {"{\"seed\":\"a\",\"Seed\":\"b\"}", "unknown field 'Seed'", ""},
    {"{\"seed\":\"a\",\"x\\u0001\":1}", "unknown field 'x\\x01'", ""},
    {"{\"id\":\"user-7\",\"seed\":\"a\",\"size\":64}", "unknown field 'size'", "user-7"},
    /* version */
    {"{\"seed\":\"a\",\"v\":2}", "v: unsupported protocol version 2", ""},
    {"{\"seed\":\"a\",\"v\":0}", "v: unsupported protocol version 0", ""},
    {"{\"id\":\"j2\",\"shape\":\"new\",\"v\":2}", "v: unsupported protocol version 2", "j2"},
    {"{\"seed\":\"a\",\"v\":\"1\"}", "v: expected an integer, got string '1'", ""},
    {"{\"seed\":\"a\",\"v\":1.0}", "v: expected an integer, got real 1.0", ""},
    /* id */
    {"{\"id\":\"../x\",\"seed\":\"a\"}", "id: '../x' is not a valid id", ""},
    {"{\"id\":\"a/b\",\"seed\":\"a\"}", "id: 'a/b' is not a valid id", ""},
    {"{\"id\":\".hidden\",\"seed\":\"a\"}", "id: '.hidden' is not a valid id", ""},
    {"{\"id\":\"..\",\"seed\":\"a\"}", "id: '..' is not a valid id", ""},
    {"{\"id\":\"\",\"seed\":\"a\"}", "id: '' is not a valid id", ""},
    {"{\"id\":\"a b\",\"seed\":\"a\"}", "id: 'a b' is not a valid id", ""},
    {"{\"id\":\"ok\\u0000x\",\"seed\":\"a\"}", "id: 'ok\\x00x' is not a valid id", ""},
    {"{\"id\":\"x\\\\y\",\"seed\":\"a\"}", "id: 'x\\\\y' is not a valid id", ""},
    {"{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"seed\":\"a\"}",
     "is not a valid id", ""},
    {"{\"id\":5,\"seed\":\"a\"}", "id: expected a string, got integer 5", ""},
    /* type */
    {"{\"seed\":\"a\",\"type\":\"render\"}", "type: 'render' is not a job type (generate, delete)", ""},
    {"{\"seed\":\"a\",\"type\":\"Delete\"}", "type: 'Delete' is not a job type", ""},
    {"{\"type\":\"delete\"}", "id: a delete job needs an id or a seed", ""},
    {"{\"seed\":\"a\",\"type\":null}", "type: expected a string, got null", ""},
    /* seed */
    {"{}", "seed: required for a generate job", ""},
    {"{\"id\":\"u1\"}", "seed: required for a generate job", "u1"},
    {"{\"seed\":\"\"}", "seed: must not be empty", ""},
    {"{\"seed\":5}", "seed: expected a string, got integer 5", ""},
    {"{\"seed\":[\"a\"]}", "seed: expected a string, got an array", ""},
    {"{\"seed\":{\"a\":1}}", "seed: expected a string, got an object", ""},
    {"{\"seed\":true}", "seed: expected a string, got true", ""},
    /* style */
    {"{\"seed\":\"a\",\"style\":\"fancy\"}", "style: 'fancy' is not a style (pixel, classic, wave, gradient, emoji, initials)", ""},
    {"{\"seed\":\"a\",\"style\":1}", "style: expected a string, got integer 1", ""},
    /* sizes */
    {"{\"seed\":\"a\",\"sizes\":[0]}", "sizes[0]: 0 is below 16", ""},
    {"{\"seed\":\"a\",\"sizes\":[-64]}", "sizes[0]: -64 is below 16", ""},
    {"{\"seed\":\"a\",\"sizes\":[64,9]}", "sizes[1]: 9 is below 16", ""},
    {"{\"seed\":\"a\",\"sizes\":[1000000000]}", "sizes[0]: 1000000000 is above max_size 1024", ""},
    {"{\"seed\":\"a\",\"sizes\":[1025]}", "sizes[0]: 1025 is above max_size 1024", ""},
    {"{\"seed\":\"a\",\"sizes\":[64,32,64]}", "sizes[2]: 64 appears twice", ""},
    {"{\"seed\":\"a\",\"sizes\":[]}", "sizes: must not be empty", ""},
    {"{\"seed\":\"a\",\"sizes\":64}", "sizes: expected an array of integers, got integer 64", ""},
    {"{\"seed\":\"a\",\"sizes\":[\"64\"]}", "sizes[0]: expected an integer, got string '64'", ""},
    {"{\"seed\":\"a\",\"sizes\":[64.0]}", "sizes[0]: expected an integer, got real 64.0", ""},
    {"{\"seed\":\"a\",\"sizes\":[64,[32]]}", "sizes[1]: expected an integer, got an array", ""},
    {"{\"seed\":\"a\",\"sizes\":[16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32]}",
     "sizes: 17 sizes, at most 16", ""},
    {"{\"id\":\"user-42\",\"seed\":\"a\",\"sizes\":[9]}", "sizes[0]: 9 is below 16", "user-42"},
    /* colours, scheme, angle, filter */
    {"{\"seed\":\"a\",\"primary\":\"blurple\"}", "primary: 'blurple' is not a colour", ""},
    {"{\"seed\":\"a\",\"primary\":\"#ggg\"}", "primary: '#ggg' is not a colour", ""},
    {"{\"seed\":\"a\",\"foreign\":\"#12345\"}", "foreign: '#12345' is not a colour", ""},
    {"{\"seed\":\"a\",\"foreign\":\"\"}", "foreign: '' is not a colour", ""},
    {"{\"seed\":\"a\",\"primary\":[255,0,0]}", "primary: expected a string, got an array", ""},
    {"{\"seed\":\"a\",\"scheme\":\"nope\"}", "scheme: 'nope' is not a colour scheme", ""},
    {"{\"seed\":\"a\",\"angle\":400}", "angle: 400 is outside 0..360", ""},
    {"{\"seed\":\"a\",\"angle\":-1}", "angle: -1 is outside 0..360", ""},
    {"{\"seed\":\"a\",\"angle\":360.5}", "angle: 360.5 is outside 0..360", ""},
    {"{\"seed\":\"a\",\"angle\":\"45\"}", "angle: expected a number, got string '45'", ""},
    {"{\"seed\":\"a\",\"filter\":\"blur\"}", "filter: 'blur' is not a filter (none, grayscale, sepia, negative)", ""},
    /* max_attempts, created_at */
    {"{\"seed\":\"a\",\"max_attempts\":0}", "max_attempts: 0 is outside 1..25", ""},
    {"{\"seed\":\"a\",\"max_attempts\":26}", "max_attempts: 26 is outside 1..25", ""},
    {"{\"seed\":\"a\",\"max_attempts\":true}", "max_attempts: expected an integer, got true", ""},
    {"{\"seed\":\"a\",\"created_at\":-1}", "created_at: -1 is negative", ""},
    {"{\"seed\":\"a\",\"created_at\":1.5e12}", "created_at: expected an integer, got real 1500000000000.0", ""},
};

START_TEST(bad_documents)
{
    const bad_doc *b = &BAD[_i];
    job_request r;
    aq_err e;
    memset(&r, 0x5a, sizeof r); /* job_parse must not rely on a clean r */
    int rc = parse(b->doc, &r, &e);
    ck_assert_msg(rc == AQ_EPERM, "BAD[%d] %s: accepted", _i, b->doc);
    ck_assert_msg(strstr(e.msg, b->want) != NULL, "BAD[%d] %s:\n  got  %s\n  want %s", _i, b->doc, e.msg,
                  b->want);
    ck_assert_msg(strcmp(r.id, b->id) == 0, "BAD[%d]: r.id '%s', want '%s'", _i, r.id, b->id);
    ck_assert_msg(e.code == AQ_EPERM, "bad input is permanent");
}
END_TEST

/* Documents too big to write out in the table. */
START_TEST(bad_generated_documents)
{
    job_request r;
    aq_err e;
    struct { char *doc; const char *want; } cases[] = {
        {doc_with_seed(1024 * 1024), "document: 1048587 bytes, more than 65536"},
        {doc_with_seed(257), "seed: 257 bytes, more than 256"},
        {doc_with_seed(60000), "seed: 60000 bytes, more than 256"},
        {doc_padded(JOB_MAX_DOC + 1), "document: 65537 bytes, more than 65536"},
        {depth_bomb(30000, "[", "]", ""), "nested deeper than 16 levels"},
        {depth_bomb(17, "[", "]", ""), "nested deeper than 16 levels"},
        {depth_bomb(5000, "{\"a\":", "}", "{\"seed\":\"a\",\"x\":"), "nested deeper than 16 levels"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_int_eq(job_parse(cases[i].doc, strlen(cases[i].doc), &L, &r, &e), AQ_EPERM);
        ck_assert_msg(strstr(e.msg, cases[i].want), "case %zu: got %s, want %s", i, e.msg, cases[i].want);
        free(cases[i].doc);
    }
    /* Brackets inside strings are not nesting. */
    char *d = malloc(300);
    snprintf(d, 300, "{\"seed\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"}");
    ck_assert_int_eq(job_parse(d, strlen(d), &L, &r, &e), 0);
    free(d);
    /* A long bad value is cut in the message, never copied whole. */
    char *c = malloc(1200);
    snprintf(c, 1200, "{\"seed\":\"a\",\"primary\":\"%01000d\"}", 7);
    ck_assert_int_eq(job_parse(c, strlen(c), &L, &r, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "primary: '0000"));
    ck_assert_ptr_nonnull(strstr(e.msg, "...' is not a colour"));
    ck_assert_uint_lt(strlen(e.msg), 200);
    free(c);
    /* Not NUL-terminated: only len bytes count. */
    const char buf[] = "{\"seed\":\"alice\"}GARBAGE";
    ck_assert_int_eq(job_parse(buf, 16, &L, &r, &e), 0);
    ck_assert_int_eq(job_parse(NULL, 0, &L, &r, &e), AQ_EPERM);
}
END_TEST

/* ---- good documents ---- */

START_TEST(defaults_applied)
{
    job_request r;
    aq_err e;
    ck_assert_int_eq(parse("{\"seed\":\"alice\"}", &r, &e), 0);
    ck_assert_int_eq(r.type, JOB_GENERATE);
    ck_assert_str_eq(r.seed, "alice");
    ck_assert_uint_eq(r.seed_len, 5);
    ck_assert_int_eq(r.style, render_style_find("pixel"));
    ck_assert_uint_eq(r.nsizes, 5);
    const int want[] = {32, 64, 128, 256, 512};
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(r.sizes[i], want[i]);
    ck_assert_str_eq(r.primary, "");
    ck_assert_str_eq(r.foreign, "");
    ck_assert_str_eq(r.scheme, "");
    ck_assert(r.angle < 0);
    ck_assert_int_eq(r.filter, FILTER_NONE);
    ck_assert_int_eq(r.max_attempts, 0);
    ck_assert_int_eq(r.created_at, 0);
    ck_assert(!r.id_given);
    ck_assert(job_id_valid(r.id));
    ck_assert_uint_eq(strlen(r.id), 64);
    /* render params resolved: the hash of the seed, the style */
    uint8_t h[32];
    hash_sha256("alice", 5, h);
    ck_assert_mem_eq(r.render.hash, h, 32);
    ck_assert_int_eq(r.render.style, r.style);
    ck_assert_int_eq(r.render.angle_deg100, -1);
}
END_TEST

START_TEST(every_field)
{
    job_request r;
    aq_err e;
    const char *doc = "{\"v\":1,\"id\":\"user-42\",\"type\":\"generate\",\"seed\":\"Zo\\u00eb \xf0\x9f\x8e\x89\","
                      "\"style\":\"Gradient\",\"sizes\":[512,16,1024],\"primary\":\"#F00\",\"foreign\":\"Navy\","
                      "\"scheme\":\"Ocean\",\"angle\":45.5,\"filter\":\"sepia\",\"max_attempts\":25,"
                      "\"created_at\":1764000000000}";
    ck_assert_msg(parse(doc, &r, &e) == 0, "%s", e.msg);
    ck_assert_str_eq(r.id, "user-42");
    ck_assert(r.id_given);
    ck_assert_str_eq(r.seed, "Zo\xc3\xab \xf0\x9f\x8e\x89");
    ck_assert_uint_eq(r.seed_len, 9);
    ck_assert_int_eq(r.style, render_style_find("gradient"));
    ck_assert_uint_eq(r.nsizes, 3);
    ck_assert_int_eq(r.sizes[0], 512);
    ck_assert_int_eq(r.sizes[1], 16);
    ck_assert_int_eq(r.sizes[2], 1024);
    ck_assert_str_eq(r.primary, "#f00");
    ck_assert_str_eq(r.foreign, "navy");
    ck_assert_str_eq(r.scheme, "ocean");
    ck_assert(fabs(r.angle - 45.5) < 1e-9);
    ck_assert_int_eq(r.filter, FILTER_SEPIA);
    ck_assert_int_eq(r.max_attempts, 25);
    ck_assert_int_eq(r.created_at, 1764000000000LL);
    /* explicit colours win over the scheme */
    ck_assert_int_eq(r.render.primary.r, 255);
    ck_assert_int_eq(r.render.primary.g, 0);
    ck_assert_int_eq(r.render.foreign.b, 128);
    ck_assert_int_eq(r.render.angle_deg100, 4550);
    ck_assert_int_eq(r.render.filter, FILTER_SEPIA);
}
END_TEST

START_TEST(edges_accepted)
{
    job_request r;
    aq_err e;
    const char *ok[] = {
        "{\"seed\":\"a\",\"sizes\":[16]}",
        "{\"seed\":\"a\",\"sizes\":[1024]}",
        "{\"seed\":\"a\",\"sizes\":[16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31]}",
        "{\"seed\":\"a\",\"angle\":0}",
        "{\"seed\":\"a\",\"angle\":360}",
        "{\"seed\":\"a\",\"angle\":0.0}",
        "{\"seed\":\"a\",\"max_attempts\":1}",
        "{\"seed\":\"a\",\"created_at\":0}",
        "{\"seed\":\" \"}",
        "  {\"seed\" : \"a\"}  \n",
        "{\"id\":\"a\",\"seed\":\"a\"}",
        "{\"id\":\"A.b_c-9\",\"seed\":\"a\"}",
        "{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"seed\":\"a\"}",
        "{\"type\":\"delete\",\"id\":\"x\"}",
        "{\"type\":\"delete\",\"seed\":\"x\"}",
        "{\"seed\":\"a\",\"primary\":\"REBECCAPURPLE\",\"foreign\":\"#AbCdEf\"}",
        "{\"seed\":\"a\",\"filter\":\"none\"}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        ck_assert_msg(parse(ok[i], &r, &e) == 0, "%s: %s", ok[i], e.msg);
    char *s = doc_with_seed(JOB_SEED_MAX);
    ck_assert_int_eq(parse(s, &r, &e), 0);
    ck_assert_uint_eq(r.seed_len, 256);
    free(s);
    char *p = doc_padded(JOB_MAX_DOC);
    ck_assert_int_eq(job_parse(p, JOB_MAX_DOC, &L, &r, &e), 0);
    free(p);
    char *d = depth_bomb(15, "[", "]", "{\"seed\":\"a\",\"sizes\":");
    ck_assert_int_eq(parse(d, &r, &e), AQ_EPERM); /* depth is fine; the type is not */
    ck_assert_ptr_nonnull(strstr(e.msg, "sizes[0]: expected an integer, got an array"));
    free(d);
}
END_TEST

START_TEST(delete_jobs)
{
    job_request r, g;
    aq_err e;
    ck_assert_int_eq(parse("{\"type\":\"delete\",\"id\":\"user-1\"}", &r, &e), 0);
    ck_assert_int_eq(r.type, JOB_DELETE);
    ck_assert_str_eq(r.id, "user-1");
    ck_assert_uint_eq(r.seed_len, 0);
    /* with only a seed, the id is the one the generate job got */
    ck_assert_int_eq(parse("{\"type\":\"delete\",\"seed\":\"bob\",\"sizes\":[64]}", &r, &e), 0);
    ck_assert_int_eq(parse("{\"seed\":\"bob\",\"sizes\":[64]}", &g, &e), 0);
    ck_assert_str_eq(r.id, g.id);
    char *j = job_to_json(&r);
    ck_assert_ptr_nonnull(strstr(j, "\"type\":\"delete\""));
    free(j);
}
END_TEST

/* ---- canonical form and derived ids ---- */

static void id_of(const char *doc, char out[JOB_ID_MAX + 1])
{
    job_request r;
    aq_err e;
    ck_assert_msg(parse(doc, &r, &e) == 0, "%s: %s", doc, e.msg);
    strcpy(out, r.id);
}

START_TEST(canonical_pinned)
{
    job_request r;
    aq_err e;
    ck_assert_int_eq(parse("{\"seed\":\"alice\"}", &r, &e), 0);
    char *c = job_canonical(&r);
    ck_assert_str_eq(c, "{\"filter\":\"none\",\"seed\":\"alice\",\"sizes\":[32,64,128,256,512],\"style\":\"pixel\"}");
    /* sha256sum of the line above, computed outside this code */
    ck_assert_str_eq(r.id, "4c3334879a9ef5c7c8e4b85d589be01e3d4424bcf6eb829146ee1c3c4a7e2669");
    char hex[65];
    hash_sha256_hex(c, strlen(c), hex);
    ck_assert_str_eq(hex, r.id);
    free(c);
    /* normalised names, #rrggbb colours, sorted sizes, the angle in hundredths */
    ck_assert_int_eq(parse("{\"seed\":\"a\",\"style\":\"GRADIENT\",\"sizes\":[64,32],\"primary\":\"Red\","
                           "\"foreign\":\"#0F0\",\"scheme\":\"OCEAN\",\"angle\":45.0049,\"filter\":\"Sepia\","
                           "\"id\":\"given\",\"max_attempts\":3,\"created_at\":7,\"v\":1}", &r, &e), 0);
    c = job_canonical(&r);
    ck_assert_str_eq(c, "{\"angle\":45.0,\"filter\":\"sepia\",\"foreign\":\"#00ff00\",\"primary\":\"#ff0000\","
                        "\"scheme\":\"ocean\",\"seed\":\"a\",\"sizes\":[32,64],\"style\":\"gradient\"}");
    free(c);
}
END_TEST

START_TEST(same_request_same_id)
{
    char a[65], b[65];
    static const char *const same[][2] = {
        {"{\"seed\":\"alice\",\"style\":\"wave\",\"sizes\":[64,128]}",
         "{\"sizes\":[64,128],\"style\":\"wave\",\"seed\":\"alice\"}"},
        {"{\"seed\":\"alice\",\"sizes\":[128,64]}", "{\"sizes\":[64,128],\"seed\":\"alice\"}"},
        {"{\"seed\":\"alice\",\"primary\":\"red\"}", "{\"seed\":\"alice\",\"primary\":\"#FF0000\"}"},
        {"{\"seed\":\"alice\",\"primary\":\"#f00\"}", "{\"seed\":\"alice\",\"primary\":\"#ff0000\"}"},
        {"{\"seed\":\"alice\",\"style\":\"PIXEL\"}", "{\"seed\":\"alice\"}"},
        {"{\"seed\":\"alice\",\"style\":\"pixel\",\"sizes\":[32,64,128,256,512],\"filter\":\"none\"}",
         "{\"seed\":\"alice\"}"},
        {"{\"seed\":\"alice\",\"v\":1,\"type\":\"generate\",\"max_attempts\":3,\"created_at\":99}",
         "{\"seed\":\"alice\"}"},
        {"{\"seed\":\"alice\",\"angle\":45}", "{\"seed\":\"alice\",\"angle\":45.001}"},
        {"{\"seed\":\"alice\",\"scheme\":\"Ocean\"}", "{\"seed\":\"alice\",\"scheme\":\"ocean\"}"},
        {"{\"seed\":\"\\u00e9\"}", "{\"seed\":\"\xc3\xa9\"}"},
        {"{ \"seed\" : \"alice\" }", "{\"seed\":\"alice\"}"},
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        id_of(same[i][0], a);
        id_of(same[i][1], b);
        ck_assert_msg(strcmp(a, b) == 0, "%s and %s: different ids", same[i][0], same[i][1]);
    }
    static const char *const differ[][2] = {
        {"{\"seed\":\"alice\"}", "{\"seed\":\"alicf\"}"},
        {"{\"seed\":\"alice\"}", "{\"seed\":\"Alice\"}"},
        {"{\"seed\":\"alice\"}", "{\"seed\":\"alice\",\"style\":\"wave\"}"},
        {"{\"seed\":\"alice\"}", "{\"seed\":\"alice\",\"sizes\":[64]}"},
        {"{\"seed\":\"alice\"}", "{\"seed\":\"alice\",\"primary\":\"red\"}"},
        {"{\"seed\":\"alice\",\"primary\":\"red\"}", "{\"seed\":\"alice\",\"foreign\":\"red\"}"},
        {"{\"seed\":\"alice\"}", "{\"seed\":\"alice\",\"filter\":\"negative\"}"},
        {"{\"seed\":\"alice\",\"angle\":45}", "{\"seed\":\"alice\",\"angle\":46}"},
    };
    for (size_t i = 0; i < sizeof differ / sizeof differ[0]; i++) {
        id_of(differ[i][0], a);
        id_of(differ[i][1], b);
        ck_assert_msg(strcmp(a, b) != 0, "%s and %s: the same id", differ[i][0], differ[i][1]);
    }
}
END_TEST

/* job_to_json() gives a document that parses back to the same request. */
static void assert_round_trip(const job_request *r)
{
    char *j = job_to_json(r);
    ck_assert_ptr_nonnull(j);
    ck_assert_ptr_nonnull(strstr(j, "\"v\":1"));
    job_request b;
    aq_err e;
    ck_assert_msg(job_parse(j, strlen(j), &L, &b, &e) == 0, "%s: %s", j, e.msg);
    ck_assert_str_eq(b.id, r->id);
    ck_assert_int_eq(b.type, r->type);
    ck_assert_uint_eq(b.seed_len, r->seed_len);
    ck_assert_mem_eq(b.seed, r->seed, r->seed_len);
    if (r->seed_len || r->type == JOB_GENERATE) {
        ck_assert_int_eq(b.style, r->style);
        ck_assert_uint_eq(b.nsizes, r->nsizes);
        ck_assert_mem_eq(b.sizes, r->sizes, r->nsizes * sizeof r->sizes[0]);
        ck_assert_str_eq(b.primary, r->primary);
        ck_assert_str_eq(b.foreign, r->foreign);
        ck_assert_str_eq(b.scheme, r->scheme);
        ck_assert_int_eq(b.filter, r->filter);
        ck_assert_mem_eq(&b.render, &r->render, sizeof b.render);
        char *c1 = job_canonical(r), *c2 = job_canonical(&b);
        ck_assert_str_eq(c1, c2);
        free(c1);
        free(c2);
    }
    ck_assert_int_eq(b.max_attempts, r->max_attempts);
    ck_assert_int_eq(b.created_at, r->created_at);
    free(j);
}

START_TEST(to_json_round_trip)
{
    job_request r;
    aq_err e;
    const char *docs[] = {
        "{\"seed\":\"alice\"}",
        ("{\"seed\":\"a\\\"b\\\\c\\n\",\"style\":\"wave\",\"sizes\":[64,32],\"primary\":\"Red\",\"angle\":45.1,"
         "\"filter\":\"grayscale\",\"max_attempts\":3,\"created_at\":1764000000000}"),
        "{\"id\":\"given\",\"seed\":\"x\",\"scheme\":\"sunset\",\"angle\":0}",
        "{\"type\":\"delete\",\"id\":\"gone\"}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        ck_assert_msg(parse(docs[i], &r, &e) == 0, "%s", e.msg);
        assert_round_trip(&r);
    }
    /* the derived id travels in the document, so a retry keeps it */
    ck_assert_int_eq(parse("{\"seed\":\"alice\"}", &r, &e), 0);
    char *j = job_to_json(&r);
    ck_assert_ptr_nonnull(strstr(j, "\"id\":\"4c3334879a9ef5c7c8e4b85d589be01e3d4424bcf6eb829146ee1c3c4a7e2669\""));
    free(j);
}
END_TEST

/* ---- requests built in code ---- */

START_TEST(init_finish)
{
    job_request r, p;
    aq_err e;
    job_init(&r, &L);
    strcpy(r.seed, "alice"); /* seed_len left 0: job_finish measures it */
    ck_assert_int_eq(job_finish(&r, &L, &e), 0);
    ck_assert_str_eq(r.id, "4c3334879a9ef5c7c8e4b85d589be01e3d4424bcf6eb829146ee1c3c4a7e2669");

    /* the same request as flags and as a document: the same id and params */
    job_init(&r, &L);
    strcpy(r.seed, "bob");
    r.seed_len = 3;
    r.style = render_style_find("classic");
    r.sizes[0] = 128, r.sizes[1] = 64, r.nsizes = 2;
    strcpy(r.primary, "Teal");
    strcpy(r.scheme, "FOREST");
    r.filter = FILTER_NEGATIVE;
    ck_assert_msg(job_finish(&r, &L, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(parse("{\"seed\":\"bob\",\"style\":\"classic\",\"sizes\":[128,64],\"primary\":\"teal\","
                           "\"scheme\":\"forest\",\"filter\":\"negative\"}", &p, &e), 0);
    ck_assert_str_eq(r.id, p.id);
    ck_assert_str_eq(r.primary, "teal");
    ck_assert_str_eq(r.scheme, "forest");
    ck_assert_mem_eq(&r.render, &p.render, sizeof r.render);
    assert_round_trip(&r);

    /* the same messages as job_parse() */
    job_init(&r, &L);
    strcpy(r.seed, "a");
    r.sizes[0] = 9, r.nsizes = 1;
    ck_assert_int_eq(job_finish(&r, &L, &e), AQ_EPERM);
    ck_assert_str_eq(e.msg, "sizes[0]: 9 is below 16");
    ck_assert_int_eq(parse("{\"seed\":\"a\",\"sizes\":[9]}", &p, &e), AQ_EPERM);
    ck_assert_str_eq(e.msg, "sizes[0]: 9 is below 16");

    job_init(&r, &L);
    strcpy(r.seed, "a");
    strcpy(r.primary, "blurple");
    ck_assert_int_eq(job_finish(&r, &L, &e), AQ_EPERM);
    char m1[512];
    strcpy(m1, e.msg);
    ck_assert_int_eq(parse("{\"seed\":\"a\",\"primary\":\"blurple\"}", &p, &e), AQ_EPERM);
    ck_assert_str_eq(m1, e.msg);

    job_init(&r, &L);
    strcpy(r.seed, "a");
    r.angle = NAN;
    ck_assert_int_eq(job_finish(&r, &L, &e), AQ_EPERM);
    ck_assert_str_eq(e.msg, "angle: not a finite number");

    job_init(&r, &L);
    memcpy(r.seed, "a\0b", 3);
    r.seed_len = 3;
    ck_assert_int_eq(job_finish(&r, &L, &e), AQ_EPERM);
    ck_assert_str_eq(e.msg, "seed: contains a NUL character (\\u0000) at byte 1");

    job_init(&r, &L);
    strcpy(r.seed, "\xff\xfe");
    ck_assert_int_eq(job_finish(&r, &L, &e), AQ_EPERM);
    ck_assert_str_eq(e.msg, "seed: '\\xff\\xfe' is not valid UTF-8");

    job_init(&r, &L);
    ck_assert_int_eq(job_finish(&r, &L, &e), AQ_EPERM);
    ck_assert_str_eq(e.msg, "seed: required for a generate job (1 to 256 bytes)");

    job_init(&r, &L);
    strcpy(r.seed, "a");
    strcpy(r.id, "../x");
    r.id_given = true;
    ck_assert_int_eq(job_finish(&r, &L, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "id: '../x' is not a valid id"));

    job_init(&r, &L);
    r.type = JOB_DELETE;
    ck_assert_int_eq(job_finish(&r, &L, &e), AQ_EPERM);
    ck_assert_str_eq(e.msg, "id: a delete job needs an id or a seed");

    job_init(&r, &L);
    strcpy(r.seed, "a");
    r.max_attempts = 26;
    ck_assert_int_eq(job_finish(&r, &L, &e), AQ_EPERM);
    ck_assert_str_eq(e.msg, "max_attempts: 26 is outside 1..25");

    job_init(&r, &L);
    strcpy(r.seed, "a");
    r.style = 99;
    ck_assert_int_eq(job_finish(&r, &L, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "style: 99 is not a style"));
}
END_TEST

START_TEST(id_rule)
{
    static const struct { const char *id; bool ok; } t[] = {
        {"a", true}, {"user-42", true}, {"A.b_c-9", true}, {"a.", true}, {"-x", true}, {"_", true},
        {"", false}, {".", false}, {"..", false}, {".hidden", false}, {"../x", false}, {"a/b", false},
        {"a\\b", false}, {"a b", false}, {"a:b", false}, {"é", false}, {"a\n", false}, {NULL, false},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        ck_assert_msg(job_id_valid(t[i].id) == t[i].ok, "%s", t[i].id ? t[i].id : "(null)");
    char id[70];
    memset(id, 'a', 64);
    id[64] = '\0';
    ck_assert(job_id_valid(id));
    strcat(id, "a");
    ck_assert(!job_id_valid(id));
}
END_TEST

START_TEST(limits_from_config)
{
    aq_config c;
    aq_err e;
    job_limits l;
    config_defaults(&c);
    c.render.max_size = 256;
    c.render.default_sizes[0] = 48;
    c.render.n_default_sizes = 1;
    snprintf(c.render.default_style, sizeof c.render.default_style, "wave");
    ck_assert_int_eq(job_limits_from_config(&l, &c, &e), 0);
    ck_assert_int_eq(l.max_size, 256);
    ck_assert_int_eq(l.default_style, render_style_find("wave"));
    job_request r;
    ck_assert_int_eq(job_parse("{\"seed\":\"a\"}", 12, &l, &r, &e), 0);
    ck_assert_uint_eq(r.nsizes, 1);
    ck_assert_int_eq(r.sizes[0], 48);
    ck_assert_int_eq(r.style, render_style_find("wave"));
    ck_assert_int_eq(job_parse("{\"seed\":\"a\",\"sizes\":[512]}", 26, &l, &r, &e), AQ_EPERM);
    ck_assert_str_eq(e.msg, "sizes[0]: 512 is above max_size 256");
    snprintf(c.render.default_style, sizeof c.render.default_style, "nope");
    ck_assert_int_eq(job_limits_from_config(&l, &c, &e), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(e.msg, "default_style"));
}
END_TEST

/* ---- never crash ---- */

/* Every file below dir (a fuzz corpus or the crash regressions) goes
 * through job_parse(); what parses must survive a round trip. */
static size_t replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        if (de->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        static char data[JOB_MAX_DOC * 2];
        size_t len = fread(data, 1, sizeof data, f);
        fclose(f);
        job_request r;
        aq_err e;
        if (job_parse(data, len, &L, &r, &e) == 0)
            assert_round_trip(&r);
        else
            ck_assert_msg(e.msg[0] != '\0', "%s: failed without a message", path);
        n++;
    }
    closedir(d);
    return n;
}

START_TEST(fuzz_regressions_replay)
{
    size_t n = replay_dir("tests/fuzz/regressions/job");
    size_t m = replay_dir("tests/fuzz/corpus/job");
    fprintf(stderr, "replayed %zu regression and %zu corpus documents\n", n, m);
}
END_TEST

/* Seeded mutations of good documents: nothing crashes or leaks (ASan run),
 * every failure has a message, everything accepted round-trips. */
START_TEST(mutations_never_crash)
{
    static const char *const seeds[] = {
        "{\"v\":1,\"id\":\"user-42\",\"seed\":\"alice\",\"style\":\"gradient\",\"sizes\":[64,128],"
        "\"primary\":\"#ff0000\",\"foreign\":\"navy\",\"angle\":45.5,\"filter\":\"sepia\",\"max_attempts\":3}",
        "{\"type\":\"delete\",\"seed\":\"bob\",\"scheme\":\"ocean\",\"created_at\":1764000000000}",
    };
    static const char alphabet[] = "{}[]\",:\\u0009.-+eE \x00\xff\xc3\xa9" "abcdefnrtlsuv0123456789";
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    size_t accepted = 0;
    for (int i = 0; i < 20000; i++) {
        char doc[512];
        const char *s = seeds[i % 2];
        size_t len = strlen(s);
        memcpy(doc, s, len);
        int edits = 1 + (int)(x % 4);
        for (int k = 0; k < edits; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t pos = (size_t)(x >> 8) % len;
            char ch = alphabet[(x >> 40) % (sizeof alphabet - 1)];
            switch (x % 3) {
            case 0: doc[pos] = ch; break;                                    /* replace */
            case 1: if (len < sizeof doc - 1) { memmove(doc + pos + 1, doc + pos, len - pos); doc[pos] = ch; len++; } break;
            default: memmove(doc + pos, doc + pos + 1, len - pos - 1); len--; break; /* delete */
            }
        }
        job_request r;
        aq_err e;
        err_clear(&e);
        if (job_parse(doc, len, &L, &r, &e) == 0) {
            accepted++;
            assert_round_trip(&r);
        } else {
            ck_assert(e.msg[0] != '\0');
        }
    }
    ck_assert_uint_gt(accepted, 100); /* the run reached the field checks too */
}
END_TEST

/* The tests read files of the source tree (the fuzz inputs, config.ini):
 * run from its root, as tests/run.sh does, or from any directory below. */
static void chdir_to_tree(void)
{
    for (int up = 0; up < 6; up++) {
        if (access("tests/fuzz/run.sh", F_OK) == 0)
            return;
        if (chdir("..") != 0)
            return;
    }
}

int main(void)
{
    chdir_to_tree();
    Suite *s = suite_create("job");
    TCase *tc = tcase_create("job");
    tcase_add_unchecked_fixture(tc, limits_setup, NULL);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, bad_documents, 0, (int)(sizeof BAD / sizeof BAD[0]));
    tcase_add_test(tc, bad_generated_documents);
    tcase_add_test(tc, defaults_applied);
    tcase_add_test(tc, every_field);
    tcase_add_test(tc, edges_accepted);
    tcase_add_test(tc, delete_jobs);
    tcase_add_test(tc, canonical_pinned);
    tcase_add_test(tc, same_request_same_id);
    tcase_add_test(tc, to_json_round_trip);
    tcase_add_test(tc, init_finish);
    tcase_add_test(tc, id_rule);
    tcase_add_test(tc, limits_from_config);
    tcase_add_test(tc, fuzz_regressions_replay);
    tcase_add_test(tc, mutations_never_crash);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
