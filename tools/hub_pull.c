/* hub_pull.c — downloads a model from the Hugging Face Hub into the
 * huggingface_hub cache (libcurl, libcrypto for sha256), and
 * phiq_cli_model_path, which lets every command take ORG/NAME where it takes
 * a model path. The layout rules and parsers are in src/hub/hub.c; this file
 * is the network and the file moves. CLI only: libphiq never links curl.
 *
 * One file: HEAD /{repo}/resolve/{commit}/{path} (not following absolute
 * redirects: their Location is where an LFS blob lives), then under the blob's
 * lock GET it into blobs/<etag>.incomplete — resuming with Range from what is
 * already there, retrying a dropped connection — check its sha256 against an
 * LFS ETag, rename it to blobs/<etag> and link snapshots/<commit>/<path>.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "core/common.h"
#include "hub/hub.h"

#define PULL_RETRIES 5

typedef struct http_meta {
    long status;
    char etag[160], linked_etag[160], commit[64], location[4096], linked_size[32], content_length[32];
    char error_code[64], error_msg[256];
} http_meta;

typedef struct pull_item {
    const char *path;
    char etag[130];
    char url[8192]; /* where the bytes are (after the HEAD's redirect) */
    int64_t size;
    int cached;
} pull_item;

typedef struct puller {
    const char *cmd;
    char endpoint[2048];
    char token[1024];
    int have_token;
    int quiet, tty;
    char cache[4096];
    char *repo_dir, *lock_dir;
    const char *repo;
    /* progress */
    const char *cur_name;
    int64_t cur_size, cur_base, total, total_done;
    int n_files, i_file;
    double t0, last_draw;
} puller;

static size_t on_header(char *b, size_t sz, size_t n, void *ud) {
    http_meta *m = ud;
    size_t len = sz * n;
    if (len >= 5 && !strncmp(b, "HTTP/", 5)) { /* a new response (redirect chain): start over */
        memset(m, 0, sizeof *m);
        return len;
    }
    if (phiq_hub_header(b, len, "ETag", m->etag, sizeof m->etag) ||
        phiq_hub_header(b, len, "X-Linked-Etag", m->linked_etag, sizeof m->linked_etag) ||
        phiq_hub_header(b, len, "X-Repo-Commit", m->commit, sizeof m->commit) ||
        phiq_hub_header(b, len, "Location", m->location, sizeof m->location) ||
        phiq_hub_header(b, len, "X-Linked-Size", m->linked_size, sizeof m->linked_size) ||
        phiq_hub_header(b, len, "Content-Length", m->content_length, sizeof m->content_length) ||
        phiq_hub_header(b, len, "X-Error-Code", m->error_code, sizeof m->error_code) ||
        phiq_hub_header(b, len, "X-Error-Message", m->error_msg, sizeof m->error_msg)) {
    }
    return len;
}

typedef struct membuf {
    char *p;
    size_t n, cap, limit;
} membuf;

static size_t on_mem(char *b, size_t sz, size_t n, void *ud) {
    membuf *m = ud;
    size_t len = sz * n;
    if (m->n + len + 1 > m->limit) return 0;
    if (m->n + len + 1 > m->cap) {
        size_t c = (m->n + len + 1) * 2;
        char *q = realloc(m->p, c);
        if (!q) return 0;
        m->p = q;
        m->cap = c;
    }
    memcpy(m->p + m->n, b, len);
    m->n += len;
    m->p[m->n] = 0;
    return len;
}

static CURL *easy(puller *P, const char *url, http_meta *m, struct curl_slist **hdrs, int auth) {
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "phiq/" PHIQ_VERSION);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, m);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled connection fails after 30 s */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    *hdrs = NULL;
    if (auth && P->have_token) {
        char h[1100];
        snprintf(h, sizeof h, "Authorization: Bearer %s", P->token);
        *hdrs = curl_slist_append(*hdrs, h);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    }
    return c;
}

/* One line for an HTTP failure of the Hub, as the users see them. */
static int http_fail(puller *P, const http_meta *m, const char *what) {
    if (m->status == 401 || m->status == 403)
        return phiq_cli_fail(P->cmd, "%s: %s (HTTP %ld): the model is gated or private: accept the licence on the Hub "
                                     "and set HF_TOKEN (or --token)%s%s", P->repo, what, m->status,
                             P->have_token ? "; the token given was refused" : "", "");
    if (m->status == 404) {
        if (!strcmp(m->error_code, "RevisionNotFound"))
            return phiq_cli_fail(P->cmd, "%s: %s: no such revision on the Hub (HTTP 404)", P->repo, what);
        if (!strcmp(m->error_code, "EntryNotFound"))
            return phiq_cli_fail(P->cmd, "%s: %s: no such file in the repo (HTTP 404)", P->repo, what);
        return phiq_cli_fail(P->cmd, "%s: %s: no such repo or revision on the Hub (HTTP 404)", P->repo, what);
    }
    return phiq_cli_fail(P->cmd, "%s: %s: HTTP %ld from the Hub%s%s", P->repo, what, m->status,
                         m->error_msg[0] ? ": " : "", m->error_msg);
}

static int net_fail(puller *P, CURLcode rc, const char *what) {
    return phiq_cli_fail(P->cmd, "%s: %s: cannot reach %s (%s); with the files already in the cache, "
                                 "set HF_HUB_OFFLINE=1", P->repo, what, P->endpoint, curl_easy_strerror(rc));
}

/* ---- progress: the current file and the whole pull --------------------------- */
static void human(char *b, size_t n, double v) {
    if (v >= 1e9) snprintf(b, n, "%.2f GB", v / 1e9);
    else if (v >= 1e6) snprintf(b, n, "%.1f MB", v / 1e6);
    else snprintf(b, n, "%.1f kB", v / 1e3);
}

static void draw(puller *P, int64_t file_done, int final) {
    if (P->quiet || !P->tty) return;
    double t = phiq_now();
    if (!final && t - P->last_draw < 0.1) return;
    P->last_draw = t;
    int64_t all = P->total_done + file_done - P->cur_base;
    double rate = t > P->t0 ? (double)(all) / (t - P->t0) : 0;
    int w = 24, fill = P->cur_size > 0 ? (int)(w * (double)file_done / (double)P->cur_size) : 0;
    if (fill > w) fill = w;
    char bar[32], a[32], b[32], r[32];
    for (int k = 0; k < w; k++) bar[k] = k < fill ? '#' : '.';
    bar[w] = 0;
    human(a, sizeof a, (double)file_done);
    human(b, sizeof b, (double)(P->cur_size > 0 ? P->cur_size : 0));
    human(r, sizeof r, rate);
    int pct = P->total > 0 ? (int)(100.0 * (double)all / (double)P->total) : 0;
    fprintf(stderr, "\r%-28.28s [%s] %9s/%-9s %9s/s | %d/%d files, %3d%% of all ", P->cur_name, bar, a, b, r,
            P->i_file, P->n_files, pct > 100 ? 100 : pct);
}

typedef struct dl {
    puller *P;
    FILE *f;
    int64_t offset; /* bytes already in the file when this request started */
    int64_t got;
    long checked_status;
    int restart;      /* the server ignored Range: the file was truncated */
    int write_errno;
    membuf errbody;
    CURL *c;
} dl;

static size_t on_body(char *b, size_t sz, size_t n, void *ud) {
    dl *d = ud;
    size_t len = sz * n;
    if (!d->checked_status) {
        curl_easy_getinfo(d->c, CURLINFO_RESPONSE_CODE, &d->checked_status);
        if (d->checked_status == 200 && d->offset > 0) { /* full body after all: start over */
            if (ftruncate(fileno(d->f), 0) != 0 || fseek(d->f, 0, SEEK_SET) != 0) { d->write_errno = errno; return 0; }
            d->offset = 0;
            d->restart = 1;
        }
    }
    if (d->checked_status >= 300) return on_mem(b, sz, n, &d->errbody);
    if (fwrite(b, 1, len, d->f) != len) { d->write_errno = errno ? errno : EIO; return 0; }
    d->got += (int64_t)len;
    draw(d->P, d->offset + d->got, 0);
    return len;
}

static int sha256_file(const char *path, char hex[65]) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -1;
    static unsigned char buf[1 << 16];
    size_t r;
    while (!rc && (r = fread(buf, 1, sizeof buf, f)) > 0)
        if (EVP_DigestUpdate(ctx, buf, r) != 1) rc = -1;
    if (ferror(f)) rc = -1;
    unsigned char md[32];
    unsigned int mdl = 0;
    if (!rc && EVP_DigestFinal_ex(ctx, md, &mdl) != 1) rc = -1;
    EVP_MD_CTX_free(ctx);
    fclose(f);
    for (unsigned i = 0; !rc && i < 32; i++) sprintf(hex + 2 * i, "%02x", md[i]);
    return rc;
}

/* Creates (or replaces, atomically) the relative symlink at link_path. */
static int make_link(puller *P, const char *link_path, const char *rel, const char *etag) {
    char *dir = strdup(link_path);
    char *slash = strrchr(dir, '/');
    *slash = 0;
    int rc = phiq_hub_mkdirs(dir);
    free(dir);
    if (rc) return phiq_cli_fail(P->cmd, "%s", phiq_error());
    char *target = phiq_hub_link_target(rel, etag);
    char tmp[8300];
    snprintf(tmp, sizeof tmp, "%s.phiq-link.%ld", link_path, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, link_path) != 0) {
        int e = errno;
        unlink(tmp);
        free(target);
        return phiq_cli_fail(P->cmd, "%s: cannot link to the blob: %s", link_path, strerror(e));
    }
    free(target);
    return 0;
}

static int fetch_blob(puller *P, pull_item *it, const char *blob, const char *incomplete) {
    for (int attempt = 0;; attempt++) {
        FILE *f = fopen(incomplete, "ab");
        if (!f) return phiq_cli_fail(P->cmd, "%s: cannot write: %s", incomplete, strerror(errno));
        struct stat st;
        int64_t have = fstat(fileno(f), &st) == 0 ? (int64_t)st.st_size : 0;
        if (it->size >= 0 && have > it->size) { /* longer than the file: not ours to resume */
            if (ftruncate(fileno(f), 0) != 0) { fclose(f); return phiq_cli_fail(P->cmd, "%s: %s", incomplete, strerror(errno)); }
            have = 0;
        }
        if (it->size >= 0 && have == it->size && have > 0) { fclose(f); return 0; }
        if (attempt == 0 && have > 0 && !P->quiet)
            fprintf(stderr, "phiq %s: %s: resuming at byte %lld\n", P->cmd, it->path, (long long)have);
        http_meta m;
        memset(&m, 0, sizeof m);
        struct curl_slist *h;
        /* the token goes to the Hub, not to wherever an LFS redirect points */
        int same_host = !strncmp(it->url, P->endpoint, strlen(P->endpoint));
        CURL *c = easy(P, it->url, &m, &h, same_host);
        dl d = {.P = P, .f = f, .offset = have, .c = c, .errbody = {.limit = 1 << 16}};
        char range[64];
        snprintf(range, sizeof range, "%lld-", (long long)have);
        if (have > 0) curl_easy_setopt(c, CURLOPT_RANGE, range);
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
        P->cur_base = P->total_done + 0; /* rate counts this run's bytes only */
        P->cur_base -= have;
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        m.status = status;
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        free(d.errbody.p);
        int flush_err = fflush(f) != 0 || fsync(fileno(f)) != 0 ? errno : 0;
        fclose(f);
        if (d.write_errno || flush_err) {
            int e = d.write_errno ? d.write_errno : flush_err;
            if (e == ENOSPC || e == EDQUOT)
                return phiq_cli_fail(P->cmd, "%s: disk full writing %s (the partial download is kept and resumes next time)",
                                     it->path, incomplete);
            return phiq_cli_fail(P->cmd, "%s: cannot write %s: %s", it->path, incomplete, strerror(e));
        }
        if (status == 416 && it->size >= 0 && have == it->size) return 0;
        if (rc == CURLE_OK && status >= 400) return http_fail(P, &m, it->path);
        if (rc == CURLE_OK) return 0;
        int transient = rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
                        rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_CONNECT || rc == CURLE_SEND_ERROR;
        if (!transient || attempt + 1 >= PULL_RETRIES) return net_fail(P, rc, it->path);
        if (!P->quiet) {
            if (P->tty) fputc('\n', stderr);
            fprintf(stderr, "phiq %s: %s: %s; resuming (try %d of %d)\n", P->cmd, it->path, curl_easy_strerror(rc),
                    attempt + 2, PULL_RETRIES);
        }
        struct timespec ts = {0, 200000000L * (attempt + 1)};
        nanosleep(&ts, NULL);
    }
}

/* Downloads one item into blobs/ under its lock and links it. */
static int download(puller *P, pull_item *it, const char *snap) {
    char blob[8300], incomplete[8400], lock[8300], link_path[8300];
    snprintf(blob, sizeof blob, "%s/blobs/%s", P->repo_dir, it->etag);
    snprintf(incomplete, sizeof incomplete, "%s.incomplete", blob);
    snprintf(lock, sizeof lock, "%s/%s.lock", P->lock_dir, it->etag);
    snprintf(link_path, sizeof link_path, "%s/%s", snap, it->path);
    char bdir[8300];
    snprintf(bdir, sizeof bdir, "%s/blobs", P->repo_dir);
    if (phiq_hub_mkdirs(bdir) || phiq_hub_mkdirs(P->lock_dir)) return phiq_cli_fail(P->cmd, "%s", phiq_error());
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return phiq_cli_fail(P->cmd, "%s: cannot create the lock: %s", lock, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (!P->quiet) fprintf(stderr, "phiq %s: %s: another process is downloading it; waiting\n", P->cmd, it->path);
        if (flock(fd, LOCK_EX) != 0) {
            close(fd);
            return phiq_cli_fail(P->cmd, "%s: cannot lock: %s", lock, strerror(errno));
        }
    }
    int rc = 0;
    if (!phiq_file_exists(blob)) { /* else another process finished it while we waited */
        rc = fetch_blob(P, it, blob, incomplete);
        if (!rc && phiq_hub_etag_is_sha256(it->etag)) {
            char hex[65];
            if (sha256_file(incomplete, hex) != 0) rc = phiq_cli_fail(P->cmd, "%s: cannot read back %s", it->path, incomplete);
            else if (strcmp(hex, it->etag) != 0) {
                unlink(incomplete);
                rc = phiq_cli_fail(P->cmd, "%s: sha256 mismatch (got %s, expected %s): deleted the download",
                                   it->path, hex, it->etag);
            }
        }
        if (!rc && it->size >= 0) {
            struct stat st;
            if (stat(incomplete, &st) != 0 || (int64_t)st.st_size != it->size) {
                unlink(incomplete);
                rc = phiq_cli_fail(P->cmd, "%s: size %lld, the Hub said %lld: deleted the download", it->path,
                                   (long long)(stat(incomplete, &st) == 0 ? st.st_size : -1), (long long)it->size);
            }
        }
        if (!rc) {
            chmod(incomplete, 0644);
            if (rename(incomplete, blob) != 0) rc = phiq_cli_fail(P->cmd, "%s: cannot rename into place: %s", blob, strerror(errno));
        }
    }
    if (!rc) rc = make_link(P, link_path, it->path, it->etag);
    flock(fd, LOCK_UN);
    close(fd);
    return rc;
}

/* Escapes each '/'-separated part of s (a revision escapes its '/' too). */
static void url_escape(CURL *c, const char *s, int keep_slash, char *out, size_t n) {
    out[0] = 0;
    size_t w = 0;
    const char *p = s;
    while (*p && w < n) {
        const char *e = keep_slash ? strchr(p, '/') : NULL;
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char *x = curl_easy_escape(c, p, (int)l);
        w += (size_t)snprintf(out + w, n - w, "%s%s", x ? x : "", e ? "/" : "");
        curl_free(x);
        if (!e) break;
        p = e + 1;
    }
}

/* HEAD the resolve URL: blob name, size and where the bytes are. */
static int head(puller *P, CURL *esc, const char *commit, pull_item *it) {
    char path[4096];
    url_escape(esc, it->path, 1, path, sizeof path);
    snprintf(it->url, sizeof it->url, "%s/%s/resolve/%s/%s", P->endpoint, P->repo, commit, path);
    for (int hop = 0; hop < 5; hop++) {
        http_meta m;
        memset(&m, 0, sizeof m);
        struct curl_slist *h;
        CURL *c = easy(P, it->url, &m, &h, 1);
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        CURLcode rc = curl_easy_perform(c);
        char *redirect = NULL;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &m.status);
        curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &redirect);
        char next[8192] = "";
        if (redirect) snprintf(next, sizeof next, "%s", redirect);
        curl_easy_cleanup(c);
        curl_slist_free_all(h);
        if (rc != CURLE_OK) return net_fail(P, rc, it->path);
        if (m.status >= 400) return http_fail(P, &m, it->path);
        if (m.status >= 300 && m.location[0] == '/' && next[0]) { /* a renamed repo: ask again there */
            snprintf(it->url, sizeof it->url, "%s", next);
            continue;
        }
        const char *et = m.linked_etag[0] ? m.linked_etag : m.etag;
        if (!et[0]) return phiq_cli_fail(P->cmd, "%s: %s: the Hub sent no ETag", P->repo, it->path);
        if (phiq_hub_etag(et, it->etag, sizeof it->etag)) return phiq_cli_fail(P->cmd, "%s: %s: %s", P->repo, it->path, phiq_error());
        const char *sz = m.linked_size[0] ? m.linked_size : m.content_length;
        char *end;
        long long v = sz[0] ? strtoll(sz, &end, 10) : -1;
        it->size = sz[0] && !*end && v >= 0 ? v : -1;
        if (m.status >= 300 && next[0]) snprintf(it->url, sizeof it->url, "%s", next);
        return 0;
    }
    return phiq_cli_fail(P->cmd, "%s: %s: too many redirects", P->repo, it->path);
}

static int get_info(puller *P, const char *rev, phiq_hub_info *info) {
    CURL *esc = curl_easy_init();
    char r[1024], url[4096];
    url_escape(esc, rev, 0, r, sizeof r);
    curl_easy_cleanup(esc);
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", P->endpoint, P->repo, r);
    http_meta m;
    memset(&m, 0, sizeof m);
    struct curl_slist *h;
    CURL *c = easy(P, url, &m, &h, 1);
    membuf body = {.limit = 64u << 20};
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_mem);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &m.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    int ret;
    char what[1100];
    snprintf(what, sizeof what, "revision %s", rev);
    if (rc != CURLE_OK) ret = net_fail(P, rc, what);
    else if (m.status >= 400) ret = http_fail(P, &m, what);
    else if (phiq_hub_parse_info(body.p ? body.p : "", body.n, info)) ret = phiq_cli_fail(P->cmd, "%s: %s", P->repo, phiq_error());
    else ret = 0;
    free(body.p);
    return ret;
}

/* The snapshot the cache holds for rev, as the model path: the directory, or
 * for a GGUF repo the file QUANT picks. NULL (nothing printed) when absent. */
static char *cached_path(const char *repo_dir, const phiq_hub_id *id, const char *rev, int need_config) {
    char commit[41], snap[8300];
    if (phiq_hub_cached_commit(repo_dir, rev, commit)) return NULL;
    snprintf(snap, sizeof snap, "%s/snapshots/%s", repo_dir, commit);
    if (!phiq_dir_exists(snap)) return NULL;
    if (id->quant[0] || phiq_hub_is_gguf_repo(id->repo, NULL)) {
        /* the listing of the snapshot stands in for the Hub's */
        phiq_hub_info info = {0};
        phiq_hub_file files[256];
        char names[256][256];
        DIR *d = opendir(snap);
        if (!d) return NULL;
        struct dirent *e;
        while (info.n_files < 256 && (e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            snprintf(names[info.n_files], sizeof names[0], "%s", e->d_name);
            files[info.n_files].path = names[info.n_files];
            files[info.n_files].size = -1;
            info.n_files++;
        }
        closedir(d);
        info.files = files;
        int k = phiq_hub_pick_gguf(&info, id->quant);
        if (k < 0) return NULL;
        return phiq_path_join(snap, files[k].path);
    }
    if (need_config) {
        char cfg[8400];
        snprintf(cfg, sizeof cfg, "%s/config.json", snap);
        if (!phiq_file_exists(cfg)) return NULL;
    }
    return strdup(snap);
}

static int write_ref(puller *P, const char *rev, const char *commit) {
    char path[8300], tmp[8400];
    snprintf(path, sizeof path, "%s/refs/%s", P->repo_dir, rev);
    char *dir = strdup(path);
    *strrchr(dir, '/') = 0;
    int rc = phiq_hub_mkdirs(dir);
    free(dir);
    if (rc) return phiq_cli_fail(P->cmd, "%s", phiq_error());
    snprintf(tmp, sizeof tmp, "%s.phiq-tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f || fputs(commit, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return phiq_cli_fail(P->cmd, "%s: cannot write: %s", path, strerror(e));
    }
    return 0;
}

static int selected(const phiq_pull_opts *o, const char *path, int gguf_pick, int idx) {
    int want;
    if (o->n_include) {
        want = 0;
        for (int i = 0; i < o->n_include && !want; i++) want = phiq_hub_glob(o->include[i], path);
    } else if (gguf_pick >= 0) {
        want = idx == gguf_pick;
    } else {
        want = phiq_hub_default_want(path);
    }
    for (int i = 0; i < o->n_exclude && want; i++) want = !phiq_hub_glob(o->exclude[i], path);
    return want;
}

int phiq_hub_pull(const char *cmd, const struct phiq_hub_id *id, const phiq_pull_opts *o, char **out_path) {
    *out_path = NULL;
    const char *rev = o->revision && *o->revision ? o->revision : "main";
    if (!phiq_hub_safe_path(rev)) return phiq_cli_fail(cmd, "--revision '%s' is not a revision name", rev);
    puller P = {.cmd = cmd, .repo = id->repo, .quiet = o->quiet, .tty = isatty(2)};
    if (phiq_hub_cache_dir(P.cache, sizeof P.cache)) return phiq_cli_fail(cmd, "%s", phiq_error());
    char *folder = phiq_hub_repo_folder(id->repo);
    P.repo_dir = phiq_path_join(P.cache, folder);
    char ld[8300];
    snprintf(ld, sizeof ld, "%s/.locks/%s", P.cache, folder);
    P.lock_dir = strdup(ld);
    free(folder);
    phiq_hub_endpoint(P.endpoint, sizeof P.endpoint);
    if (o->token) { snprintf(P.token, sizeof P.token, "%s", o->token); P.have_token = P.token[0] != 0; }
    else P.have_token = phiq_hub_token(P.token, sizeof P.token);

    int rc = 0;
    phiq_hub_info info = {0};
    pull_item *items = NULL;
    if (phiq_hub_offline()) {
        *out_path = cached_path(P.repo_dir, id, rev, !o->n_include);
        if (!*out_path)
            rc = phiq_cli_fail(cmd, "%s (revision %s) is not in the Hugging Face cache %s, and HF_HUB_OFFLINE is set",
                               id->repo, rev, P.cache);
        else if (!o->quiet) fprintf(stderr, "phiq %s: %s: offline (HF_HUB_OFFLINE), using the cache\n", cmd, id->repo);
        goto out;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if ((rc = get_info(&P, rev, &info))) goto out;
    int pick = -1;
    if (!o->n_include && (id->quant[0] || phiq_hub_is_gguf_repo(id->repo, &info))) {
        pick = phiq_hub_pick_gguf(&info, id->quant);
        if (pick < 0) { rc = phiq_cli_fail(cmd, "%s: %s", id->repo, phiq_error()); goto out; }
    }
    items = calloc((size_t)info.n_files + 1, sizeof *items);
    int n = 0, has_index = 0;
    for (int i = 0; i < info.n_files; i++) {
        if (!selected(o, info.files[i].path, pick, i)) continue;
        items[n++].path = info.files[i].path;
        has_index |= !strcmp(info.files[i].path, "model.safetensors.index.json");
    }
    if (!n) { rc = phiq_cli_fail(cmd, "%s: no file of revision %s matches what was asked for", id->repo, rev); goto out; }
    char snap[8300];
    snprintf(snap, sizeof snap, "%s/snapshots/%s", P.repo_dir, info.sha);
    CURL *esc = curl_easy_init();
    /* metadata first, so the overall bar knows the total; the index first of all,
     * so that only the shards it names are taken (a repo may also hold
     * consolidated weights the index does not use) */
    for (int pass = 0; pass < 2 && !rc; pass++) {
        for (int i = 0; i < n && !rc; i++) {
            int is_index = !strcmp(items[i].path, "model.safetensors.index.json");
            if (is_index != (pass == 0)) continue;
            rc = head(&P, esc, info.sha, &items[i]);
            if (rc) break;
            char lp[8400], bp[8400];
            snprintf(lp, sizeof lp, "%s/%s", snap, items[i].path);
            snprintf(bp, sizeof bp, "%s/blobs/%s", P.repo_dir, items[i].etag);
            if (phiq_file_exists(lp)) items[i].cached = 1;
            else if (phiq_file_exists(bp)) { rc = make_link(&P, lp, items[i].path, items[i].etag); items[i].cached = 1; }
            if (is_index && !rc && !o->n_include) {
                if (!items[i].cached) {
                    P.n_files = 1;
                    P.cur_name = items[i].path;
                    P.cur_size = items[i].size;
                    P.t0 = phiq_now();
                    rc = download(&P, &items[i], snap);
                    items[i].cached = 1;
                    if (rc) break;
                }
                char *text = NULL;
                size_t len = 0;
                char **shards = NULL;
                int ns = 0;
                if (phiq_read_file(lp, &text, &len) || phiq_hub_index_shards(text, len, &shards, &ns)) {
                    rc = phiq_cli_fail(cmd, "%s: %s", id->repo, phiq_error());
                } else {
                    for (int k = 0; k < n; k++) { /* drop weights the index does not name */
                        if (!strstr(items[k].path, ".safetensors") || strchr(items[k].path, '/') ||
                            !strcmp(items[k].path, "model.safetensors.index.json")) continue;
                        int named = 0;
                        for (int s = 0; s < ns && !named; s++) named = !strcmp(shards[s], items[k].path);
                        if (!named) items[k].cached = 2; /* skipped */
                    }
                }
                free(text);
                phiq_hub_names_free(shards, ns);
            }
        }
        if (pass == 0 && !has_index) continue;
    }
    curl_easy_cleanup(esc);
    (void)has_index;
    if (rc) goto out;
    P.n_files = 0;
    P.total = 0;
    for (int i = 0; i < n; i++)
        if (!items[i].cached) { P.n_files++; P.total += items[i].size > 0 ? items[i].size : 0; }
    P.t0 = phiq_now();
    int64_t cached_bytes = 0;
    for (int i = 0; i < n; i++)
        if (items[i].cached == 1 && items[i].size > 0) cached_bytes += items[i].size;
    for (int i = 0; i < n && !rc; i++) {
        if (items[i].cached) continue;
        P.i_file++;
        P.cur_name = items[i].path;
        P.cur_size = items[i].size;
        double t = phiq_now();
        rc = download(&P, &items[i], snap);
        if (rc) break;
        P.total_done += items[i].size > 0 ? items[i].size : 0;
        draw(&P, items[i].size, 1);
        if (!P.quiet && !P.tty) {
            char a[32];
            human(a, sizeof a, (double)(items[i].size > 0 ? items[i].size : 0));
            fprintf(stderr, "phiq %s: %d/%d %s %s (%.1fs)\n", cmd, P.i_file, P.n_files, items[i].path, a, phiq_now() - t);
        }
    }
    if (!P.quiet && P.tty && P.n_files) fputc('\n', stderr);
    if (rc) goto out;
    if (strcmp(rev, info.sha) && (rc = write_ref(&P, rev, info.sha))) goto out;
    if (pick >= 0) *out_path = phiq_path_join(snap, info.files[pick].path);
    else *out_path = strdup(snap);
    if (!o->quiet) {
        char a[32], b[32];
        human(a, sizeof a, (double)P.total_done);
        human(b, sizeof b, (double)cached_bytes);
        fprintf(stderr, "phiq %s: %s@%.12s: %d files downloaded (%s), the rest already cached (%s)\n", cmd, id->repo,
                info.sha, P.n_files, a, b);
    }
out:
    free(items);
    phiq_hub_info_free(&info);
    free(P.repo_dir);
    free(P.lock_dir);
    return rc;
}

/* The paths phiq_cli_model_path resolved: they outlive the call (a command
 * keeps them in its options until it returns), so this file owns them and
 * main() frees them once the command is done. */
static char **resolved;
static int n_resolved;

static const char *keep_resolved(const char *cmd, char *p) {
    if (!p) return NULL;
    char **r = realloc(resolved, (size_t)(n_resolved + 1) * sizeof *r);
    if (!r) { free(p); phiq_cli_fail(cmd, "out of memory"); return NULL; }
    resolved = r;
    resolved[n_resolved++] = p;
    return p;
}

void phiq_cli_model_paths_free(void) {
    for (int i = 0; i < n_resolved; i++) free(resolved[i]);
    free(resolved);
    resolved = NULL;
    n_resolved = 0;
}

const char *phiq_cli_model_path(const char *cmd, const char *arg) {
    struct stat st;
    phiq_hub_id id;
    int looks = phiq_hub_parse_id(arg, true, &id) == 0;
    if (stat(arg, &st) == 0) {
        if (looks) fprintf(stderr, "phiq %s: '%s' is a local path; using it, not the Hub model\n", cmd, arg);
        return arg;
    }
    if (!looks) return arg; /* not an id: the command reports the missing file as it always did */
    char cache[4096];
    if (phiq_hub_cache_dir(cache, sizeof cache)) { phiq_cli_fail(cmd, "%s", phiq_error()); return NULL; }
    char *folder = phiq_hub_repo_folder(id.repo);
    char *repo_dir = phiq_path_join(cache, folder);
    free(folder);
    char *p = cached_path(repo_dir, &id, "main", 1);
    free(repo_dir);
    if (p) return keep_resolved(cmd, p); /* the cache is enough: no network for a model already pulled */
    phiq_pull_opts o = {0};
    char *out = NULL;
    if (phiq_hub_pull(cmd, &id, &o, &out)) return NULL;
    return keep_resolved(cmd, out);
}
