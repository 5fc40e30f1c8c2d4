/* template.h — a Jinja interpreter for the subset of Jinja2 that chat
 * templates use, configured as transformers' apply_chat_template configures
 * jinja2: an immutable sandbox, trim_blocks and lstrip_blocks, the loopcontrols
 * extension, tojson as json.dumps(ensure_ascii=False), raise_exception and
 * strftime_now as globals. Depends on libc only (and core/common for errors).
 *
 * A template is parsed once (unknown tags, filters and tests are errors then,
 * as in jinja2) and rendered any number of times, from several threads at
 * once: rendering reads the parsed template and allocates from its own arena.
 * Rendering is bounded (output size, memory, loop iterations, call depth):
 * a runaway template is an error, never a crash. */
#ifndef PHIQ_TEMPLATE_TEMPLATE_H
#define PHIQ_TEMPLATE_TEMPLATE_H

#include <stddef.h>

typedef struct phiq_tmpl phiq_tmpl;

/* Limits for one render; zero fields take the defaults below. */
typedef struct phiq_tmpl_limits {
    size_t max_output;   /* bytes of rendered text (default 16 MiB) */
    size_t max_memory;   /* bytes the render may allocate (default 256 MiB) */
    long max_steps;      /* loop iterations + calls + filters (default 10 million) */
} phiq_tmpl_limits;

/* Parses src (len bytes, need not be NUL-terminated). NULL with phiq_error()
 * set ("template: line N: ...") on a syntax error or an unsupported feature. */
phiq_tmpl *phiq_tmpl_parse(const char *src, size_t len);
void phiq_tmpl_free(phiq_tmpl *t);

/* Renders with the variables of vars_json, a JSON object whose keys become the
 * template's global names (JSON null is Python None; ints stay ints and floats
 * floats, as json.loads reads them). Returns the malloc'd NUL-terminated text
 * and its length in *len, or NULL with phiq_error() set: a runtime error,
 * raise_exception(msg) (the message is quoted), or a limit. */
char *phiq_tmpl_render(const phiq_tmpl *t, const char *vars_json, const phiq_tmpl_limits *limits, size_t *len);

#endif
