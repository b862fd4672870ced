/* utf8: see utf8.h. */
#include "utf8.h"

int utf8_decode(const char *s, size_t len, uint32_t *cp, int max)
{
    int n = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        int extra = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (extra < 0 || n == max || (size_t)extra >= len - i)
            return -1;
        uint32_t v = extra ? c & (0x3fu >> extra) : c;
        for (int k = 1; k <= extra; k++) {
            unsigned char d = (unsigned char)s[i + (size_t)k];
            if ((d & 0xc0) != 0x80)
                return -1;
            v = (v << 6) | (d & 0x3f);
        }
        cp[n++] = v;
        i += (size_t)extra + 1;
    }
    return n;
}

size_t utf8_encode(uint32_t v, char *o)
{
    if (v < 0x80) {
        o[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        o[0] = (char)(0xc0 | (v >> 6)), o[1] = (char)(0x80 | (v & 0x3f));
        return 2;
    }
    if (v < 0x10000) {
        o[0] = (char)(0xe0 | (v >> 12)), o[1] = (char)(0x80 | ((v >> 6) & 0x3f));
        o[2] = (char)(0x80 | (v & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (v >> 18)), o[1] = (char)(0x80 | ((v >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((v >> 6) & 0x3f)), o[3] = (char)(0x80 | (v & 0x3f));
    return 4;
}
