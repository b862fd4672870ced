/* hash: SHA-256 and MD5 through OpenSSL's libcrypto, and hex/base64 forms. */
#ifndef AQ_HASH_H
#define AQ_HASH_H

#include <stddef.h>
#include <stdint.h>

void hash_sha256(const void *data, size_t len, uint8_t out[32]);
/* out receives 64 lowercase hex digits and a NUL. */
void hash_sha256_hex(const void *data, size_t len, char out[65]);
/* MD5 in base64, as S3's Content-MD5 wants it (24 chars + NUL). */
void hash_md5_base64(const void *data, size_t len, char out[25]);
/* Lowercase hex of n bytes into out (2n+1 bytes). */
void hash_hex(const uint8_t *in, size_t n, char *out);

#endif
