/* queue_dead: the dead-letter document a failed job leaves in NS:dead, and
 * its inverse for `dead retry`. Pure JSON (jansson), no Redis: tested on its
 * own. */
#ifndef AQ_QUEUE_DEAD_H
#define AQ_QUEUE_DEAD_H

#include <stddef.h>
#include <stdint.h>

/* The dead letter for doc: the job JSON object with "error", "failed_at"
 * and "attempts" added (same key order otherwise), or, for a document that
 * is not a JSON object or is over QUEUE_DEAD_DOC_MAX, {"raw": "<doc>", "error":..., "failed_at":...,
 * "attempts":...} (bytes that are not UTF-8 become '?'; at most
 * QUEUE_DEAD_RAW_MAX bytes kept, with "raw_bytes" the whole size). malloc'd, NULL
 * only when out of memory. */
#define QUEUE_DEAD_RAW_MAX 1024       /* bytes of a non-object document kept as "raw" */
#define QUEUE_DEAD_DOC_MAX (64 * 1024) /* larger documents are wrapped as "raw" too */
char *queue_dead_doc(const char *doc, size_t len, const char *error, int64_t failed_at,
                     int attempts);

/* The inverse for `dead retry`: the original document (error, failed_at
 * and attempts removed; "raw" unwrapped, NUL bytes and all), malloc'd and
 * NUL-terminated, its length in *outlen; id receives its "id" field when
 * that is a valid id, else "". NULL only when out of memory. */
char *queue_dead_unwrap(const char *dead, size_t len, size_t *outlen, char id[65]);

/* The dead letter of a document too large to hold (QUEUE_DEAD_DOC_MAX): only
 * its first bytes (at most QUEUE_DEAD_RAW_MAX), its size and its SHA-256 (hex)
 * were seen: {"raw": head, "raw_bytes": size, "raw_sha256": sha256, "error",
 * "failed_at", "attempts"}. malloc'd, NULL only when out of memory. */
char *queue_dead_doc_big(const char *head, size_t head_len, size_t size, const char *sha256,
                         const char *error, int64_t failed_at, int attempts);

#endif
