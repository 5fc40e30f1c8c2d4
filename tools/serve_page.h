/* serve_page.h — the chat page `phiq serve` answers GET / with. */
#ifndef PHIQ_TOOLS_SERVE_PAGE_H
#define PHIQ_TOOLS_SERVE_PAGE_H
static const char serve_page_html[] = "<!doctype html><title>phiq</title><p>phiq serve</p>\n";
#endif
