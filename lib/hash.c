#include "hash.h"

#include <openssl/evp.h>

static void digest(const EVP_MD *md, const void *data, size_t len, uint8_t *out)
{
    unsigned int n = 0;
    EVP_Digest(data, len, out, &n, md, NULL);
}

void hash_sha256(const void *data, size_t len, uint8_t out[32])
{
    digest(EVP_sha256(), data, len, out);
}

void hash_hex(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void hash_sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t d[32];
    hash_sha256(data, len, d);
    hash_hex(d, sizeof d, out);
}

void hash_md5_base64(const void *data, size_t len, char out[25])
{
    uint8_t d[16];
    digest(EVP_md5(), data, len, d);
    EVP_EncodeBlock((unsigned char *)out, d, sizeof d);
}
