/* dashboard: GET / serves http/dashboard.html, one page of HTML, CSS and
 * plain JavaScript compiled into the binary (the assembler's .incbin), so
 * the server needs no files and the page no CDN. The page reads the JSON
 * API with the token the operator types (kept in the browser's
 * sessionStorage, or given once as /#token=...). */
#include "http.h"

/* The page's bytes, from the assembler below. */
extern const char aq_dashboard_html[];
extern const char aq_dashboard_html_end[];

__asm__(".section .rodata\n"
        ".global aq_dashboard_html\n"
        ".global aq_dashboard_html_end\n"
        "aq_dashboard_html:\n"
        ".incbin \"http/dashboard.html\"\n"
        "aq_dashboard_html_end:\n"
        ".byte 0\n"
        ".previous\n");

enum MHD_Result http_dashboard(hreq *r)
{
    size_t n = (size_t)(aq_dashboard_html_end - aq_dashboard_html);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, (void *)aq_dashboard_html, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'");
    return http_send(r, 200, resp);
}
