/* Hostile input end to end (issue 6): a table of documents that break the
 * protocol in every way we could think of, pushed with raw binary-safe
 * LPUSHes to one running bin/avatarq-worker. Each must end in NS:dead with
 * a reason that names what is wrong (docs/protocol.md: "never crashes a worker
 * and is never retried"), its NS:job:ID dead when it carried a usable id,
 * and nothing may be written outside the storage root. The worker stays
 * up throughout: same supervisor, same worker processes, and a good job
 * pushed after all of them is done.
 *
 * The table runs twice: one document at a time (so each dead letter is
 * known to be that document's, and its reason is checked), then all of
 * them at once in one pipeline (the workers meet them back to back), whose
 * reasons must be the same multiset. */
#include <check.h>
#include <dirent.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "queue.h"
#include "support.h"
#include "support_worker.h"

#define MB (1024 * 1024)
#define RAW_KEEP QUEUE_DEAD_RAW_MAX /* what a dead letter keeps of a raw document */

/* One hostile document: its bytes, the substring its dead letter's error
 * must hold, the job id it carries when that id is usable ("": none, so no
 * job hash may appear), and whether the dead letter wraps it as {"raw":..}
 * (not a JSON object, not JSON, or too big to parse). */
typedef struct hostile {
    const char *name;
    const char *doc;   /* NULL: made by make_doc() from name */
    size_t len;        /* 0 with doc: strlen(doc) */
    const char *error;
    const char *id;
    bool raw;
} hostile;

#define OBJ(name, doc, error, id) {name, doc, 0, error, id, false}
#define RAW(name, doc, error) {name, doc, 0, error, "", true}

static const hostile TABLE[] = {
    /* not JSON, or not an object */
    {"empty document", "", 0, "document: empty", "", true},
    RAW("whitespace only", "   \n", "invalid JSON"),
    RAW("truncated object", "{\"seed\":\"a\"", "invalid JSON"),
    RAW("trailing garbage", "{\"seed\":\"a\"} x", "invalid JSON"),
    RAW("single quotes", "{'seed':'a'}", "invalid JSON"),
    RAW("trailing comma", "{\"seed\":\"a\",}", "invalid JSON"),
    RAW("bare string", "\"generate me\"", "must be a JSON object, got string"),
    RAW("bare number", "42", "must be a JSON object, got integer 42"),
    RAW("bare array", "[{\"seed\":\"a\"}]", "must be a JSON object, got an array"),
    RAW("bare null", "null", "must be a JSON object, got null"),
    RAW("bare true", "true", "must be a JSON object, got true"),
    RAW("NaN", "{\"id\":\"h-nan\",\"seed\":\"a\",\"angle\":NaN}", "invalid JSON"),
    RAW("Infinity", "{\"id\":\"h-inf\",\"seed\":\"a\",\"angle\":Infinity}", "invalid JSON"),
    RAW("real overflow", "{\"seed\":\"a\",\"angle\":1e999}", "invalid JSON"),
    RAW("integer overflow", "{\"seed\":\"a\",\"sizes\":[99999999999999999999999]}", "invalid JSON"),
    /* still an object to the dead letter's writer (the last value wins),
     * and not parsed far enough to have a usable id: no job hash */
    {"duplicate keys", "{\"id\":\"h-dup\",\"seed\":\"a\",\"seed\":\"b\"}", 0,
     "duplicate object key", "", false},
    RAW("byte order mark", "\xef\xbb\xbf{\"seed\":\"a\"}", "invalid JSON"),
    RAW("lone surrogate", "{\"seed\":\"\\ud800\"}", "invalid JSON"),
    {"invalid UTF-8", "{\"seed\":\"\xff\xfe\xc0\xaf\"}", 0, "invalid JSON", "", true},
    {"NUL byte in the document", "{\"seed\":\"a\0b\"}", 14, "invalid JSON", "", true},
    {"100,000 '['", NULL, 0, "100000 bytes, more than 65536", "", true},
    {"60,000 '['", NULL, 0, "nested deeper than 16", "", true},
    {"30,000 '[' then 30,000 ']'", NULL, 0, "nested deeper than 16", "", true},
    {"20 nested objects", NULL, 0, "nested deeper than 16", "", false},
    {"over 64 KiB", NULL, 0, "more than 65536", "", true},
    {"1 MB seed", NULL, 0, "more than 65536", "", true},
    {"1 MB of binary garbage", NULL, 0, "more than 65536", "", true},
    /* version, unknown fields */
    OBJ("unknown version 2", "{\"v\":2,\"id\":\"h-v2\",\"seed\":\"a\"}", "unsupported protocol version 2", "h-v2"),
    OBJ("version as real", "{\"v\":1.0,\"id\":\"h-vreal\",\"seed\":\"a\"}", "v: expected an integer, got real 1.0", "h-vreal"),
    OBJ("version as string", "{\"v\":\"1\",\"id\":\"h-vstr\",\"seed\":\"a\"}", "v: expected an integer", "h-vstr"),
    OBJ("unknown field", "{\"id\":\"h-unk\",\"seed\":\"a\",\"colour\":\"red\"}", "unknown field 'colour'", "h-unk"),
    /* the wrong type for every field */
    OBJ("id as number", "{\"id\":5,\"seed\":\"a\"}", "id: expected a string, got integer 5", ""),
    OBJ("type as number", "{\"id\":\"h-t1\",\"type\":1,\"seed\":\"a\"}", "type: expected a string", "h-t1"),
    OBJ("seed as number", "{\"id\":\"h-s1\",\"seed\":12}", "seed: expected a string, got integer 12", "h-s1"),
    OBJ("style as array", "{\"id\":\"h-st\",\"seed\":\"a\",\"style\":[\"pixel\"]}", "style: expected a string, got an array", "h-st"),
    OBJ("sizes as string", "{\"id\":\"h-sz\",\"seed\":\"a\",\"sizes\":\"32\"}", "sizes: expected an array of integers", "h-sz"),
    OBJ("sizes of strings", "{\"id\":\"h-szs\",\"seed\":\"a\",\"sizes\":[\"32\"]}", "sizes[0]: expected an integer, got string '32'", "h-szs"),
    OBJ("size as real", "{\"id\":\"h-szr\",\"seed\":\"a\",\"sizes\":[64,32.0]}", "sizes[1]: expected an integer, got real 32.0", "h-szr"),
    OBJ("primary as number", "{\"id\":\"h-p\",\"seed\":\"a\",\"primary\":255}", "primary: expected a string", "h-p"),
    OBJ("foreign as bool", "{\"id\":\"h-f\",\"seed\":\"a\",\"foreign\":true}", "foreign: expected a string, got true", "h-f"),
    OBJ("scheme as null", "{\"id\":\"h-sc\",\"seed\":\"a\",\"scheme\":null}", "scheme: expected a string, got null", "h-sc"),
    OBJ("angle as string", "{\"id\":\"h-a\",\"seed\":\"a\",\"angle\":\"90\"}", "angle: expected a number", "h-a"),
    OBJ("filter as object", "{\"id\":\"h-fi\",\"seed\":\"a\",\"filter\":{}}", "filter: expected a string, got an object", "h-fi"),
    OBJ("max_attempts as string", "{\"id\":\"h-m\",\"seed\":\"a\",\"max_attempts\":\"3\"}", "max_attempts: expected an integer", "h-m"),
    OBJ("created_at as real", "{\"id\":\"h-c\",\"seed\":\"a\",\"created_at\":1.5}", "created_at: expected an integer", "h-c"),
    /* values out of range */
    OBJ("size 0", "{\"id\":\"h-0\",\"seed\":\"a\",\"sizes\":[0]}", "sizes[0]: 0 is below 16", "h-0"),
    OBJ("size 10^9", "{\"id\":\"h-1e9\",\"seed\":\"a\",\"sizes\":[1000000000]}", "sizes[0]: 1000000000 is above max_size", "h-1e9"),
    OBJ("negative size", "{\"id\":\"h-neg\",\"seed\":\"a\",\"sizes\":[32,-32]}", "sizes[1]: -32 is below 16", "h-neg"),
    {"17 sizes", NULL, 0, "sizes: 17 sizes, at most 16", "h-17", false},
    OBJ("no sizes", "{\"id\":\"h-nos\",\"seed\":\"a\",\"sizes\":[]}", "sizes: must not be empty", "h-nos"),
    OBJ("size twice", "{\"id\":\"h-twice\",\"seed\":\"a\",\"sizes\":[32,64,32]}", "sizes[2]: 32 appears twice", "h-twice"),
    OBJ("negative angle", "{\"id\":\"h-an\",\"seed\":\"a\",\"style\":\"gradient\",\"angle\":-1}", "angle: -1 is outside 0..360", "h-an"),
    OBJ("angle 361", "{\"id\":\"h-a361\",\"seed\":\"a\",\"style\":\"gradient\",\"angle\":361}", "angle: 361 is outside 0..360", "h-a361"),
    OBJ("colour 'notacolour'", "{\"id\":\"h-col\",\"seed\":\"a\",\"primary\":\"notacolour\"}", "primary: 'notacolour' is not a colour", "h-col"),
    OBJ("colour '#12345'", "{\"id\":\"h-hex\",\"seed\":\"a\",\"foreign\":\"#12345\"}", "foreign: '#12345' is not a colour", "h-hex"),
    OBJ("scheme 'nope'", "{\"id\":\"h-nope\",\"seed\":\"a\",\"scheme\":\"nope\"}", "scheme: 'nope' is not a colour scheme", "h-nope"),
    OBJ("filter 'blur'", "{\"id\":\"h-blur\",\"seed\":\"a\",\"filter\":\"blur\"}", "filter: 'blur' is not a filter", "h-blur"),
    OBJ("style 'cubist'", "{\"id\":\"h-cub\",\"seed\":\"a\",\"style\":\"cubist\"}", "style: 'cubist' is not a style", "h-cub"),
    OBJ("max_attempts 0", "{\"id\":\"h-m0\",\"seed\":\"a\",\"max_attempts\":0}", "max_attempts: 0 is outside 1..25", "h-m0"),
    OBJ("max_attempts 26", "{\"id\":\"h-m26\",\"seed\":\"a\",\"max_attempts\":26}", "max_attempts: 26 is outside 1..25", "h-m26"),
    OBJ("type 'explode'", "{\"id\":\"h-boom\",\"type\":\"explode\",\"seed\":\"a\"}", "type: 'explode' is not a job type", "h-boom"),
    OBJ("type in capitals", "{\"id\":\"h-cap\",\"type\":\"GENERATE\",\"seed\":\"a\"}", "type: 'GENERATE' is not a job type", "h-cap"),
    OBJ("negative created_at", "{\"id\":\"h-cn\",\"seed\":\"a\",\"created_at\":-5}", "created_at: -5 is negative", "h-cn"),
    /* seeds */
    OBJ("no seed", "{\"id\":\"h-noseed\"}", "seed: required for a generate job", "h-noseed"),
    OBJ("empty seed", "{\"id\":\"h-es\",\"seed\":\"\"}", "seed: must not be empty", "h-es"),
    {"257-byte seed", NULL, 0, "seed: 257 bytes, more than 256", "h-257", false},
    {"60,000 '[' in a seed", NULL, 0, "seed: 60000 bytes, more than 256", "h-brackets", false},
    /* the dead letter keeps this object as an object (JSON_ALLOW_NUL), so
     * `dead retry` could hand it back; the job hash goes dead */
    {"seed with \\u0000", "{\"id\":\"h-nul\",\"seed\":\"ab\\u0000cd\"}",
     0, "seed: contains a NUL character (\\u0000) at byte 2", "h-nul", false},
    OBJ("delete without id or seed", "{\"type\":\"delete\"}", "id: a delete job needs an id or a seed", ""),
    /* ids that would leave the storage root, or are no ids */
    OBJ("id '../x'", "{\"id\":\"../x\",\"seed\":\"a\"}", "id: '../x' is not a valid id", ""),
    OBJ("id '../../../aqhostile-up'", "{\"id\":\"../../../aqhostile-up\",\"seed\":\"a\",\"sizes\":[16]}", "id: '../../../aqhostile-up' is not a valid id", ""),
    OBJ("id 'a/b'", "{\"id\":\"a/b\",\"seed\":\"a\"}", "id: 'a/b' is not a valid id", ""),
    OBJ("id '.hidden'", "{\"id\":\".hidden\",\"seed\":\"a\"}", "id: '.hidden' is not a valid id", ""),
    OBJ("id '..'", "{\"id\":\"..\",\"seed\":\"a\"}", "id: '..' is not a valid id", ""),
    OBJ("id '/etc/passwd'", "{\"id\":\"/etc/passwd\",\"seed\":\"a\"}", "id: '/etc/passwd' is not a valid id", ""),
    OBJ("id ''", "{\"id\":\"\",\"seed\":\"a\"}", "id: '' is not a valid id", ""),
    {"id with NUL", "{\"id\":\"ok\\u0000/../x\",\"seed\":\"a\"}", 0, "is not a valid id", "", false},
    OBJ("id with a space", "{\"id\":\"a b\",\"seed\":\"a\"}", "id: 'a b' is not a valid id", ""),
    OBJ("id 'é'", "{\"id\":\"\xc3\xa9\",\"seed\":\"a\"}", "is not a valid id", ""),
    {"65-character id", NULL, 0, "is not a valid id", "", false},
    OBJ("delete '../../../aqhostile-del'", "{\"type\":\"delete\",\"id\":\"../../../aqhostile-del\"}", "id: '../../../aqhostile-del' is not a valid id", ""),
};
#define NTABLE (sizeof TABLE / sizeof *TABLE)

static wh H;
static char *ENV[] = {"AVATARQ_LOG_LEVEL=info", NULL};

static void setup(void)
{
    wh_setup(&H, false, "processes = 2\n");
}

static void teardown(void)
{
    wh_teardown(&H);
}

/* The documents too big or too regular to write out: made by name. */
static void make_doc(const hostile *h, buf *out)
{
    out->len = 0;
    const char *n = h->name;
    int depth = strcmp(n, "100,000 '['") == 0 ? 100000
              : strcmp(n, "60,000 '['") == 0 ? 60000
              : strcmp(n, "30,000 '[' then 30,000 ']'") == 0 ? 30000 : 0;
    if (depth) {
        for (int i = 0; i < depth; i++)
            buf_append(out, "[", 1);
        for (int i = 0; depth == 30000 && i < depth; i++)
            buf_append(out, "]", 1);
    } else if (strcmp(n, "20 nested objects") == 0) {
        for (int i = 0; i < 20; i++)
            buf_append(out, "{\"a\":", 5);
        buf_append(out, "1", 1);
        for (int i = 0; i < 20; i++)
            buf_append(out, "}", 1);
    } else if (strcmp(n, "over 64 KiB") == 0 || strcmp(n, "1 MB seed") == 0) {
        bool big = n[0] == '1';
        const char *head = big ? "{\"id\":\"h-1mb\",\"seed\":\"" : "{\"id\":\"h-64k\",\"seed\":\"a\",\"style\":\"";
        buf_append(out, head, strlen(head));
        for (int i = 0; i < (big ? MB : 64 * 1024); i++)
            buf_append(out, "x", 1);
        buf_append(out, "\"}", 2);
    } else if (strcmp(n, "1 MB of binary garbage") == 0) {
        unsigned x = 12345;
        for (int i = 0; i < MB; i++) {
            x = x * 1103515245u + 12345u;
            uint8_t b = (uint8_t)(x >> 16);
            buf_append(out, &b, 1);
        }
    } else if (strcmp(n, "17 sizes") == 0) {
        const char *head = "{\"id\":\"h-17\",\"seed\":\"a\",\"sizes\":[16";
        buf_append(out, head, strlen(head));
        for (int i = 1; i < 17; i++) {
            char s[16];
            snprintf(s, sizeof s, ",%d", 16 + i);
            buf_append(out, s, strlen(s));
        }
        buf_append(out, "]}", 2);
    } else if (strcmp(n, "257-byte seed") == 0 || strcmp(n, "60,000 '[' in a seed") == 0) {
        bool brackets = n[0] == '6';
        const char *head = brackets ? "{\"id\":\"h-brackets\",\"seed\":\"" : "{\"id\":\"h-257\",\"seed\":\"";
        buf_append(out, head, strlen(head));
        for (int i = 0; i < (brackets ? 60000 : 257); i++)
            buf_append(out, brackets ? "[" : "s", 1);
        buf_append(out, "\"}", 2);
    } else if (strcmp(n, "65-character id") == 0) {
        buf_append(out, "{\"id\":\"", 7);
        for (int i = 0; i < 65; i++)
            buf_append(out, "i", 1);
        buf_append(out, "\",\"seed\":\"a\"}", 13);
    } else {
        ck_abort_msg("no maker for '%s'", n);
    }
}

/* The bytes of h (in scratch when made). */
static void doc_of(const hostile *h, buf *scratch, const char **doc, size_t *len)
{
    if (h->doc) {
        *doc = h->doc;
        *len = h->len ? h->len : strlen(h->doc);
        return;
    }
    make_doc(h, scratch);
    *doc = (const char *)scratch->data;
    *len = scratch->len;
}

static bool wait_dead_count(long long n, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 5) {
        if (wh_int(&H, "LLEN " WH_NS ":dead") >= n)
            return true;
        sup_sleep_ms(5);
    }
    return false;
}

/* Checks the dead letter of h (the newest entry of NS:dead) and h's job
 * hash; returns the error it carries (malloc'd). */
static char *check_dead_letter(const hostile *h, size_t len)
{
    redisReply *rep = redisCommand(H.rc, "LINDEX " WH_NS ":dead 0");
    ck_assert(rep && rep->type == REDIS_REPLY_STRING);
    json_error_t je;
    /* JSON_ALLOW_NUL: a raw document with a NUL byte keeps it as \u0000,
     * which is valid JSON that jansson only refuses by default */
    json_t *o = json_loadb(rep->str, rep->len, JSON_ALLOW_NUL, &je);
    ck_assert_msg(json_is_object(o), "%s: dead letter is not a JSON object: %s", h->name, je.text);
    freeReplyObject(rep);
    const char *err = json_string_value(json_object_get(o, "error"));
    ck_assert_msg(err && strstr(err, h->error), "%s: error '%s' lacks '%s'", h->name,
                  err ? err : "(none)", h->error);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "attempts")), 1);
    ck_assert_int_gt(json_integer_value(json_object_get(o, "failed_at")), 0);
    json_t *raw = json_object_get(o, "raw");
    /* every hostile document is refused: over RAW_KEEP bytes it is kept as
     * a wrapper too (head, size, SHA-256), never whole */
    bool wrapped = h->raw || len > RAW_KEEP;
    ck_assert_msg(wrapped == json_is_string(raw), "%s: raw wrapper %s", h->name,
                  wrapped ? "missing" : "unexpected");
    if (wrapped && len > RAW_KEEP) {
        ck_assert_int_eq(json_string_length(json_object_get(o, "raw_sha256")), 64);
        ck_assert_int_eq(json_string_length(raw), RAW_KEEP);
        ck_assert_int_eq(json_integer_value(json_object_get(o, "raw_bytes")), (json_int_t)len);
    }
    if (h->id[0]) {
        if (!wrapped)
            ck_assert_str_eq(json_string_value(json_object_get(o, "id")), h->id);
        /* an invalid document touches only the dead list (issue 13) */
        ck_assert_int_eq(wh_int(&H, "EXISTS " WH_NS ":job:%s", h->id), 0);
    }
    char *copy = strdup(err);
    json_decref(o);
    return copy;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Errors of the n newest dead letters, sorted (malloc'd strings). */
static char **newest_errors(size_t n)
{
    redisReply *rep = redisCommand(H.rc, "LRANGE " WH_NS ":dead 0 %d", (int)n - 1);
    ck_assert(rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == n);
    char **out = calloc(n, sizeof *out);
    ck_assert(out);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_loadb(rep->element[i]->str, rep->element[i]->len, JSON_ALLOW_NUL, NULL);
        const char *err = json_string_value(json_object_get(o, "error"));
        out[i] = strdup(err ? err : "");
        json_decref(o);
    }
    freeReplyObject(rep);
    qsort(out, n, sizeof *out, cmp_str);
    return out;
}

/* Every file below dir that is not one we expect: config.ini, worker.log,
 * the SQLite files, and root/avatars/<good>/<size>.png. Prints and counts
 * the others. */
static int unexpected_files(const char *dir, const char *rel, const char *good)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *ent; d && (ent = readdir(d));) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        char path[1024], r[1024];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", ent->d_name);
        struct stat st;
        if (lstat(path, &st) != 0)
            continue;
        char good_dir[128];
        snprintf(good_dir, sizeof good_dir, "root/avatars/%s", good);
        if (S_ISDIR(st.st_mode) && (strcmp(r, "root") == 0 || strcmp(r, "root/avatars") == 0 ||
                                    strcmp(r, good_dir) == 0)) {
            n += unexpected_files(path, r, good);
            continue;
        }
        bool ok = S_ISREG(st.st_mode) &&
                  (strcmp(r, "config.ini") == 0 || strcmp(r, "worker.log") == 0 ||
                   strncmp(r, "meta.db", 7) == 0 ||
                   (strncmp(r, good_dir, strlen(good_dir)) == 0 &&
                    (strcmp(ent->d_name, "16.png") == 0 || strcmp(ent->d_name, "32.png") == 0)));
        if (!ok) {
            fprintf(stderr, "hostile: unexpected file %s\n", path);
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* Lines of the worker log that tell of a worker process ending or
 * (re)starting, of a crash or a sanitizer report. */
static int count_log(const char *needle)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "grep -c -- '%s' '%s'", needle, H.log);
    buf out = BUF_INIT;
    sup_run(cmd, &out, false);
    int n = out.data ? atoi((const char *)out.data) : 0;
    buf_free(&out);
    return n;
}

START_TEST(t_hostile_table)
{
    ck_assert_int_ge(NTABLE, 40);
    wh_start(&H, ENV);
    ck_assert_msg(wh_wait_int(&H, 2, 20000, "SCARD " WH_NS ":workers"), "pool not up");
    pid_t sup = H.pid, before[2], after[2];
    ck_assert_int_eq(wh_worker_pids(&H, before, 2), 2);

    /* one at a time: each dead letter is known to be that document's */
    buf scratch = BUF_INIT;
    char **errors = calloc(NTABLE, sizeof *errors);
    ck_assert(errors);
    for (size_t i = 0; i < NTABLE; i++) {
        const char *doc;
        size_t len;
        doc_of(&TABLE[i], &scratch, &doc, &len);
        wh_push(&H, doc, len);
        ck_assert_msg(wait_dead_count((long long)i + 1, 20000), "%s: never reached " WH_NS ":dead",
                      TABLE[i].name);
        errors[i] = check_dead_letter(&TABLE[i], len);
    }
    qsort(errors, NTABLE, sizeof *errors, cmp_str);

    /* all at once, in one pipeline: the same reasons */
    for (size_t i = 0; i < NTABLE; i++) {
        const char *doc;
        size_t len;
        doc_of(&TABLE[i], &scratch, &doc, &len);
        redisAppendCommand(H.rc, "LPUSH " WH_NS ":queue:default %b", doc, len);
    }
    for (size_t i = 0; i < NTABLE; i++) {
        redisReply *rep = NULL;
        ck_assert(redisGetReply(H.rc, (void **)&rep) == REDIS_OK && rep &&
                  rep->type == REDIS_REPLY_INTEGER);
        freeReplyObject(rep);
    }
    buf_free(&scratch);
    ck_assert_msg(wait_dead_count(2 * (long long)NTABLE, 30000), "burst: %lld of %zu dead",
                  wh_int(&H, "LLEN " WH_NS ":dead") - (long long)NTABLE, NTABLE);
    char **burst = newest_errors(NTABLE);
    for (size_t i = 0; i < NTABLE; i++) {
        ck_assert_str_eq(burst[i], errors[i]);
        free(burst[i]);
        free(errors[i]);
    }
    free(burst);
    free(errors);

    /* the worker still works */
    wh_push_str(&H, "{\"id\":\"h-good\",\"seed\":\"after the storm\",\"sizes\":[16,32]}");
    ck_assert_msg(wh_wait_state(&H, "h-good", "done", 20000), "a good job after them is not done");

    /* never retried, never counted done, nothing held */
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":dead"), 2 * (long long)NTABLE);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats dead"), 2 * (long long)NTABLE);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats retried"), 0);
    ck_assert_int_eq(wh_int(&H, "HGET " WH_NS ":stats done"), 1);
    ck_assert_int_eq(wh_int(&H, "ZCARD " WH_NS ":delayed"), 0);
    ck_assert_int_eq(wh_int(&H, "LLEN " WH_NS ":queue:default"), 0);
    ck_assert_int_eq(wh_processing(&H), 0);
    /* no job hash for any invalid document, whatever id it carries: only
     * the good job's */
    ck_assert_int_eq(wh_count_keys(&H, WH_NS ":job:*"), 1);
    ck_assert_int_eq(wh_count_keys(&H, WH_NS ":job:*/*"), 0);
    ck_assert_int_eq(wh_count_keys(&H, WH_NS ":job:.*"), 0);

    /* nothing written outside the storage root, nor beside the good job */
    ck_assert_int_eq(unexpected_files(H.dir, "", "h-good"), 0);
    char up[400];
    snprintf(up, sizeof up, "%s/../aqhostile-up", H.dir);
    ck_assert_msg(!wh_exists(up), "%s was written", up);
    snprintf(up, sizeof up, "%s/../aqhostile-del", H.dir);
    ck_assert(!wh_exists(up));

    /* the same supervisor and the same two worker processes all along */
    ck_assert_int_eq(kill(sup, 0), 0);
    ck_assert_int_eq(H.pid, sup);
    ck_assert_int_eq(wh_worker_pids(&H, after, 2), 2);
    ck_assert_msg((after[0] == before[0] && after[1] == before[1]) ||
                      (after[0] == before[1] && after[1] == before[0]),
                  "worker processes changed: %d %d -> %d %d", before[0], before[1], after[0],
                  after[1]);
    ck_assert_int_eq(count_log("worker started"), 2);
    ck_assert_int_eq(count_log("killed by signal"), 0);
    ck_assert_int_eq(count_log("worker crashed"), 0);
    ck_assert_int_eq(count_log("worker exited"), 0);
    ck_assert_int_eq(count_log("Sanitizer"), 0);
    ck_assert_int_eq(count_log("runtime error"), 0);
    int st = wh_stop(&H, SIGTERM, 20000);
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "supervisor status %d", st);
    fprintf(stderr, "hostile: %zu documents twice, all dead with their reason; worker pids %d %d unchanged\n",
            NTABLE, before[0], before[1]);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("hostile");
    TCase *tc = tcase_create("hostile");
    tcase_add_unchecked_fixture(tc, NULL, wh_reap_strays);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, t_hostile_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return sup_run_suite(suite());
}
