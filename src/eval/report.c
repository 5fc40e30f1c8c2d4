/* report.c — the trade-off report: report.json, report.md and a
 * self-contained report.html (inline SVG charts, no scripts, no network) of
 * size against KL divergence and against decode speed, Pareto front marked. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "eval/eval.h"

/* ---- a growable string ------------------------------------------------------ */
typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) PHIQ_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) return;
        if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)k;
        char *ns = realloc(b->s, nc);
        if (!ns) return;
        b->s = ns;
        b->cap = nc;
    }
}

static void sb_html(sbuf *b, const char *s) { /* escaped text */
    for (; *s; s++) {
        switch (*s) {
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '&': sb_printf(b, "&amp;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        default: sb_printf(b, "%c", *s);
        }
    }
}

static void json_num(sbuf *b, double v) {
    if (isfinite(v)) sb_printf(b, "%.6g", v);
    else sb_printf(b, "null");
}

int phiq_report_pareto(const phiq_report_row *rows, int n, int speed, int *idx) {
    int k = 0;
    for (int i = 0; i < n; i++) {
        double qi = speed ? -rows[i].decode_tok_s : rows[i].kld_mean;
        if (!isfinite(qi)) continue;
        int dominated = 0;
        for (int j = 0; j < n && !dominated; j++) {
            if (j == i) continue;
            double qj = speed ? -rows[j].decode_tok_s : rows[j].kld_mean;
            if (!isfinite(qj)) continue;
            if (rows[j].size_bytes <= rows[i].size_bytes && qj <= qi &&
                (rows[j].size_bytes < rows[i].size_bytes || qj < qi))
                dominated = 1;
        }
        if (!dominated) idx[k++] = i;
    }
    for (int a = 1; a < k; a++) /* sort by size */
        for (int c = a; c > 0 && rows[idx[c]].size_bytes < rows[idx[c - 1]].size_bytes; c--) {
            int t = idx[c]; idx[c] = idx[c - 1]; idx[c - 1] = t;
        }
    return k;
}

static int on_front(const int *front, int nf, int i) {
    for (int q = 0; q < nf; q++)
        if (front[q] == i) return 1;
    return 0;
}

char *phiq_report_table(const phiq_report_row *rows, int n) {
    sbuf b = {0};
    int front[64], nf = phiq_report_pareto(rows, n < 64 ? n : 64, 0, front);
    sb_printf(&b, "| type | size MB | bpw | ppl | KLD mean | KLD p99 | top-1 %% | prefill tok/s | decode tok/s | best at its size |\n");
    sb_printf(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|\n");
    for (int i = 0; i < n; i++) {
        const phiq_report_row *r = &rows[i];
        sb_printf(&b, "| %s | %.2f | %.2f | %.4f | %.6f | %.6f | %.2f | %.1f | %.1f | %s |\n", r->type,
                  (double)r->size_bytes / 1e6, r->bpw, r->ppl, r->kld_mean, r->kld_p99, 100 * r->top1,
                  r->prefill_tok_s, r->decode_tok_s, on_front(front, nf, i) ? "yes" : "");
    }
    return b.s;
}

void phiq_report_cpu_name(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        snprintf(buf, cap, "%.*s", (int)strcspn(v, "\n"), v);
        break;
    }
    fclose(f);
}

/* "KLD 0.00296 +- 0.00004, top-1 96.5%, decode 812 tok/s" */
static void row_cost(sbuf *b, const phiq_report_row *r) {
    sb_printf(b, "%.2f MB, KLD %.5f", (double)r->size_bytes / 1e6, r->kld_mean);
    if (r->kld_err > 0) sb_printf(b, " \u00b1 %.5f", r->kld_err);
    sb_printf(b, ", top-1 %.1f%%, decode %.0f tok/s, prefill %.0f tok/s", 100 * r->top1, r->decode_tok_s, r->prefill_tok_s);
}

/* Memory budgets: device, and what its weights may take (the rest is the
 * OS, the KV cache and the application). */
static const struct { const char *device; double bytes; } BUDGETS[] = {
    {"a phone or small board with 4 GB of RAM (about 2 GB for the weights)", 2e9},
    {"an 8 GB laptop, phone or board (about 5 GB for the weights)", 5e9},
    {"a 16 GB AI PC (about 11 GB for the weights)", 11e9},
    {"a 32 GB workstation (about 24 GB for the weights)", 24e9},
};

char *phiq_report_advice(const phiq_report_row *rows, int n, const phiq_report_meta *meta) {
    sbuf b = {0};
    const char *ref = n ? rows[0].type : "-";
    sb_printf(&b, "## Which file to ship\n\n");
    sb_printf(&b, "Measured on %s with %d threads; KL divergence from %s", meta && meta->cpu ? meta->cpu : "this machine",
              meta ? meta->threads : 0, ref);
    if (meta && meta->text) sb_printf(&b, " on %s", meta->text);
    if (meta && meta->calib) sb_printf(&b, "; the calibrated rows (+calib, -mix) were fitted on %s only", meta->calib);
    sb_printf(&b, ". The margin after a KLD is one standard error of the mean: two files closer than twice "
                  "it are a tie, and then the smaller (faster) one is the one to ship.\n\n");
    int front[64], nf = phiq_report_pareto(rows, n < 64 ? n : 64, 0, front);
    sb_printf(&b, "Best file at each size (nothing else is both smaller and closer to %s):\n\n", ref);
    for (int q = 0; q < nf; q++) {
        const phiq_report_row *r = &rows[front[q]];
        sb_printf(&b, "- from %.2f MB: **%s** (", (double)r->size_bytes / 1e6, r->type);
        row_cost(&b, r);
        sb_printf(&b, ")\n");
    }
    sb_printf(&b, "\nFor each memory budget:\n\n");
    for (size_t d = 0; d < sizeof BUDGETS / sizeof BUDGETS[0]; d++) {
        int best = -1;
        for (int i = 0; i < n; i++) {
            if ((double)rows[i].size_bytes > BUDGETS[d].bytes || !isfinite(rows[i].kld_mean)) continue;
            if (best < 0 || rows[i].kld_mean < rows[best].kld_mean ||
                (rows[i].kld_mean == rows[best].kld_mean && rows[i].size_bytes < rows[best].size_bytes))
                best = i;
        }
        /* a smaller file within the margin of the least-KLD one is a tie: ship the smallest such */
        const int lo = best;
        for (int i = 0; lo >= 0 && i < n; i++) {
            const phiq_report_row *r = &rows[i], *w = &rows[lo];
            const double m = 2 * sqrt(r->kld_err * r->kld_err + w->kld_err * w->kld_err);
            if (r->size_bytes < rows[best].size_bytes && m > 0 && r->kld_mean - w->kld_mean <= m) best = i;
        }
        sb_printf(&b, "- %s: ", BUDGETS[d].device);
        if (best < 0) {
            uint64_t small = 0;
            for (int i = 0; i < n; i++)
                if (!small || rows[i].size_bytes < small) small = rows[i].size_bytes;
            sb_printf(&b, "nothing here fits (the smallest file is %.2f MB)\n", (double)small / 1e6);
        } else {
            sb_printf(&b, "ship **%s** (", rows[best].type);
            row_cost(&b, &rows[best]);
            sb_printf(&b, ")\n");
        }
    }
    return b.s;
}

/* One scatter chart: x = size (MB, linear), y = metric; log y for KLD. */
static void svg_chart(sbuf *b, const phiq_report_row *rows, int n, int speed, const char *title) {
    const double W = 560, H = 360, L = 78, R = 20, T = 36, B = 50;
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    const double kld_floor = 1e-6; /* log axis: the reference itself has KLD 0 */
    for (int i = 0; i < n; i++) {
        double x = (double)rows[i].size_bytes / 1e6;
        double y = speed ? rows[i].decode_tok_s : log10(fmax(rows[i].kld_mean, kld_floor));
        if (!isfinite(y)) continue;
        xmin = fmin(xmin, x); xmax = fmax(xmax, x);
        ymin = fmin(ymin, y); ymax = fmax(ymax, y);
    }
    if (!isfinite(xmin)) { xmin = 0; xmax = 1; ymin = 0; ymax = 1; }
    if (xmax - xmin < 1e-9) { xmin -= 1; xmax += 1; }
    if (ymax - ymin < 1e-9) { ymin -= 1; ymax += 1; }
    double xpad = (xmax - xmin) * 0.08, ypad = (ymax - ymin) * 0.1;
    xmin -= xpad; xmax += xpad; ymin -= ypad; ymax += ypad;
    if (speed && ymin < 0) ymin = 0;
#define PX(x) (L + ((x) - xmin) / (xmax - xmin) * (W - L - R))
#define PY(y) (H - B - ((y) - ymin) / (ymax - ymin) * (H - T - B))
    sb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
              W, H, W, H);
    sb_html(b, title);
    sb_printf(b, "\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n");
    sb_printf(b, "<text x=\"%.0f\" y=\"22\" font-size=\"15\" font-weight=\"bold\">", L);
    sb_html(b, title);
    sb_printf(b, "</text>\n");
    /* axes and ticks */
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", L, H - B, W - R, H - B);
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", L, T, L, H - B);
    for (int t = 0; t <= 4; t++) {
        double xv = xmin + (xmax - xmin) * t / 4, yv = ymin + (ymax - ymin) * t / 4;
        sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%.3g</text>\n", PX(xv), H - B + 16, xv);
        if (speed) /* plain numbers: tokens/s in the thousands must not turn into 2.44e+03 */
            sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.*f</text>\n", L - 6, PY(yv) + 4,
                      fabs(yv) >= 100 ? 0 : 1, yv);
        else
            sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.1e</text>\n", L - 6, PY(yv) + 4, pow(10, yv));
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", L, PY(yv), W - R, PY(yv));
    }
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\">size (MB)</text>\n", (L + W - R) / 2, H - 12);
    sb_printf(b, "<text x=\"16\" y=\"%.1f\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 16 %.1f)\">%s</text>\n",
              (T + H - B) / 2, (T + H - B) / 2, speed ? "decode tokens/s (higher is better)" : "KL divergence vs reference (log, lower is better)");
    /* Pareto front */
    int idx[64], k = phiq_report_pareto(rows, n < 64 ? n : 64, speed, idx);
    if (k > 1) {
        sb_printf(b, "<polyline class=\"pareto\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"6 3\" points=\"");
        for (int i = 0; i < k; i++) {
            const phiq_report_row *r = &rows[idx[i]];
            double y = speed ? r->decode_tok_s : log10(fmax(r->kld_mean, kld_floor));
            sb_printf(b, "%.1f,%.1f ", PX((double)r->size_bytes / 1e6), PY(y));
        }
        sb_printf(b, "\"/>\n");
    }
    for (int i = 0; i < n; i++) {
        const phiq_report_row *r = &rows[i];
        double y = speed ? r->decode_tok_s : log10(fmax(r->kld_mean, kld_floor));
        if (!isfinite(y)) continue;
        int on_front = 0;
        for (int j = 0; j < k; j++) on_front |= idx[j] == i;
        double cx = PX((double)r->size_bytes / 1e6), cy = PY(y);
        sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%d\" fill=\"%s\"><title>", cx, cy, on_front ? 6 : 4,
                  on_front ? "#d62728" : "#1f77b4");
        sb_html(b, r->type);
        sb_printf(b, "</title></circle>\n<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", cx + 8, cy - 6);
        sb_html(b, r->type);
        sb_printf(b, "</text>\n");
    }
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#d62728\" text-anchor=\"end\">&#8212; Pareto front</text>\n", W - R, T + 4);
    sb_printf(b, "</svg>\n");
#undef PX
#undef PY
}

static int write_text(const char *dir, const char *name, const char *text) {
    char *p = phiq_path_join(dir, name);
    if (!p) return phiq_fail(PHIQ_ENOMEM, "out of memory");
    phiq_outfile o;
    int rc = phiq_outfile_open(&o, p);
    if (!rc) rc = phiq_outfile_write(&o, text, strlen(text));
    if (!rc) rc = phiq_outfile_commit(&o);
    else if (o.f) phiq_outfile_abort(&o);
    free(p);
    return rc;
}

int phiq_report_write(const char *dir, const char *model_name, const phiq_report_row *rows, int n) {
    return phiq_report_write_meta(dir, model_name, rows, n, NULL);
}

/* Markdown bullets and bold of the advice as HTML. */
static void md_to_html(sbuf *h, const char *md) {
    int in_list = 0;
    for (const char *l = md; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t len = e ? (size_t)(e - l) : strlen(l);
        char *line = strndup(l, len);
        if (!line) return;
        char *text = line;
        if (!strncmp(line, "## ", 3)) {
            if (in_list) sb_printf(h, "</ul>\n"), in_list = 0;
            sb_printf(h, "<h2>");
            sb_html(h, line + 3);
            sb_printf(h, "</h2>\n");
        } else if (len) {
            const int item = !strncmp(line, "- ", 2);
            if (item && !in_list) sb_printf(h, "<ul class=\"advice\">\n"), in_list = 1;
            if (!item && in_list) sb_printf(h, "</ul>\n"), in_list = 0;
            sb_printf(h, item ? "<li>" : "<p>");
            if (item) text += 2;
            int bold = 0; /* **x** -> <b>x</b> */
            for (char *p = text; *p;) {
                char *st = strstr(p, "**");
                if (st) *st = 0;
                sb_html(h, p);
                if (!st) break;
                sb_printf(h, bold ? "</b>" : "<b>");
                bold = !bold;
                p = st + 2;
            }
            sb_printf(h, item ? "</li>\n" : "</p>\n");
        }
        free(line);
        l = e ? e + 1 : NULL;
    }
    if (in_list) sb_printf(h, "</ul>\n");
}

int phiq_report_write_meta(const char *dir, const char *model_name, const phiq_report_row *rows, int n,
                           const phiq_report_meta *meta) {
    sbuf j = {0}, md = {0}, h = {0};
    char *advice = phiq_report_advice(rows, n, meta);
    /* JSON */
    sb_printf(&j, "{\n  \"model\": \"");
    for (const char *s = model_name; *s; s++) {
        if (*s == '"' || *s == '\\') sb_printf(&j, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) sb_printf(&j, "\\u%04x", *s);
        else sb_printf(&j, "%c", *s);
    }
    sb_printf(&j, "\",\n  \"rows\": [\n");
    for (int i = 0; i < n; i++) {
        const phiq_report_row *r = &rows[i];
        sb_printf(&j, "    {\"type\": \"%s\", \"size_bytes\": %llu, \"bpw\": ", r->type, (unsigned long long)r->size_bytes);
        json_num(&j, r->bpw); sb_printf(&j, ", \"ppl\": "); json_num(&j, r->ppl);
        sb_printf(&j, ", \"kld_mean\": "); json_num(&j, r->kld_mean);
        sb_printf(&j, ", \"kld_p99\": "); json_num(&j, r->kld_p99);
        sb_printf(&j, ", \"top1\": "); json_num(&j, r->top1);
        sb_printf(&j, ", \"prefill_tok_s\": "); json_num(&j, r->prefill_tok_s);
        sb_printf(&j, ", \"decode_tok_s\": "); json_num(&j, r->decode_tok_s);
        sb_printf(&j, ", \"kld_err\": "); json_num(&j, r->kld_err);
        int fr[64], nfr = phiq_report_pareto(rows, n < 64 ? n : 64, 0, fr);
        sb_printf(&j, ", \"best_at_size\": %s", on_front(fr, nfr, i) ? "true" : "false");
        sb_printf(&j, "}%s\n", i + 1 < n ? "," : "");
    }
    sb_printf(&j, "  ]");
    if (meta) {
        sb_printf(&j, ",\n  \"machine\": {\"cpu\": \"");
        for (const char *c = meta->cpu ? meta->cpu : ""; *c; c++)
            if (*c == '"' || *c == '\\') sb_printf(&j, "\\%c", *c);
            else if ((unsigned char)*c >= 0x20) sb_printf(&j, "%c", *c);
        sb_printf(&j, "\", \"threads\": %d}", meta->threads);
    }
    sb_printf(&j, "\n}\n");
    /* Markdown */
    char *table = phiq_report_table(rows, n);
    sb_printf(&md, "# phiq report: %s\n\nKL divergence and top-1 agreement are measured against the highest-precision "
                   "row (%s); perplexity with llama.cpp's conventions; speeds are medians on this machine.\n\n%s",
              model_name, n ? rows[0].type : "-", table ? table : "");
    sb_printf(&md, "\n%s", advice ? advice : "");
    /* HTML */
    sb_printf(&h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>phiq report: ");
    sb_html(&h, model_name);
    sb_printf(&h, "</title>\n<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
                  "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}"
                  "th{background:#f4f4f4}td:first-child{text-align:left}.charts{display:flex;flex-wrap:wrap;gap:20px}"
                  "tr.front td:first-child{font-weight:bold;color:#d62728}</style></head>\n<body>\n<h1>phiq report: ");
    sb_html(&h, model_name);
    sb_printf(&h, "</h1>\n<p>Which precision should this device use? Each row is the same model converted by phiq; "
                  "KL divergence and top-1 agreement are against <b>");
    sb_html(&h, n ? rows[0].type : "-");
    sb_printf(&h, "</b>. Red points and bold names are on the Pareto front (nothing else is both smaller and better).</p>\n"
                  "<table id=\"results\"><tr><th>type</th><th>size MB</th><th>bits/weight</th><th>perplexity</th>"
                  "<th>KLD mean</th><th>KLD p99</th><th>top-1 %%</th><th>prefill tok/s</th><th>decode tok/s</th></tr>\n");
    int front[64], nf = phiq_report_pareto(rows, n < 64 ? n : 64, 0, front);
    for (int i = 0; i < n; i++) {
        const phiq_report_row *r = &rows[i];
        sb_printf(&h, "<tr%s><td>", on_front(front, nf, i) ? " class=\"front\"" : "");
        sb_html(&h, r->type);
        sb_printf(&h, "</td><td>%.2f</td><td>%.2f</td><td>%.4f</td><td>%.6f</td><td>%.6f</td><td>%.2f</td><td>%.1f</td><td>%.1f</td></tr>\n",
                  (double)r->size_bytes / 1e6, r->bpw, r->ppl, r->kld_mean, r->kld_p99, 100 * r->top1, r->prefill_tok_s,
                  r->decode_tok_s);
    }
    sb_printf(&h, "</table>\n");
    md_to_html(&h, advice);
    sb_printf(&h, "<div class=\"charts\">\n");
    svg_chart(&h, rows, n, 0, "Size vs KL divergence");
    svg_chart(&h, rows, n, 1, "Size vs decode speed");
    sb_printf(&h, "</div>\n<p>Generated by phiq %s.</p>\n</body></html>\n", PHIQ_VERSION);

    int rc = 0;
    if (!j.s || !md.s || !h.s) rc = phiq_fail(PHIQ_ENOMEM, "report: out of memory");
    if (!rc) rc = write_text(dir, "report.json", j.s);
    if (!rc) rc = write_text(dir, "report.md", md.s);
    if (!rc) rc = write_text(dir, "report.html", h.s);
    free(j.s); free(md.s); free(h.s); free(table); free(advice);
    return rc;
}
