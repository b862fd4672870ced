/* initials: the one or two letters an initials avatar shows, from a name
 * in any script ("Zoë Ångström" -> "ZÅ", "Иван Петров" -> "ИП",
 * "李小龙" -> "李", "محمد علي" -> "مع", "jane.doe" -> "JD"). */
#ifndef AQ_INITIALS_H
#define AQ_INITIALS_H

#include <stddef.h>

/* Writes the initials of the UTF-8 text s (len bytes) to out (n bytes,
 * NUL-terminated): the first letter of the first word and of the last
 * word (words split at spaces, '.', '_', '-', '+', '@' ends the text), each
 * with its combining marks, upper-cased where the script has case (Latin,
 * Greek, Cyrillic; a fixed table, not the locale, so every machine agrees);
 * one letter only for a single word or a CJK name. Returns the number of
 * letters (1 or 2), or 0 when s has no visible letter (only spaces,
 * punctuation separators, controls or invisible characters) or is not
 * UTF-8. */
int initials_of(const char *s, size_t len, char *out, size_t n);

#endif
