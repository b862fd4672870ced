/* config: every default of docs/protocol.md, every key parsed, the AVATARQ_* and
 * AWS_* environment, errors that name file, line and key (or the
 * variable), Redis URLs, redaction, the default file search, the shipped
 * config.ini, and the crash inputs the fuzzer found (replayed from
 * tests/fuzz/regressions/config/). Each test runs in its own process
 * (Check's fork mode), so setenv() and chdir() do not leak between tests. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "render.h"
#include "support.h"

static aq_config C;
static aq_err E;

static int load(const char *text)
{
    err_clear(&E);
    return config_load_string(&C, text, "config.ini", &E);
}

static void clear_avatarq_env(void)
{
    extern char **environ;
    for (int again = 1; again;) {
        again = 0;
        for (char **ev = environ; *ev; ev++) {
            if (strncmp(*ev, "AVATARQ_", 8) == 0 || strncmp(*ev, "AWS_", 4) == 0) {
                char name[256];
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*ev, "="), *ev);
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
}

START_TEST(defaults)
{
    ck_assert_int_eq(load(""), 0);
    ck_assert_str_eq(C.redis.url, "redis://127.0.0.1:6379/0");
    ck_assert_str_eq(C.redis.host, "127.0.0.1");
    ck_assert_int_eq(C.redis.port, 6379);
    ck_assert_int_eq(C.redis.db, 0);
    ck_assert_str_eq(C.redis.user, "");
    ck_assert_str_eq(C.redis.password, "");
    ck_assert_str_eq(C.redis.unix_path, "");
    ck_assert_str_eq(C.redis.ns, "avatarq");
    ck_assert_str_eq(C.redis.queue, "default");
    ck_assert_int_eq(C.redis.connect_timeout_ms, 2000);
    ck_assert(!C.redis.tls);
    ck_assert_str_eq(C.redis.tls_ca_file, "");
    ck_assert_str_eq(C.redis.tls_cert_file, "");
    ck_assert_str_eq(C.redis.tls_key_file, "");
    ck_assert_str_eq(C.redis.tls_server_name, "");
    ck_assert(C.redis.tls_verify);
    ck_assert_str_eq(C.redis.sentinels, "");
    ck_assert_str_eq(C.redis.sentinel_master, "mymaster");
    ck_assert_str_eq(C.redis.sentinel_password, "");
    ck_assert(!C.redis.cluster);
    ck_assert_int_eq(C.redis.min_replicas_ack, 0);
    ck_assert_int_eq(C.redis.min_replicas_timeout_ms, 100);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    ck_assert_int_eq(C.worker.processes, cpus < 1 ? 1 : cpus > 256 ? 256 : cpus);
    ck_assert_int_eq(C.worker.job_timeout_s, 60);
    ck_assert_int_eq(C.worker.shutdown_timeout_s, 30);
    ck_assert_int_eq(C.worker.heartbeat_interval_s, 2);
    ck_assert_int_eq(C.worker.heartbeat_ttl_s, 10);
    ck_assert_int_eq(C.worker.max_attempts, 5);
    ck_assert_int_eq(C.worker.backoff_base_ms, 1000);
    ck_assert_int_eq(C.worker.backoff_max_ms, 300000);
    ck_assert_int_eq(C.worker.result_ttl_s, 604800);
    ck_assert_int_eq(C.worker.dead_max, 10000);
    ck_assert_int_eq(C.worker.events_max, 10000);
    ck_assert_str_eq(C.render.default_style, "pixel");
    ck_assert_uint_eq(C.render.n_default_sizes, 5);
    const int sizes[] = {32, 64, 128, 256, 512};
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq(C.render.default_sizes[i], sizes[i]);
    ck_assert_int_eq(C.render.max_size, 1024);
    ck_assert_str_eq(C.storage.backend, "local");
    ck_assert_str_eq(C.storage.prefix, "avatars");
    ck_assert_str_eq(C.storage.local.root, "./var/avatars");
    ck_assert(C.storage.local.fsync);
    ck_assert_str_eq(C.storage.s3.endpoint, "");
    ck_assert_str_eq(C.storage.s3.region, "us-east-1");
    ck_assert_str_eq(C.storage.s3.bucket, "");
    ck_assert_str_eq(C.storage.s3.access_key, "");
    ck_assert_str_eq(C.storage.s3.secret_key, "");
    ck_assert(C.storage.s3.path_style);
    ck_assert_int_eq(C.storage.s3.timeout_ms, 10000);
    ck_assert_int_eq(C.storage.s3.retries, 5);
    ck_assert_str_eq(C.database.backend, "sqlite");
    ck_assert_str_eq(C.database.sqlite.path, "./var/avatarq.db");
    ck_assert_str_eq(C.database.pg.conninfo, "");
    ck_assert_int_eq(C.database.pg.retries, 5);
    ck_assert_int_eq(C.log.level, LOG_INFO);
    ck_assert_int_eq(C.log.format, LOG_FMT_LOGFMT);
    /* config_defaults() alone gives the same */
    aq_config d;
    config_defaults(&d);
    memcpy(d.path, C.path, sizeof d.path);
    ck_assert_mem_eq(&d, &C, sizeof d);
}
END_TEST

static const char *FULL =
    "; every key, none at its default\n"
    "[redis]\n"
    "url = rediss://alice:s%40cret@cache.example:6380/3\n"
    "namespace = {aq}\n"
    "queue = high\n"
    "connect_timeout_ms = 500\n"
    "tls_ca_file = /etc/ca.pem\n"
    "tls_cert_file = /etc/client.pem\n"
    "tls_key_file = /etc/client.key\n"
    "tls_server_name = redis.internal\n"
    "tls_verify = false\n"
    "sentinels = s1:26379, [::1]:26380 ,s3:1\n"
    "sentinel_master = queue-master\n"
    "sentinel_password = sentinelpw\n"
    "min_replicas_ack = 2\n"
    "min_replicas_timeout_ms = 250\n"
    "[worker]\n"
    "processes = 7\n"
    "job_timeout_s = 61\n"
    "shutdown_timeout_s = 0\n"
    "heartbeat_interval_s = 3\n"
    "heartbeat_ttl_s = 9\n"
    "max_attempts = 25\n"
    "backoff_base_ms = 10\n"
    "backoff_max_ms = 20\n"
    "result_ttl_s = 60\n"
    "dead_max = 5\n"
    "events_max = 6\n"
    "[render]\n"
    "default_style = wave\n"
    "default_sizes = 16, 48 ,4096\n"
    "max_size = 4096\n"
    "[storage]\n"
    "backend = s3\n"
    "prefix = a/b-c/d.e\n"
    "[storage.local]\n"
    "root = /srv/avatars\n"
    "fsync = off\n"
    "[storage.s3]\n"
    "endpoint = https://s3.example:9000\n"
    "region = eu-west-3\n"
    "bucket = my.bucket-1\n"
    "access_key = AKIA\n"
    "secret_key = s3cr3t ; a comment\n"
    "path_style = no\n"
    "timeout_ms = 1\n"
    "retries = 0\n"
    "[database]\n"
    "backend = postgresql\n"
    "[database.sqlite]\n"
    "path = /var/lib/avatarq/db\n"
    "[database.postgresql]\n"
    "conninfo = host=db user=aq password=pw dbname=aq\n"
    "retries = 100\n"
    "[log]\n"
    "level = DEBUG\n"
    "format = json\n";

START_TEST(every_key)
{
    ck_assert_msg(load(FULL) == 0, "%s", E.msg);
    ck_assert_str_eq(C.path, "config.ini");
    ck_assert_str_eq(C.redis.url, "rediss://alice:s%40cret@cache.example:6380/3");
    ck_assert(C.redis.tls);
    ck_assert_str_eq(C.redis.tls_ca_file, "/etc/ca.pem");
    ck_assert_str_eq(C.redis.tls_cert_file, "/etc/client.pem");
    ck_assert_str_eq(C.redis.tls_key_file, "/etc/client.key");
    ck_assert_str_eq(C.redis.tls_server_name, "redis.internal");
    ck_assert(!C.redis.tls_verify);
    ck_assert_str_eq(C.redis.sentinels, "s1:26379, [::1]:26380 ,s3:1");
    ck_assert_str_eq(C.redis.sentinel_master, "queue-master");
    ck_assert_str_eq(C.redis.sentinel_password, "sentinelpw");
    ck_assert_int_eq(C.redis.min_replicas_ack, 2);
    ck_assert_int_eq(C.redis.min_replicas_timeout_ms, 250);
    ck_assert_str_eq(C.redis.host, "cache.example");
    ck_assert_int_eq(C.redis.port, 6380);
    ck_assert_str_eq(C.redis.user, "alice");
    ck_assert_str_eq(C.redis.password, "s@cret");
    ck_assert_int_eq(C.redis.db, 3);
    ck_assert_str_eq(C.redis.ns, "{aq}");
    ck_assert_str_eq(C.redis.queue, "high");
    ck_assert_int_eq(C.redis.connect_timeout_ms, 500);
    ck_assert_int_eq(C.worker.processes, 7);
    ck_assert_int_eq(C.worker.job_timeout_s, 61);
    ck_assert_int_eq(C.worker.shutdown_timeout_s, 0);
    ck_assert_int_eq(C.worker.heartbeat_interval_s, 3);
    ck_assert_int_eq(C.worker.heartbeat_ttl_s, 9);
    ck_assert_int_eq(C.worker.max_attempts, 25);
    ck_assert_int_eq(C.worker.backoff_base_ms, 10);
    ck_assert_int_eq(C.worker.backoff_max_ms, 20);
    ck_assert_int_eq(C.worker.result_ttl_s, 60);
    ck_assert_int_eq(C.worker.dead_max, 5);
    ck_assert_int_eq(C.worker.events_max, 6);
    ck_assert_str_eq(C.render.default_style, "wave");
    ck_assert_uint_eq(C.render.n_default_sizes, 3);
    ck_assert_int_eq(C.render.default_sizes[0], 16);
    ck_assert_int_eq(C.render.default_sizes[1], 48);
    ck_assert_int_eq(C.render.default_sizes[2], 4096);
    ck_assert_int_eq(C.render.max_size, 4096);
    ck_assert_str_eq(C.storage.backend, "s3");
    ck_assert_str_eq(C.storage.prefix, "a/b-c/d.e");
    ck_assert_str_eq(C.storage.local.root, "/srv/avatars");
    ck_assert(!C.storage.local.fsync);
    ck_assert_str_eq(C.storage.s3.endpoint, "https://s3.example:9000");
    ck_assert_str_eq(C.storage.s3.region, "eu-west-3");
    ck_assert_str_eq(C.storage.s3.bucket, "my.bucket-1");
    ck_assert_str_eq(C.storage.s3.access_key, "AKIA");
    ck_assert_str_eq(C.storage.s3.secret_key, "s3cr3t");
    ck_assert(!C.storage.s3.path_style);
    ck_assert_int_eq(C.storage.s3.timeout_ms, 1);
    ck_assert_int_eq(C.storage.s3.retries, 0);
    ck_assert_str_eq(C.database.backend, "postgresql");
    ck_assert_str_eq(C.database.sqlite.path, "/var/lib/avatarq/db");
    ck_assert_str_eq(C.database.pg.conninfo, "host=db user=aq password=pw dbname=aq");
    ck_assert_int_eq(C.database.pg.retries, 100);
    ck_assert_int_eq(C.log.level, LOG_DEBUG);
    ck_assert_int_eq(C.log.format, LOG_FMT_JSON);
    /* cluster excludes sentinels and a db: checked on its own */
    ck_assert_msg(load("[redis]\ncluster = on\nnamespace = x{aq}y\nurl = redis://n1:7000\n") == 0, "%s",
                  E.msg);
    ck_assert(C.redis.cluster);
}
END_TEST

START_TEST(syntax_accepted)
{
    /* comments, blank lines, indentation, CRLF, a BOM, case of names */
    ck_assert_msg(load("\xef\xbb\xbf# comment\r\n\r\n  [ Worker ]\r\n   Processes=3\r\n\tmax_attempts : 2 ; why\r\n"
                       "[log]\nlevel = warning\n") == 0, "%s", E.msg);
    ck_assert_int_eq(C.worker.processes, 3);
    ck_assert_int_eq(C.worker.max_attempts, 2);
    ck_assert_int_eq(C.log.level, LOG_WARN);
    static const struct { const char *v; bool b; } bools[] = {
        {"true", true}, {"yes", true}, {"on", true}, {"1", true}, {"TRUE", true},
        {"false", false}, {"no", false}, {"off", false}, {"0", false}, {"Off", false},
    };
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "[storage.local]\nfsync = %s\n", bools[i].v);
        ck_assert_msg(load(text) == 0, "%s", E.msg);
        ck_assert_msg(C.storage.local.fsync == bools[i].b, "%s", bools[i].v);
    }
    ck_assert_int_eq(load("[storage]\nprefix =\n"), 0);
    ck_assert_str_eq(C.storage.prefix, "");
}
END_TEST

/* ---- errors ---- */

typedef struct bad_cfg {
    const char *text;
    const char *want; /* the whole message, or a substring when it starts with '~' */
} bad_cfg;

static const bad_cfg BAD[] = {
    {"[worker]\nprocesses = x\n", "config.ini:2: [worker] processes: 'x' is not an integer"},
    {"\n\n[worker]\nprocesses = 0\n", "config.ini:4: [worker] processes: '0' is out of range 1..256"},
    {"[worker]\nprocesses = 257\n", "config.ini:2: [worker] processes: '257' is out of range 1..256"},
    {"[worker]\nprocesses = 2x\n", "config.ini:2: [worker] processes: '2x' is not an integer"},
    {"[worker]\nprocesses = 99999999999999999999\n", "~'99999999999999999999' is not an integer"},
    {"[worker]\nprocesses =\n", "config.ini:2: [worker] processes: '' is not an integer"},
    {"[wokrer]\nprocesses = 2\n", "config.ini:1: unknown section [wokrer]"},
    {"[redis]\n[empty]\n", "config.ini:2: unknown section [empty]"},
    {"[worker]\nprocs = 2\n", "config.ini:2: [worker] unknown key 'procs'"},
    {"[redis]\nprocesses = 2\n", "config.ini:2: [redis] unknown key 'processes'"},
    {"processes = 2\n", "~config.ini:1: key 'processes' outside any section"},
    {"[worker]\nprocesses = 2\nmax_attempts = 3\nprocesses = 4\n",
     "config.ini:4: [worker] processes: set twice (first on line 2)"},
    {"[redis]\nurl\n", "~config.ini:2: syntax error"},
    {"[redis\nurl = x\n", "~config.ini:1: syntax error"},
    {"[redis]\nurl\n[worker]\nprocesses = x\n", "~config.ini:2: syntax error"},
    {"[worker]\nprocesses = x\nbad line\n[log]\nlevel = info\n", "config.ini:2: [worker] processes: 'x' is not an integer"},
    {"[worker]\nheartbeat_interval_s = 5\nheartbeat_ttl_s = 5\n",
     "config.ini:3: [worker] heartbeat_ttl_s: heartbeat_ttl_s (5) must be greater than heartbeat_interval_s (5)"},
    {"[worker]\nheartbeat_ttl_s = 3\nheartbeat_interval_s = 5\n",
     "config.ini:3: [worker] heartbeat_interval_s: heartbeat_ttl_s (3) must be greater than heartbeat_interval_s (5)"},
    {"[worker]\nheartbeat_interval_s = 10\n", "~[worker] heartbeat_interval_s: heartbeat_ttl_s (10) must be greater"},
    {"[worker]\nbackoff_base_ms = 5000\nbackoff_max_ms = 10\n",
     "~config.ini:3: [worker] backoff_max_ms: backoff_max_ms (10) must be at least backoff_base_ms (5000)"},
    {"[worker]\nmax_attempts = 26\n", "~'26' is out of range 1..25"},
    {"[render]\nmax_size = 2000\ndefault_sizes = 32,4000\n",
     "config.ini:3: [render] default_sizes: default size 4000 is above max_size (2000)"},
    {"[render]\ndefault_sizes = 2048\n", "~config.ini:2: [render] default_sizes: default size 2048 is above max_size (1024)"},
    {"[render]\nmax_size = 5000\n", "config.ini:2: [render] max_size: '5000' is out of range 16..4096"},
    {"[render]\nmax_size = 15\n", "~'15' is out of range 16..4096"},
    {"[render]\ndefault_sizes = 32,,64\n", "~'32,,64' has an empty item"},
    {"[render]\ndefault_sizes =\n", "~has an empty item"},
    {"[render]\ndefault_sizes = 32,32\n", "~'32,32' lists 32 twice"},
    {"[render]\ndefault_sizes = 8\n", "~'8' has 8, outside 16..4096"},
    {"[render]\ndefault_sizes = 32,big\n", "~has 'big', which is not an integer"},
    {"[render]\ndefault_sizes = 16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32\n", "~has more than 16 sizes"},
    {"[render]\ndefault_style = fancy\n", "config.ini:2: [render] default_style: 'fancy' is not a style (pixel, classic, wave, gradient, emoji, initials)"},
    {"[storage]\nbackend = ftp\n", "config.ini:2: [storage] backend: 'ftp' is not one of local, s3"},
    {"[database]\nbackend = mysql\n", "config.ini:2: [database] backend: 'mysql' is not one of sqlite, postgresql"},
    {"[log]\nlevel = loud\n", "config.ini:2: [log] level: 'loud' is not a log level (error, warn, info, debug)"},
    {"[log]\nformat = xml\n", "config.ini:2: [log] format: 'xml' is not a log format (logfmt, json)"},
    {"[storage.local]\nfsync = maybe\n", "~[storage.local] fsync: 'maybe' is not a boolean"},
    {"[storage.local]\nroot =\n", "config.ini:2: [storage.local] root: must not be empty"},
    {"[storage]\nprefix = ../x\n", "~[storage] prefix: '../x' may not contain '.' or '..' segments"},
    {"[storage]\nprefix = /abs\n", "~'/abs' has an empty path segment"},
    {"[storage]\nprefix = a//b\n", "~'a//b' has an empty path segment"},
    {"[storage]\nprefix = a b\n", "~'a b' may hold only"},
    {"[storage.s3]\nbucket = My_Bucket\n", "~'My_Bucket' is not a bucket name"},
    {"[storage.s3]\nendpoint = ftp://x\n", "~[storage.s3] endpoint: (hidden) is not an http:// or https:// URL"},
    {"[storage.s3]\nendpoint = http://\n", "~'http://' has no host"},
    {"[storage]\nbackend = s3\n", "config.ini:2: [storage] backend: s3 needs [storage.s3] endpoint"},
    {"[storage]\nbackend = s3\n[storage.s3]\nendpoint = http://h\n", "config.ini:2: [storage] backend: s3 needs [storage.s3] bucket"},
    {"[redis]\nnamespace = a b\n", "~'a b' may hold only visible ASCII characters"},
    {"[redis]\nnamespace =\n", "config.ini:2: [redis] namespace: must not be empty"},
    {"[redis]\nconnect_timeout_ms = -1\n", "~'-1' is out of range 1..600000"},
    {"[redis]\nurl = rediss://\n", "config.ini:2: [redis] url: (hidden) rediss:// URL has no host"},
    {"[redis]\nurl = http://h\n", "config.ini:2: [redis] url: (hidden) is not a redis://, rediss:// or unix:// URL"},
    {"[redis]\ncluster = true\n", "~config.ini:2: [redis] cluster: with cluster = true the namespace must be a hash tag such as {avatarq}"},
    {"[redis]\ncluster = yes\nnamespace = {}\n", "~config.ini:3: [redis] namespace: with cluster = true the namespace must be a hash tag such as {avatarq}"},
    {"[redis]\ncluster = true\nnamespace = {aq}\nurl = redis://h/2\n", "~config.ini:4: [redis] url: Redis Cluster has only database 0"},
    {"[redis]\nnamespace = {aq}\nsentinels = h:1\ncluster = true\n", "config.ini:4: [redis] cluster: cluster = true and sentinels exclude each other"},
    {"[redis]\nsentinels = h\n", "~'h' item 1 ('h') has no :port"},
    {"[redis]\nsentinels = h:1,,h:0\n", "~item 2 ('h:0') is not host:port"},
    {"[redis]\nsentinels = h:1\nurl = unix:///tmp/r.sock\n", "~config.ini:3: [redis] url: Sentinel needs a redis:// or rediss:// URL"},
    {"[redis]\ntls_cert_file = /c.pem\n", "config.ini:2: [redis] tls_cert_file: tls_cert_file and tls_key_file go together"},
    {"[redis]\ntls_verify = maybe\n", "~'maybe' is not a boolean"},
    {"[redis]\nmin_replicas_ack = -1\n", "~'-1' is out of range 0..100"},
    {"[redis]\nmin_replicas_timeout_ms = 0\n", "~'0' is out of range 1..600000"},
    {"[redis]\nurl = redis://\n", "config.ini:2: [redis] url: (hidden) redis:// URL has no host"},
    {"[redis]\nurl = redis://h:0\n", "~has a bad port"},
    {"[redis]\nurl = redis://h:99999\n", "~has a bad port"},
    {"[redis]\nurl = redis://h:x/0\n", "~has a bad port"},
    {"[redis]\nurl = redis://h/abc\n", "~has a bad database number"},
    {"[redis]\nurl = redis://h/1/2\n", "~has a bad database number"},
    {"[redis]\nurl = redis://[::1\n", "~unclosed '['"},
    {"[redis]\nurl = redis://u:p%zz@h\n", "~has a bad password"},
    {"[redis]\nurl = unix://relative.sock\n", "~needs an absolute socket path"},
    {"[redis]\nurl = unix:///tmp/r.sock?dbx=1\n", "~has a bad query parameter"},
    /* a secret never shows in a message */
    {"[redis]\nurl = redis://u:hunter2@h:99999\n", "~[redis] url: (hidden) redis:// URL has a bad port"},
    /* a URL that fails to parse is never echoed: here a redaction would
     * have guessed the userinfo wrong and shown the password */
    {"[redis]\nurl = unix://:hunter2/x@/tmp/r.sock\n", "~(hidden) unix:// URL needs an absolute socket path"},
    /* S3 endpoints carry no userinfo (health prints them) */
    {"[storage.s3]\nendpoint = http://AK:hunter2@s3.example\n",
     "config.ini:2: [storage.s3] endpoint: (hidden) holds a user name or password: put credentials in "
     "[storage.s3] access_key and secret_key"},
    {"[storage.s3]\nendpoint = https://hunter2@s3.example/path\n", "~(hidden) holds a user name or password"},
    {"[storage.s3]\nsecret_key = "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
     "config.ini:2: [storage.s3] secret_key: (hidden) is longer than 255 bytes"},
    /* a non-printable value is escaped, a long one cut */
    {"[log]\nlevel = \x01\x7f\n", "config.ini:2: [log] level: '\\x01\\x7f' is not a log level (error, warn, info, debug)"},
};

START_TEST(bad_values)
{
    const bad_cfg *b = &BAD[_i];
    ck_assert_msg(load(b->text) == AQ_EPERM, "BAD[%d] accepted:\n%s", _i, b->text);
    if (b->want[0] == '~')
        ck_assert_msg(strstr(E.msg, b->want + 1) != NULL, "BAD[%d]:\n  got  %s\n  want ...%s...", _i, E.msg, b->want + 1);
    else
        ck_assert_msg(strcmp(E.msg, b->want) == 0, "BAD[%d]:\n  got  %s\n  want %s", _i, E.msg, b->want);
    ck_assert(strstr(E.msg, "hunter2") == NULL);
}
END_TEST

START_TEST(long_lines_and_values)
{
    char *text = malloc(6000);
    snprintf(text, 6000, "[log]\nlevel = info\n[database.postgresql]\nconninfo = %05000d\n", 1);
    ck_assert_int_eq(load(text), AQ_EPERM);
    ck_assert_str_eq(E.msg, "config.ini:4: line longer than 4000 bytes");
    /* under the line limit but over the field: cut in the message */
    snprintf(text, 6000, "[storage.local]\nroot = %05000d\n", 1);
    text[7 + 16 + 3000] = '\n', text[7 + 16 + 3001] = '\0';
    ck_assert_int_eq(load(text), 0); /* 3000 bytes fit PATH_MAX */
    snprintf(text, 6000, "[redis]\nnamespace = %0100d\n", 1);
    ck_assert_int_eq(load(text), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(E.msg, "...' is longer than 63 bytes"));
    ck_assert_uint_lt(strlen(E.msg), 200);
    free(text);
}
END_TEST

/* ---- URLs ---- */

START_TEST(redis_urls)
{
    static const struct {
        const char *url, *host;
        int port;
        const char *user, *password;
        int db;
        const char *unix_path;
    } t[] = {
        {"redis://127.0.0.1:6379/0", "127.0.0.1", 6379, "", "", 0, ""},
        {"redis://localhost", "localhost", 6379, "", "", 0, ""},
        {"redis://localhost/", "localhost", 6379, "", "", 0, ""},
        {"redis://h:1/15", "h", 1, "", "", 15, ""},
        {"redis://:pw@h", "h", 6379, "", "pw", 0, ""},
        {"redis://pw@h:7000", "h", 7000, "", "pw", 0, ""}, /* redis-cli: no ':' = password */
        {"redis://user:pw@h:7000/2", "h", 7000, "user", "pw", 2, ""},
        {"redis://us%3Aer:p%40ss%2Fw@h", "h", 6379, "us:er", "p@ss/w", 0, ""},
        {"redis://u:p@ss@h", "h", 6379, "u", "p@ss", 0, ""}, /* the last '@' ends the userinfo */
        {"redis://[::1]:6380/1", "::1", 6380, "", "", 1, ""},
        {"redis://[::1]", "::1", 6379, "", "", 0, ""},
        {"unix:///run/redis.sock", "", 0, "", "", 0, "/run/redis.sock"},
        {"unix:///run/redis.sock?db=3", "", 0, "", "", 3, "/run/redis.sock"},
        {"unix:///run/redis.sock?db=3&password=s%26x", "", 0, "", "s&x", 3, "/run/redis.sock"},
        {"unix://u:pw@/tmp/a@b.sock", "", 0, "u", "pw", 0, "/tmp/a@b.sock"},
        {"redis+unix:///tmp/r.sock?db=1", "", 0, "", "", 1, "/tmp/r.sock"},
        {"rediss://u:pw@h:6380/2", "h", 6380, "u", "pw", 2, ""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "[redis]\nurl = %s\n", t[i].url);
        ck_assert_msg(load(text) == 0, "%s: %s", t[i].url, E.msg);
        ck_assert_str_eq(C.redis.url, t[i].url);
        ck_assert_msg(strcmp(C.redis.host, t[i].host) == 0, "%s: host %s", t[i].url, C.redis.host);
        ck_assert_msg(C.redis.port == t[i].port, "%s: port %d", t[i].url, C.redis.port);
        ck_assert_msg(strcmp(C.redis.user, t[i].user) == 0, "%s: user %s", t[i].url, C.redis.user);
        ck_assert_msg(strcmp(C.redis.password, t[i].password) == 0, "%s: password %s", t[i].url, C.redis.password);
        ck_assert_msg(C.redis.db == t[i].db, "%s: db %d", t[i].url, C.redis.db);
        ck_assert_msg(strcmp(C.redis.unix_path, t[i].unix_path) == 0, "%s: path %s", t[i].url, C.redis.unix_path);
        ck_assert_msg(C.redis.tls == (strncmp(t[i].url, "rediss:", 7) == 0), "%s: tls", t[i].url);
    }
}
END_TEST

START_TEST(redaction)
{
    static const char *const t[][2] = {
        {"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
        {"redis://:secret@h:1/2", "redis://:***@h:1/2"},
        {"redis://user:secret@h", "redis://user:***@h"},
        {"redis://secret@h", "redis://***@h"},
        {"redis://u:p@ss@h", "redis://u:***@h"},
        {"redis://u:@h", "redis://u:@h"},
        {"unix:///tmp/a@b.sock", "unix:///tmp/a@b.sock"},
        {"unix://u:pw@/tmp/r.sock?db=1&password=x2", "unix://u:***@/tmp/r.sock?db=1&password=***"},
        {"unix:///tmp/r.sock?password=x2&db=1", "unix:///tmp/r.sock?password=***&db=1"},
        {"rediss://u:pw@h", "rediss://u:***@h"},
        {"not a url:pw@h", "not a url:***@h"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char out[128];
        config_redact_url(t[i][0], out, sizeof out);
        ck_assert_msg(strcmp(out, t[i][1]) == 0, "%s -> %s, want %s", t[i][0], out, t[i][1]);
    }
    char small[12];
    config_redact_url("redis://user:secret@host:6379/0", small, sizeof small);
    ck_assert_str_eq(small, "redis://use");
    config_redact_url(NULL, small, sizeof small);
    ck_assert_str_eq(small, "");
}
END_TEST

START_TEST(key_names)
{
    ck_assert_int_eq(load("[redis]\nnamespace = {aq}\n"), 0);
    char k[64];
    config_key(&C, k, sizeof k, "queue:%s", "high");
    ck_assert_str_eq(k, "{aq}:queue:high");
    config_key(&C, k, sizeof k, "dead");
    ck_assert_str_eq(k, "{aq}:dead");
    char tiny[6];
    config_key(&C, tiny, sizeof tiny, "workers");
    ck_assert_str_eq(tiny, "{aq}:");
}
END_TEST

/* ---- the environment ---- */

START_TEST(env_overrides)
{
    clear_avatarq_env();
    char dir[256], path[300];
    sup_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/a.ini", dir);
    sup_write_file(path, "[worker]\nprocesses = 3\n[storage.s3]\naccess_key = FROMFILE\n");
    setenv("AVATARQ_WORKER_PROCESSES", "7", 1);
    setenv("AVATARQ_STORAGE_S3_BUCKET", "env-bucket", 1);
    setenv("AVATARQ_REDIS_URL", "redis://:pw@10.0.0.5:7000/4", 1);
    setenv("AVATARQ_STORAGE_LOCAL_FSYNC", "off", 1);
    setenv("AVATARQ_DATABASE_POSTGRESQL_CONNINFO", "dbname=x", 1);
    setenv("AVATARQ_REDIS_TLS_CA_FILE", "/etc/ca.pem", 1);
    setenv("AVATARQ_REDIS_SENTINELS", "a:1,b:2", 1);
    setenv("AVATARQ_REDIS_MIN_REPLICAS_ACK", "1", 1);
    setenv("AWS_ACCESS_KEY_ID", "FROMAWS", 1);       /* the file wins */
    setenv("AWS_SECRET_ACCESS_KEY", "AWSSECRET", 1); /* fills the gap */
    setenv("AVATARQ_UNRELATED", "ignored", 1);       /* not a section of ours */
    ck_assert_msg(config_load(&C, path, &E) == 0, "%s", E.msg);
    ck_assert_str_eq(C.path, path);
    ck_assert_int_eq(C.worker.processes, 7);
    ck_assert_str_eq(C.storage.s3.bucket, "env-bucket");
    ck_assert_str_eq(C.redis.host, "10.0.0.5");
    ck_assert_int_eq(C.redis.port, 7000);
    ck_assert_str_eq(C.redis.tls_ca_file, "/etc/ca.pem");
    ck_assert_str_eq(C.redis.sentinels, "a:1,b:2");
    ck_assert_int_eq(C.redis.min_replicas_ack, 1);
    ck_assert_int_eq(C.redis.db, 4);
    ck_assert_str_eq(C.redis.password, "pw");
    ck_assert(!C.storage.local.fsync);
    ck_assert_str_eq(C.database.pg.conninfo, "dbname=x");
    ck_assert_str_eq(C.storage.s3.access_key, "FROMFILE");
    ck_assert_str_eq(C.storage.s3.secret_key, "AWSSECRET");
    /* AVATARQ_* secret beats AWS_* */
    setenv("AVATARQ_STORAGE_S3_SECRET_KEY", "MINE", 1);
    ck_assert_int_eq(config_load(&C, path, &E), 0);
    ck_assert_str_eq(C.storage.s3.secret_key, "MINE");
    sup_rmtree(dir);
}
END_TEST

START_TEST(env_errors)
{
    static const struct { const char *name, *value, *want; } t[] = {
        {"AVATARQ_WORKER_PROCESSES", "x", "AVATARQ_WORKER_PROCESSES ([worker] processes): 'x' is not an integer"},
        {"AVATARQ_LOG_LEVEL", "loud", "AVATARQ_LOG_LEVEL ([log] level): 'loud' is not a log level"},
        {"AVATARQ_REDIS_URL", "rediss://", "AVATARQ_REDIS_URL ([redis] url): (hidden) rediss:// URL has no host"},
        {"AVATARQ_REDIS_CLUSTER", "true", "AVATARQ_REDIS_CLUSTER ([redis] cluster): with cluster = true the namespace must be a hash tag"},
        {"AVATARQ_REDIS_URI", "redis://h", "AVATARQ_REDIS_URI: unknown configuration variable"},
        {"AVATARQ_STORAGE_S3_BUCKETS", "b", "AVATARQ_STORAGE_S3_BUCKETS: unknown configuration variable"},
        {"AVATARQ_WORKER_HEARTBEAT_TTL_S", "1", "AVATARQ_WORKER_HEARTBEAT_TTL_S ([worker] heartbeat_ttl_s): '1' is out of range 2..86400"},
        {"AVATARQ_WORKER_HEARTBEAT_TTL_S", "2", "AVATARQ_WORKER_HEARTBEAT_TTL_S ([worker] heartbeat_ttl_s): heartbeat_ttl_s (2) must be greater than heartbeat_interval_s (2)"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        clear_avatarq_env();
        setenv(t[i].name, t[i].value, 1);
        ck_assert_int_eq(config_load(&C, "/dev/null", &E), AQ_EPERM);
        ck_assert_msg(strncmp(E.msg, t[i].want, strlen(t[i].want)) == 0, "%s=%s:\n  got  %s\n  want %s",
                      t[i].name, t[i].value, E.msg, t[i].want);
    }
    /* config_apply_env() on its own */
    clear_avatarq_env();
    ck_assert_int_eq(load("[worker]\nheartbeat_interval_s = 4\n"), 0);
    setenv("AVATARQ_WORKER_HEARTBEAT_INTERVAL_S", "20", 1);
    ck_assert_int_eq(config_apply_env(&C, &E), AQ_EPERM);
    ck_assert_str_eq(E.msg, "AVATARQ_WORKER_HEARTBEAT_INTERVAL_S ([worker] heartbeat_interval_s): "
                            "heartbeat_ttl_s (10) must be greater than heartbeat_interval_s (20)");
    /* config_load_string() never reads the environment */
    ck_assert_int_eq(load("[worker]\nheartbeat_interval_s = 4\n"), 0);
    ck_assert_int_eq(C.worker.heartbeat_interval_s, 4);
}
END_TEST

/* ---- files ---- */

START_TEST(files)
{
    clear_avatarq_env();
    char dir[256], path[300];
    sup_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/missing.ini", dir);
    ck_assert_int_eq(config_load(&C, path, &E), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(E.msg, "missing.ini: cannot read: No such file or directory"));
    ck_assert_int_eq(config_load(&C, dir, &E), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(E.msg, ": cannot read: Is a directory"));
    snprintf(path, sizeof path, "%s/big.ini", dir);
    FILE *bf = fopen(path, "wb");
    for (int i = 0; i < 70000; i++)
        fputs("; a comment line\n", bf);
    fclose(bf);
    ck_assert_int_eq(config_load(&C, path, &E), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(E.msg, "big.ini: larger than 1048576 bytes"));
    snprintf(path, sizeof path, "%s/bad.ini", dir);
    sup_write_file(path, "[log]\nlevel = info\n\n[worker]\nprocesses = x\n");
    ck_assert_int_eq(config_load(&C, path, &E), AQ_EPERM);
    char want[400];
    snprintf(want, sizeof want, "%s:5: [worker] processes: 'x' is not an integer", path);
    ck_assert_str_eq(E.msg, want);
    /* a NUL byte would silently cut the file */
    FILE *f = fopen(path, "wb");
    fwrite("[log]\nlevel = info\n\0[worker]\n", 1, 29, f);
    fclose(f);
    ck_assert_int_eq(config_load(&C, path, &E), AQ_EPERM);
    ck_assert_ptr_nonnull(strstr(E.msg, "contains a NUL byte"));
    /* the default search: ./config.ini when it exists */
    ck_assert_int_eq(chdir(dir), 0);
    ck_assert_int_eq(config_load(&C, NULL, &E), 0);
    ck_assert_str_eq(C.path, access("/etc/avatarq/config.ini", F_OK) == 0 ? "/etc/avatarq/config.ini" : "");
    sup_write_file("config.ini", "[worker]\nprocesses = 5\n");
    ck_assert_int_eq(config_load(&C, NULL, &E), 0);
    ck_assert_str_eq(C.path, "./config.ini");
    ck_assert_int_eq(C.worker.processes, 5);
    sup_write_file("config.ini", "[worker]\nprocesses = 0\n");
    ck_assert_int_eq(config_load(&C, NULL, &E), AQ_EPERM);
    ck_assert_str_eq(E.msg, "./config.ini:2: [worker] processes: '0' is out of range 1..256");
    sup_rmtree(dir);
}
END_TEST

/* The shipped config.ini works as is and says what the defaults say. */
START_TEST(shipped_config)
{
    clear_avatarq_env();
    ck_assert_msg(config_load(&C, "config.ini", &E) == 0, "%s", E.msg);
    aq_config d;
    config_defaults(&d);
    memcpy(d.path, C.path, sizeof d.path);
    memcpy(d.origin, C.origin, sizeof d.origin);
    ck_assert_msg(memcmp(&d, &C, sizeof d) == 0, "config.ini differs from the defaults");
    ck_assert_str_eq(C.storage.backend, "local");
    ck_assert_str_eq(C.storage.local.root, "./var/avatars");
    ck_assert_str_eq(C.database.sqlite.path, "./var/avatarq.db");
    ck_assert_str_eq(C.redis.host, "127.0.0.1");
}
END_TEST

START_TEST(fuzz_regressions_replay)
{
    size_t n = 0;
    const char *dirs[] = {"tests/fuzz/regressions/config", "tests/fuzz/corpus/config"};
    for (size_t k = 0; k < 2; k++) {
        DIR *d = opendir(dirs[k]);
        if (!d)
            continue;
        for (struct dirent *de; (de = readdir(d)) != NULL;) {
            if (de->d_name[0] == '.')
                continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dirs[k], de->d_name);
            FILE *f = fopen(path, "rb");
            if (!f)
                continue;
            static char text[1 << 16];
            size_t len = fread(text, 1, sizeof text - 1, f);
            fclose(f);
            text[len] = '\0';
            err_clear(&E);
            if (config_load_string(&C, text, de->d_name, &E) != 0)
                ck_assert_msg(strncmp(E.msg, de->d_name, strlen(de->d_name)) == 0 || E.msg[0] == '[',
                              "%s: message without a place: %s", path, E.msg);
            n++;
        }
        closedir(d);
    }
    fprintf(stderr, "replayed %zu config inputs\n", n);
    ck_assert_uint_gt(n, 0);
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
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, every_key);
    tcase_add_test(tc, syntax_accepted);
    tcase_add_loop_test(tc, bad_values, 0, (int)(sizeof BAD / sizeof BAD[0]));
    tcase_add_test(tc, long_lines_and_values);
    tcase_add_test(tc, redis_urls);
    tcase_add_test(tc, redaction);
    tcase_add_test(tc, key_names);
    tcase_add_test(tc, env_overrides);
    tcase_add_test(tc, env_errors);
    tcase_add_test(tc, files);
    tcase_add_test(tc, shipped_config);
    tcase_add_test(tc, fuzz_regressions_replay);
    suite_add_tcase(s, tc);
    return sup_run_suite(s);
}
