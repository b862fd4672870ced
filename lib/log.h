/* log: one line per event on stderr, logfmt (default) or JSON, levelled.
 * When stderr is the journal (JOURNAL_STREAM matches stderr) each line starts
 * with a syslog priority prefix such as "<3>". Secrets are the caller's to
 * redact (config_redact_url). */
#ifndef AQ_LOG_H
#define AQ_LOG_H

#include <stddef.h>
#include <stdint.h>

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
enum { LOG_FMT_LOGFMT = 0, LOG_FMT_JSON = 1 };

/* Sets level, format and the "proc" field every line carries (e.g.
 * "supervisor", "worker"). proc may be NULL. */
void log_setup(int level, int format, const char *proc);

/* Parses "error|warn|info|debug" / "logfmt|json"; -1 when unknown. */
int log_level_parse(const char *s);
int log_format_parse(const char *s);

/* Writes one line: time, level, proc, pid, msg, then key/value string pairs
 * terminated by NULL: log_write(LOG_INFO, "job done", "id", id, "ms", ms, NULL).
 * A NULL value prints as empty. Values are quoted/escaped as the format needs. */
void log_write(int level, const char *msg, ...) __attribute__((sentinel));

/* Formats an integer into buf (at least 24 bytes) and returns buf, so numbers
 * can be logged inline: log_write(..., "n", log_int(b, n), NULL). */
const char *log_int(char *buf, int64_t v);

/* Copies len bytes of s into out (outlen > 4) as one printable line for an
 * error message: bytes outside printable ASCII become \xNN, a backslash
 * becomes \\, and a value too long for out ends in "...".
 * Never fails; returns out. */
const char *log_printable(const char *s, size_t len, char *out, size_t outlen);

/* The longest line log_write() emits, prefix and newline included; longer
 * values are cut (ending in "...") so one write(2) stays atomic on a pipe. */
#define LOG_LINE_MAX 4096

#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__, (char *)NULL)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__, (char *)NULL)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__, (char *)NULL)
#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__, (char *)NULL)

#endif
