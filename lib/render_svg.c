#include "render_style.h"
int render_svg(const render_params *p, int size, buf *out)
{
    (void)p, (void)size, (void)out;
    return render_fail("svg: not yet");
}
