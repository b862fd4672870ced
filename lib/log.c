/* log: one line per event, built in a stack buffer and written with a single
 * write(2), so lines from many processes sharing stderr never interleave
 * (a pipe keeps writes up to PIPE_BUF = 4096 bytes whole; LOG_LINE_MAX is
 * that). Values are escaped here rather than through jansson because a log
 * line must survive any bytes a caller hands it, invalid UTF-8 included. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct {
    bool ready;     /* log_setup() ran or the defaults were taken */
    int level;
    int format;
    bool journal;   /* stderr is the journal: prefix lines with <N> */
    char proc[32];
} L = {false, LOG_INFO, LOG_FMT_LOGFMT, false, ""};

static const char *const level_names[] = {"error", "warn", "info", "debug"};
/* syslog priorities for the journal: err, warning, info, debug */
static const char *const level_prefix[] = {"<3>", "<4>", "<6>", "<7>"};
static const char *const format_names[] = {"logfmt", "json"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int name_index(const char *s, const char *const *names, size_t n)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(s, names[i]) == 0)
            return (int)i;
    return -1;
}

int log_level_parse(const char *s)
{
    /* "warning" is what syslog and most people call it. */
    if (s && strcasecmp(s, "warning") == 0)
        return LOG_WARN;
    return name_index(s, level_names, NELEM(level_names));
}

int log_format_parse(const char *s)
{
    return name_index(s, format_names, NELEM(format_names));
}

/* systemd sets JOURNAL_STREAM=DEV:INODE for the stream it connected to
 * stdout/stderr; when it still names our stderr, the journal reads a
 * leading <N> as the line's priority. */
static bool stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char tail;
    if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
        return false;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) != 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_setup(int level, int format, const char *proc)
{
    L.level = level < LOG_ERROR ? LOG_ERROR : level > LOG_DEBUG ? LOG_DEBUG : level;
    L.format = format == LOG_FMT_JSON ? LOG_FMT_JSON : LOG_FMT_LOGFMT;
    snprintf(L.proc, sizeof L.proc, "%s", proc ? proc : "");
    L.journal = stderr_is_journal();
    L.ready = true;
}

const char *log_int(char *buf, int64_t v)
{
    snprintf(buf, 24, "%lld", (long long)v);
    return buf;
}

/* ---- the line buffer ---- */

/* Room kept at the end of the line for what must always fit: "...", a
 * closing quote, "}" and the newline. */
#define TAIL 8

typedef struct line {
    char b[LOG_LINE_MAX];
    size_t len;
    bool cut;       /* a value did not fit: everything after it is dropped */
} line;

/* Appends n bytes when they fit below the tail reserve; false when not. */
static bool put(line *o, const char *s, size_t n)
{
    if (o->cut || o->len + n > sizeof o->b - TAIL)
        return false;
    memcpy(o->b + o->len, s, n);
    o->len += n;
    return true;
}

/* Appends into the tail reserve; only for the closing bytes. */
static void put_tail(line *o, const char *s)
{
    size_t n = strlen(s);
    if (o->len + n > sizeof o->b)
        n = sizeof o->b - o->len;
    memcpy(o->b + o->len, s, n);
    o->len += n;
}

static void mark_cut(line *o)
{
    if (!o->cut)
        put_tail(o, "...");
    o->cut = true;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when the
 * bytes there are not one (overlong forms and surrogates included). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* The escape for one ASCII byte in a quoted value, or NULL when it stands
 * for itself. JSON and logfmt (Go's strconv.Quote) agree on these. */
static const char *short_escape(unsigned char c)
{
    switch (c) {
    case '"': return "\\\"";
    case '\\': return "\\\\";
    case '\n': return "\\n";
    case '\r': return "\\r";
    case '\t': return "\\t";
    default: return NULL;
    }
}

/* Writes s escaped, without quotes, one whole unit (an escape or a UTF-8
 * character) at a time so a cut never splits one. Control bytes become
 * \u00NN in JSON and \xNN in logfmt; invalid UTF-8 becomes U+FFFD in JSON
 * (which must stay valid UTF-8) and \xNN in logfmt. */
static void put_escaped(line *o, const char *s, int format)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        char esc[8];
        const char *unit = (const char *)p + i;
        size_t ulen = utf8_len(p + i, n - i), step = ulen ? ulen : 1;
        const char *se = ulen == 1 ? short_escape(p[i]) : NULL;
        if (se) {
            unit = se, ulen = strlen(se);
        } else if (ulen == 0 || p[i] < 0x20 || p[i] == 0x7f) {
            if (format == LOG_FMT_JSON && ulen == 0)
                snprintf(esc, sizeof esc, "\\ufffd");
            else if (format == LOG_FMT_JSON)
                snprintf(esc, sizeof esc, "\\u%04x", p[i]);
            else
                snprintf(esc, sizeof esc, "\\x%02x", p[i]);
            unit = esc, ulen = strlen(esc);
        }
        if (!put(o, unit, ulen))
            return mark_cut(o);
        i += step;
    }
}

/* logfmt leaves a value bare when nothing in it could be misread. */
static bool logfmt_bare(const char *s)
{
    if (!*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p >= 0x7f)
            return false;
    return true;
}

static void put_key(line *o, const char *k)
{
    char safe[64];
    size_t n = 0;
    for (; k && k[n] && n < sizeof safe - 1; n++) {
        unsigned char c = (unsigned char)k[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        safe[n] = ok ? (char)c : '_';
    }
    if (n == 0)
        safe[n++] = '_';
    safe[n] = '\0';
    /* The key goes in whole, with room for at least an empty value after
     * it, or the line ends before it: a cut key would break JSON. */
    bool json = L.format == LOG_FMT_JSON;
    if (o->cut || o->len + n + (json ? 6 : 4) > sizeof o->b - TAIL) {
        if (!o->cut && !json)
            put_tail(o, " ...");
        o->cut = true;
        return;
    }
    if (json) {
        put(o, ",\"", 2), put(o, safe, n), put(o, "\":", 2);
    } else {
        put(o, " ", 1), put(o, safe, n), put(o, "=", 1);
    }
}

static void put_field(line *o, const char *k, const char *v)
{
    if (o->cut)
        return;
    if (!v)
        v = "";
    put_key(o, k);
    if (o->cut)
        return;
    if (L.format == LOG_FMT_LOGFMT && logfmt_bare(v)) {
        put_escaped(o, v, L.format);
        return;
    }
    if (!put(o, "\"", 1))
        return mark_cut(o);
    put_escaped(o, v, L.format);
    put_tail(o, "\"");
}

static void put_timestamp(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static void write_all(const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere to report that logging failed */
        b += w;
        n -= (size_t)w;
    }
}

void log_write(int level, const char *msg, ...)
{
    int saved = errno; /* callers log right after a failure and then read errno */
    if (!L.ready)
        log_setup(L.level, L.format, NULL);
    if (level < LOG_ERROR)
        level = LOG_ERROR;
    if (level > LOG_DEBUG)
        level = LOG_DEBUG;
    if (level > L.level) {
        errno = saved;
        return;
    }
    line o;
    o.len = 0;
    o.cut = false;
    char ts[32], pid[24];
    put_timestamp(ts);
    log_int(pid, (int64_t)getpid());
    if (L.journal)
        put(&o, level_prefix[level], 3);
    bool json = L.format == LOG_FMT_JSON;
    if (json)
        put(&o, "{\"ts\":\"", 7), put(&o, ts, strlen(ts)), put(&o, "\"", 1);
    else
        put(&o, "ts=", 3), put(&o, ts, strlen(ts));
    put_field(&o, "level", level_names[level]);
    if (L.proc[0])
        put_field(&o, "proc", L.proc);
    if (json) {
        put_key(&o, "pid");
        put(&o, pid, strlen(pid));
    } else {
        put_field(&o, "pid", pid);
    }
    put_field(&o, "msg", msg);
    va_list ap;
    va_start(ap, msg);
    for (const char *k; (k = va_arg(ap, const char *)) != NULL;)
        put_field(&o, k, va_arg(ap, const char *));
    va_end(ap);
    if (json)
        put_tail(&o, "}");
    put_tail(&o, "\n");
    write_all(o.b, o.len);
    errno = saved;
}

/* One byte of a printable message: itself, \\ or \xNN. */
static size_t printable_unit(unsigned char c, char unit[5])
{
    if (c == '\\')
        snprintf(unit, 5, "\\\\");
    else if (c >= 0x20 && c < 0x7f)
        snprintf(unit, 5, "%c", c);
    else
        snprintf(unit, 5, "\\x%02x", c);
    return strlen(unit);
}

const char *log_printable(const char *s, size_t len, char *out, size_t outlen)
{
    if (outlen < 5) {
        if (outlen)
            out[0] = '\0';
        return out;
    }
    char unit[5];
    size_t total = 0;
    for (size_t i = 0; s && i < len && total < outlen; i++)
        total += printable_unit((unsigned char)s[i], unit);
    /* When it does not all fit, stop where "..." and the NUL still do. */
    size_t room = total < outlen ? outlen - 1 : outlen - 4, o = 0;
    for (size_t i = 0; s && i < len; i++) {
        size_t n = printable_unit((unsigned char)s[i], unit);
        if (o + n > room)
            break;
        memcpy(out + o, unit, n);
        o += n;
    }
    if (total >= outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}
