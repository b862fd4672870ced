/* queue_dead: the dead-letter document a failed job leaves in NS:dead, and
 * its inverse for `dead retry`. Pure JSON (jansson), no Redis: tested on its
 * own. */
#ifndef AQ_QUEUE_DEAD_H
#define AQ_QUEUE_DEAD_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define QUEUE_DEAD_RAW_MAX 1024        /* bytes of a wrapped document kept as "raw" */
#define QUEUE_DEAD_DOC_MAX (64 * 1024) /* larger documents are always wrapped */

/* The dead letter of a job that failed: the job JSON object with "error",
 * "failed_at" and "attempts" added (same key order otherwise). A document
 * that is not a JSON object, is over QUEUE_DEAD_DOC_MAX, or has a "raw" key
 * of its own is wrapped instead: {"raw": its first QUEUE_DEAD_RAW_MAX bytes
 * (bytes that are not UTF-8 become '?'), "raw_bytes": its size,
 * "raw_sha256": its SHA-256 when only a head is kept, "error", "failed_at",
 * "attempts"}. malloc'd, NULL only when out of memory. */
char *queue_dead_doc(const char *doc, size_t len, const char *error, int64_t failed_at,
                     int attempts);

/* The same for a document refused as invalid (attempts 1): over
 * QUEUE_DEAD_RAW_MAX it is always wrapped, so a flood of large invalid
 * documents costs NS:dead about 1 KiB each. */
char *queue_dead_doc_refused(const char *doc, size_t len, const char *error,
                             int64_t failed_at);

/* The inverse for `dead retry`: into *out (malloc'd, NUL-terminated, its
 * length in *outlen) the original document: error, failed_at and attempts
 * removed, or the "raw" of a wrapper (NUL bytes and all); id receives the
 * object's "id" when that is a valid id, else "". AQ_EPERM for a wrapper
 * that kept only a head (that document is gone), AQ_EAGAIN when out of
 * memory; 0 otherwise. */
int queue_dead_unwrap(const char *dead, size_t len, char **out, size_t *outlen, char id[65],
                      aq_err *e);

/* The dead letter of a document too large to hold (QUEUE_DEAD_DOC_MAX): only
 * its first bytes (at most QUEUE_DEAD_RAW_MAX), its size and its SHA-256 (hex)
 * were seen: {"raw": head, "raw_bytes": size, "raw_sha256": sha256, "error",
 * "failed_at", "attempts"}. malloc'd, NULL only when out of memory. */
char *queue_dead_doc_big(const char *head, size_t head_len, size_t size, const char *sha256,
                         const char *error, int64_t failed_at, int attempts);

#endif
