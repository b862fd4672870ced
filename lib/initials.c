/* initials: word splitting and case mapping over code points. */
#include "initials.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "utf8.h"

#define MAX_CP 256

typedef struct cp_range {
    uint32_t lo, hi;
} cp_range;

static bool in_ranges(uint32_t v, const cp_range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (v >= r[i].lo && v <= r[i].hi)
            return true;
    return false;
}

/* Marks that belong to the letter before them. */
static const cp_range combining[] = {
    {0x0300, 0x036f}, {0x0483, 0x0489}, {0x0591, 0x05bd}, {0x0610, 0x061a}, {0x064b, 0x065f},
    {0x0670, 0x0670}, {0x06d6, 0x06dc}, {0x0900, 0x0903}, {0x093a, 0x094f}, {0x0951, 0x0957},
    {0x0962, 0x0963}, {0x1ab0, 0x1aff}, {0x1dc0, 0x1dff}, {0x20d0, 0x20ff}, {0xfe20, 0xfe2f},
};

/* Nothing to see: controls, format characters, spaces of every width,
 * variation selectors, tags. */
static const cp_range invisible[] = {
    {0x0000, 0x0020}, {0x007f, 0x00a0}, {0x00ad, 0x00ad}, {0x034f, 0x034f}, {0x061c, 0x061c},
    {0x115f, 0x1160}, {0x1680, 0x1680}, {0x180b, 0x180e}, {0x2000, 0x200f}, {0x2028, 0x202f},
    {0x205f, 0x206f}, {0x3000, 0x3000}, {0x3164, 0x3164}, {0xfe00, 0xfe0f}, {0xfeff, 0xfeff},
    {0xffa0, 0xffa0}, {0xfff0, 0xfffb}, {0x1d173, 0x1d17a}, {0xe0000, 0xe0fff},
};

/* Scripts without spaces between a name's parts: one character is the
 * initial (Han, kana, Hangul). */
static const cp_range cjk[] = {
    {0x2e80, 0x2fdf}, {0x3040, 0x30ff}, {0x3100, 0x312f}, {0x3400, 0x4dbf}, {0x4e00, 0x9fff},
    {0xac00, 0xd7af}, {0xf900, 0xfaff}, {0x20000, 0x3134f},
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static bool is_separator(uint32_t v)
{
    return v == '.' || v == '_' || v == '-' || v == '+' || in_ranges(v, invisible, N(invisible));
}

/* Upper case for the scripts with case that names mostly use. */
static uint32_t upper(uint32_t v)
{
    if (v >= 'a' && v <= 'z')
        return v - 32;
    if ((v >= 0xe0 && v <= 0xfe && v != 0xf7))
        return v - 32;
    if (v >= 0x100 && v <= 0x17f && v != 0x131 && v != 0x138 && v != 0x149 && v != 0x17f) {
        /* Latin Extended-A pairs: even upper, odd lower, except the runs
         * 0x139..0x148 and 0x179..0x17e where odd is upper */
        bool odd_upper = (v >= 0x139 && v <= 0x148) || (v >= 0x179 && v <= 0x17e);
        return odd_upper ? (v % 2 == 0 ? v - 1 : v) : (v % 2 == 1 ? v - 1 : v);
    }
    if (v >= 0x3b1 && v <= 0x3c9)
        return v == 0x3c2 ? 0x3a3 : v - 32;
    if (v >= 0x430 && v <= 0x44f)
        return v - 32;
    if (v >= 0x450 && v <= 0x45f)
        return v - 80;
    return v;
}

/* Appends the letter starting at cp[i] and its combining marks. */
static size_t put_letter(const uint32_t *cp, int n, int i, char *o, size_t room)
{
    size_t len = 0;
    char tmp[4];
    for (int k = i; k < n && (k == i || in_ranges(cp[k], combining, N(combining))); k++) {
        size_t w = utf8_encode(k == i ? upper(cp[k]) : cp[k], tmp);
        if (len + w >= room)
            break;
        memcpy(o + len, tmp, w);
        len += w;
    }
    return len;
}

int initials_of(const char *s, size_t len, char *out, size_t n)
{
    uint32_t cp[MAX_CP];
    const char *at = memchr(s, '@', len);
    if (at)
        len = (size_t)(at - s);
    int count = utf8_decode(s, len, cp, MAX_CP);
    out[0] = '\0';
    if (count <= 0 || n < 2)
        return 0;
    int first = -1, last = -1;
    for (int i = 0; i < count; i++) {
        bool starts = !is_separator(cp[i]) && !in_ranges(cp[i], combining, N(combining)) &&
                      (i == 0 || is_separator(cp[i - 1]));
        if (starts) {
            if (first < 0)
                first = i;
            last = i;
        }
    }
    if (first < 0)
        return 0;
    size_t o = put_letter(cp, count, first, out, n);
    int letters = 1;
    if (last != first && !in_ranges(cp[first], cjk, N(cjk))) {
        o += put_letter(cp, count, last, out + o, n - o);
        letters = 2;
    }
    out[o] = '\0';
    return o ? letters : 0;
}
