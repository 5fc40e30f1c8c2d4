/* hub.c — the network-free half of the Hugging Face Hub support: model id
 * rules, the huggingface_hub cache location and layout, which files a Phi
 * checkpoint needs, and the parsers for the Hub's JSON and headers. The
 * downloader that uses them is tools/hub_pull.c. See hub.h.
 */
#include "hub/hub.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/common.h"

static bool id_char(char c) {
    return isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.';
}

/* One part of a repo id (ORG or NAME): huggingface_hub's validate_repo_id
 * (word boundaries at both ends, so no leading/trailing '-' or '.'). */
static bool id_part_ok(const char *p, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!id_char(p[i])) return false;
    if (!isalnum((unsigned char)p[0]) && p[0] != '_') return false;
    if (!isalnum((unsigned char)p[n - 1]) && p[n - 1] != '_') return false;
    return true;
}

int phiq_hub_parse_id(const char *s, bool need_org, phiq_hub_id *out) {
    memset(out, 0, sizeof *out);
    if (!s || !*s) return phiq_fail(PHIQ_EINVAL, "empty model id");
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    if (len > PHIQ_HUB_ID_MAX) return phiq_fail(PHIQ_EINVAL, "'%.40s...': a Hub id has at most %d characters", s, PHIQ_HUB_ID_MAX);
    const char *slash = memchr(s, '/', len);
    if (slash && memchr(slash + 1, '/', len - (size_t)(slash - s) - 1))
        return phiq_fail(PHIQ_EINVAL, "'%s': a Hub id is ORG/NAME (one '/')", s);
    if (!slash && need_org) return phiq_fail(PHIQ_EINVAL, "'%s': a Hub id is ORG/NAME", s);
    bool ok = slash ? id_part_ok(s, (size_t)(slash - s)) && id_part_ok(slash + 1, len - (size_t)(slash - s) - 1)
                    : id_part_ok(s, len);
    if (!ok) return phiq_fail(PHIQ_EINVAL, "'%.*s': a Hub id uses letters, digits, '-', '_' and '.' only", (int)len, s);
    for (size_t i = 0; i + 1 < len; i++)
        if ((s[i] == '-' && s[i + 1] == '-') || (s[i] == '.' && s[i + 1] == '.'))
            return phiq_fail(PHIQ_EINVAL, "'%.*s': '--' and '..' are not allowed in a Hub id", (int)len, s);
    if (len >= 4 && !strncmp(s + len - 4, ".git", 4)) return phiq_fail(PHIQ_EINVAL, "'%.*s': a Hub id cannot end in .git", (int)len, s);
    memcpy(out->repo, s, len);
    if (colon) {
        const char *q = colon + 1;
        size_t qn = strlen(q);
        if (qn == 0 || qn >= sizeof out->quant) return phiq_fail(PHIQ_EINVAL, "'%s': expected ORG/NAME:QUANT", s);
        for (size_t i = 0; i < qn; i++)
            if (!id_char(q[i])) return phiq_fail(PHIQ_EINVAL, "'%s': QUANT uses letters, digits, '-', '_' and '.' only", s);
        memcpy(out->quant, q, qn);
    }
    return 0;
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* "~/x" -> "$HOME/x", as os.path.expanduser does for these variables. */
static int expand_home(char *buf, size_t n, const char *path, const char *suffix) {
    int w;
    if (path[0] == '~' && (path[1] == '/' || !path[1])) {
        const char *home = env("HOME");
        if (!home) return phiq_fail(PHIQ_EINVAL, "cannot find the Hugging Face cache: HOME is not set");
        w = snprintf(buf, n, "%s%s", home, path + 1);
    } else {
        w = snprintf(buf, n, "%s", path);
    }
    if (w < 0 || (size_t)w >= n) return phiq_fail(PHIQ_EINVAL, "Hugging Face cache path too long");
    size_t l = strlen(buf);
    while (l > 1 && buf[l - 1] == '/') buf[--l] = 0; /* as os.path.join("~/hf/", "hub") */
    if (l + strlen(suffix) >= n) return phiq_fail(PHIQ_EINVAL, "Hugging Face cache path too long");
    strcat(buf, suffix);
    return 0;
}

int phiq_hub_cache_dir(char *buf, size_t n) {
    const char *v;
    if ((v = env("HF_HUB_CACHE")) || (v = env("HUGGINGFACE_HUB_CACHE"))) return expand_home(buf, n, v, "");
    if ((v = env("HF_HOME"))) return expand_home(buf, n, v, "/hub");
    if ((v = env("XDG_CACHE_HOME"))) return expand_home(buf, n, v, "/huggingface/hub");
    return expand_home(buf, n, "~/.cache", "/huggingface/hub");
}

char *phiq_hub_repo_folder(const char *repo) {
    size_t n = strlen(repo);
    char *out = malloc(8 + 2 * n + 1);
    if (!out) return NULL;
    char *w = out + sprintf(out, "models--");
    for (size_t i = 0; i < n; i++) {
        if (repo[i] == '/') { *w++ = '-'; *w++ = '-'; }
        else *w++ = repo[i];
    }
    *w = 0;
    return out;
}

void phiq_hub_endpoint(char *buf, size_t n) {
    const char *v = env("HF_ENDPOINT");
    snprintf(buf, n, "%s", v ? v : "https://huggingface.co");
    size_t l = strlen(buf);
    while (l && buf[l - 1] == '/') buf[--l] = 0;
}

static bool env_true(const char *name) {
    const char *v = env(name);
    return v && (phiq_streq_nocase(v, "1") || phiq_streq_nocase(v, "on") || phiq_streq_nocase(v, "yes") ||
                 phiq_streq_nocase(v, "true"));
}

bool phiq_hub_offline(void) {
    /* huggingface_hub reads HF_HUB_OFFLINE or, when unset, TRANSFORMERS_OFFLINE */
    return env("HF_HUB_OFFLINE") ? env_true("HF_HUB_OFFLINE") : env_true("TRANSFORMERS_OFFLINE");
}

static void trim(char *s) {
    size_t l = strlen(s), a = 0;
    while (l && isspace((unsigned char)s[l - 1])) s[--l] = 0;
    while (s[a] && isspace((unsigned char)s[a])) a++;
    memmove(s, s + a, l - a + 1);
}

int phiq_hub_token(char *buf, size_t n) {
    const char *v;
    if ((v = env("HF_TOKEN")) || (v = env("HUGGING_FACE_HUB_TOKEN"))) {
        snprintf(buf, n, "%s", v);
        trim(buf);
        return *buf != 0;
    }
    char path[4096];
    if ((v = env("HF_TOKEN_PATH"))) { if (expand_home(path, sizeof path, v, "")) return 0; }
    else if ((v = env("HF_HOME"))) { if (expand_home(path, sizeof path, v, "/token")) return 0; }
    else if ((v = env("XDG_CACHE_HOME"))) { if (expand_home(path, sizeof path, v, "/huggingface/token")) return 0; }
    else if (expand_home(path, sizeof path, "~/.cache", "/huggingface/token")) return 0;
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t r = fread(buf, 1, n - 1, f);
    fclose(f);
    buf[r] = 0;
    trim(buf);
    return *buf != 0;
}

bool phiq_hub_is_commit(const char *rev) {
    size_t i = 0;
    for (; rev[i]; i++)
        if (!isxdigit((unsigned char)rev[i])) return false;
    return i == 40;
}

int phiq_hub_etag(const char *raw, char *out, size_t n) {
    if (!raw) return phiq_fail(PHIQ_EFORMAT, "no ETag");
    while (isspace((unsigned char)*raw)) raw++;
    if (!strncmp(raw, "W/", 2)) raw += 2;
    size_t l = strlen(raw);
    while (l && isspace((unsigned char)raw[l - 1])) l--;
    if (l >= 2 && raw[0] == '"' && raw[l - 1] == '"') { raw++; l -= 2; }
    if (l == 0 || l > 128 || l >= n) return phiq_fail(PHIQ_EFORMAT, "ETag '%.*s' is not a blob name", (int)(l > 80 ? 80 : l), raw);
    for (size_t i = 0; i < l; i++)
        if (!isalnum((unsigned char)raw[i]) && raw[i] != '-' && raw[i] != '_')
            return phiq_fail(PHIQ_EFORMAT, "ETag '%.*s' is not a blob name", (int)(l > 80 ? 80 : l), raw);
    memcpy(out, raw, l);
    out[l] = 0;
    return 0;
}

bool phiq_hub_etag_is_sha256(const char *etag) {
    size_t i = 0;
    for (; etag[i]; i++)
        if (!isxdigit((unsigned char)etag[i])) return false;
    return i == 64;
}

bool phiq_hub_safe_path(const char *path) {
    if (!path || !*path || path[0] == '/' || strlen(path) > 1024) return false;
    const char *p = path;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.')) return false;
        for (size_t i = 0; i < l; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == '\\' || p[i] == 0x7f) return false;
        if (!e) return true;
        p = e + 1;
    }
}

char *phiq_hub_link_target(const char *path, const char *etag) {
    int depth = 0;
    for (const char *p = path; *p; p++) depth += *p == '/';
    size_t n = (size_t)(depth + 2) * 3 + strlen("blobs/") + strlen(etag) + 1;
    char *out = malloc(n);
    if (!out) return NULL;
    char *w = out;
    for (int i = 0; i < depth + 2; i++) w += sprintf(w, "../");
    sprintf(w, "blobs/%s", etag);
    return out;
}

int phiq_hub_header(const char *line, size_t len, const char *name, char *val, size_t n) {
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':') return 0;
    for (size_t i = 0; i < nl; i++)
        if (tolower((unsigned char)line[i]) != tolower((unsigned char)name[i])) return 0;
    const char *v = line + nl + 1;
    size_t vl = len - nl - 1;
    while (vl && (*v == ' ' || *v == '\t')) { v++; vl--; }
    while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
    if (n == 0) return 0;
    if (vl >= n) vl = n - 1;
    memcpy(val, v, vl);
    val[vl] = 0;
    return 1;
}

int phiq_hub_cached_commit(const char *repo_dir, const char *rev, char commit[41]) {
    if (phiq_hub_is_commit(rev)) {
        memcpy(commit, rev, 41);
        return 0;
    }
    if (!phiq_hub_safe_path(rev)) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/refs/%s", repo_dir, rev);
    char *text = NULL;
    size_t len = 0;
    if (phiq_read_file(path, &text, &len)) return -1;
    trim(text);
    int ok = phiq_hub_is_commit(text);
    if (ok) memcpy(commit, text, 41);
    free(text);
    return ok ? 0 : -1;
}

/* ---- the API's JSON ------------------------------------------------------------- */
int phiq_hub_parse_info(const char *json, size_t len, phiq_hub_info *out) {
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return phiq_fail(PHIQ_EFORMAT, "the Hub's answer is not a JSON object");
    }
    int rc = 0;
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(root, "sha");
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(root, "siblings");
    const cJSON *gated = cJSON_GetObjectItemCaseSensitive(root, "gated");
    out->gated = gated && !cJSON_IsFalse(gated) && !cJSON_IsNull(gated);
    if (!cJSON_IsString(sha) || !phiq_hub_is_commit(sha->valuestring)) {
        rc = phiq_fail(PHIQ_EFORMAT, "the Hub's answer has no commit 'sha'");
        goto out;
    }
    memcpy(out->sha, sha->valuestring, 41);
    if (!cJSON_IsArray(sib)) { rc = phiq_fail(PHIQ_EFORMAT, "the Hub's answer has no 'siblings' list"); goto out; }
    int n = cJSON_GetArraySize(sib);
    if (n > 1000000) { rc = phiq_fail(PHIQ_EFORMAT, "the Hub lists %d files", n); goto out; }
    out->files = calloc((size_t)n + 1, sizeof *out->files);
    if (!out->files) { rc = phiq_fail(PHIQ_ENOMEM, "out of memory"); goto out; }
    const cJSON *e;
    cJSON_ArrayForEach(e, sib) {
        const cJSON *rf = cJSON_GetObjectItemCaseSensitive(e, "rfilename");
        if (!cJSON_IsString(rf)) { rc = phiq_fail(PHIQ_EFORMAT, "a 'siblings' entry has no 'rfilename'"); goto out; }
        if (!phiq_hub_safe_path(rf->valuestring)) { rc = phiq_fail(PHIQ_EFORMAT, "the Hub lists an unsafe file name '%.80s'", rf->valuestring); goto out; }
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(e, "size");
        phiq_hub_file *f = &out->files[out->n_files];
        f->path = strdup(rf->valuestring);
        if (!f->path) { rc = phiq_fail(PHIQ_ENOMEM, "out of memory"); goto out; }
        f->size = cJSON_IsNumber(sz) && sz->valuedouble >= 0 && sz->valuedouble < 9e18 ? (int64_t)sz->valuedouble : -1;
        out->n_files++;
    }
out:
    cJSON_Delete(root);
    if (rc) phiq_hub_info_free(out);
    return rc;
}

void phiq_hub_info_free(phiq_hub_info *info) {
    for (int i = 0; i < info->n_files; i++) free(info->files[i].path);
    free(info->files);
    memset(info, 0, sizeof *info);
}

void phiq_hub_names_free(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

int phiq_hub_index_shards(const char *json, size_t len, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int rc = 0;
    if (!cJSON_IsObject(wm)) { rc = phiq_fail(PHIQ_EFORMAT, "model.safetensors.index.json has no 'weight_map'"); goto out; }
    int cap = cJSON_GetArraySize(wm);
    char **v = calloc((size_t)cap + 1, sizeof *v);
    if (!v) { rc = phiq_fail(PHIQ_ENOMEM, "out of memory"); goto out; }
    *names = v;
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || !phiq_hub_safe_path(e->valuestring)) {
            rc = phiq_fail(PHIQ_EFORMAT, "model.safetensors.index.json: weight_map['%.64s'] is not a file name", e->string ? e->string : "");
            goto out;
        }
        int seen = 0;
        for (int i = 0; i < *n && !seen; i++) seen = !strcmp(v[i], e->valuestring);
        if (seen) continue;
        if (!(v[*n] = strdup(e->valuestring))) { rc = phiq_fail(PHIQ_ENOMEM, "out of memory"); goto out; }
        (*n)++;
    }
out:
    cJSON_Delete(root);
    if (rc) {
        phiq_hub_names_free(*names, *n);
        *names = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- selection ------------------------------------------------------------------ */
static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && phiq_streq_nocase(s + a - b, suf);
}

bool phiq_hub_default_want(const char *path) {
    static const char *const names[] = {
        "config.json", "generation_config.json", "model.safetensors.index.json",
        "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json",
        "added_tokens.json", "vocab.json", "merges.txt", "chat_template.json", "chat_template.jinja",
        "cl100k_base.tiktoken", /* Phi-3-small's Phi3SmallTokenizer reads its ranks from it */
    };
    if (strchr(path, '/')) return false; /* onnx/, gguf/ ... variants live in sub-directories */
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(path, names[i])) return true;
    return ends_with(path, ".safetensors");
}

bool phiq_hub_is_gguf_repo(const char *repo, const phiq_hub_info *info) {
    if (ends_with(repo, "-gguf")) return true;
    if (!info) return false;
    int gguf = 0, st = 0;
    for (int i = 0; i < info->n_files; i++) {
        gguf += ends_with(info->files[i].path, ".gguf");
        st += ends_with(info->files[i].path, ".safetensors");
    }
    return gguf > 0 && st == 0;
}

/* The last "-", "." or "_"-separated part of the name before ".gguf" equals
 * quant, or the name ends with "-"+quant ("Q4_K_M" has '_' inside). */
static bool quant_exact(const char *path, const char *quant) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strlen(base), ql = strlen(quant);
    if (bl < 5 || bl - 5 < ql) return false;
    const char *end = base + bl - 5; /* ".gguf" */
    const char *q = end - ql;
    for (size_t i = 0; i < ql; i++)
        if (tolower((unsigned char)q[i]) != tolower((unsigned char)quant[i])) return false;
    return q == base || q[-1] == '-' || q[-1] == '.' || q[-1] == '_';
}

int phiq_hub_pick_gguf(const phiq_hub_info *info, const char *quant) {
    int n_gguf = 0, only = -1, exact = -1, n_exact = 0, sub = -1, n_sub = 0;
    const char *want = quant && *quant ? quant : "Q4_K_M";
    char choices[1024] = "";
    size_t cl = 0;
    for (int i = 0; i < info->n_files; i++) {
        const char *p = info->files[i].path;
        if (!ends_with(p, ".gguf")) continue;
        n_gguf++;
        only = i;
        if (quant_exact(p, want)) { exact = i; n_exact++; }
        else if (phiq_contains_nocase(p, want)) { sub = i; n_sub++; }
        if (cl < sizeof choices - 2)
            cl += (size_t)snprintf(choices + cl, sizeof choices - cl, "%s%s", cl ? ", " : "", p);
    }
    if (n_gguf == 0) return phiq_fail(PHIQ_EINVAL, "the repo has no .gguf file");
    if (!(quant && *quant) && n_gguf == 1) return only;
    if (n_exact == 1) return exact;
    if (n_exact == 0 && n_sub == 1) return sub;
    if (!(quant && *quant))
        return phiq_fail(PHIQ_EINVAL, "the repo has several .gguf files; pick one with ORG/NAME:QUANT (%s)", choices);
    return phiq_fail(PHIQ_EINVAL, "':%s' %s; the .gguf files are: %s", quant,
                     n_exact + n_sub ? "matches several files" : "matches no file", choices);
}

bool phiq_hub_glob(const char *pattern, const char *path) {
    size_t l = strlen(pattern);
    if (l && pattern[l - 1] == '/') {
        char buf[1100];
        if (l + 2 > sizeof buf) return false;
        memcpy(buf, pattern, l);
        buf[l] = '*';
        buf[l + 1] = 0;
        return fnmatch(buf, path, 0) == 0;
    }
    return fnmatch(pattern, path, 0) == 0;
}

int phiq_hub_mkdirs(const char *path) {
    char buf[4096];
    size_t l = strlen(path);
    if (l == 0 || l >= sizeof buf) return phiq_fail(PHIQ_EINVAL, "bad directory path");
    memcpy(buf, path, l + 1);
    for (size_t i = 1; i <= l; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return phiq_fail(PHIQ_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
        buf[i] = c;
    }
    return phiq_dir_exists(path) ? 0 : phiq_fail(PHIQ_EIO, "%s: exists and is not a directory", path);
}
