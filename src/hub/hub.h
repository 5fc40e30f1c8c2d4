/* hub.h — the Hugging Face Hub, minus the network: model ids, where the
 * huggingface_hub cache lives and how it is laid out, which files of a repo a
 * Phi checkpoint needs, and the parsers for what the Hub sends (the
 * /api/models/{id}/revision/{rev} JSON, ETag headers, safetensors indexes).
 *
 * The cache layout is huggingface_hub's, so that a file Python downloaded is
 * never downloaded again by phiq and the other way round:
 *
 *   $HF_HUB_CACHE | $HUGGINGFACE_HUB_CACHE | $HF_HOME/hub | $XDG_CACHE_HOME/huggingface/hub
 *     | ~/.cache/huggingface/hub
 *     models--ORG--NAME/
 *       blobs/<etag>                     file contents (sha256 for LFS files, git oid otherwise)
 *       blobs/<etag>.incomplete          a download in progress (resumed with a Range request)
 *       refs/<revision>                  the commit a branch or tag pointed to (no newline)
 *       snapshots/<commit>/<path>        relative symlink to ../../blobs/<etag>
 *     .locks/models--ORG--NAME/<etag>.lock   one writer per blob (flock, as Python's filelock)
 *
 * The downloading itself (libcurl, sha256) is in tools/hub_pull.c: the
 * library stays libc/libm/pthreads/PCRE2 (+ cJSON).
 */
#ifndef PHIQ_HUB_HUB_H
#define PHIQ_HUB_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* huggingface_hub's limit on a repo id's length. */
#define PHIQ_HUB_ID_MAX 96

/* "ORG/NAME" or "ORG/NAME:QUANT" (the GGUF file to take from a -gguf repo). */
typedef struct phiq_hub_id {
    char repo[PHIQ_HUB_ID_MAX + 1];
    char quant[64]; /* "" when not given */
} phiq_hub_id;

/* Parses and validates s with huggingface_hub's rules (letters, digits, '-',
 * '_', '.'; no "--" or ".."; not ending in ".git"; at most 96 characters).
 * need_org: the id must have the "ORG/" part (the CLI's model arguments,
 * where a bare word is a local path). 0 or PHIQ_EINVAL with phiq_error(). */
int phiq_hub_parse_id(const char *s, bool need_org, phiq_hub_id *out);

/* The cache directory (see above); no trailing slash. 0, or PHIQ_EINVAL when
 * neither the variables nor HOME say where. */
int phiq_hub_cache_dir(char *buf, size_t n);
/* "models--ORG--NAME", malloc'd. */
char *phiq_hub_repo_folder(const char *repo);
/* HF_ENDPOINT without trailing '/', or https://huggingface.co. */
void phiq_hub_endpoint(char *buf, size_t n);
/* HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is 1/ON/YES/TRUE, any case. */
bool phiq_hub_offline(void);
/* The token: HF_TOKEN, HUGGING_FACE_HUB_TOKEN, else the file huggingface_hub
 * writes at login ($HF_TOKEN_PATH or $HF_HOME/token). 1 found, 0 none. */
int phiq_hub_token(char *buf, size_t n);

/* A full 40-hex-digit commit id. */
bool phiq_hub_is_commit(const char *rev);
/* ETag header value -> blob name: drops "W/" and the quotes, as
 * huggingface_hub does. Refuses anything that is not a plain file name
 * ([A-Za-z0-9_-]{1,128}): a header must never name a path. 0 or PHIQ_EFORMAT. */
int phiq_hub_etag(const char *raw, char *out, size_t n);
/* True for a sha256 ETag (64 hex digits: an LFS file, verified on download). */
bool phiq_hub_etag_is_sha256(const char *etag);
/* A repo file path that is safe under snapshots/<commit>/: relative, no
 * "." or ".." component, no empty component, no backslash or control byte. */
bool phiq_hub_safe_path(const char *path);
/* The symlink huggingface_hub writes at snapshots/<commit>/<path>:
 * "../../blobs/<etag>" with one more "../" per directory in path. malloc'd. */
char *phiq_hub_link_target(const char *path, const char *etag);
/* Value of header `name` (case-insensitive) if `line` ("Name: value\r\n") is
 * that header: copies the trimmed value into val and returns 1, else 0. */
int phiq_hub_header(const char *line, size_t len, const char *name, char *val, size_t n);

/* The commit the cache holds for rev (rev itself when it is a commit, else
 * refs/<rev>), written into commit[41]. 0, or -1 when the cache has none. */
int phiq_hub_cached_commit(const char *repo_dir, const char *rev, char commit[41]);
/* mkdir -p. 0 or PHIQ_EIO. */
int phiq_hub_mkdirs(const char *path);

/* ---- what the Hub lists -------------------------------------------------------- */
typedef struct phiq_hub_file {
    char *path;      /* "rfilename" */
    int64_t size;    /* -1 when the listing does not say */
} phiq_hub_file;

typedef struct phiq_hub_info {
    char sha[41]; /* the commit the revision resolves to */
    bool gated;   /* "gated" is set (auto/manual): 401/403 means "accept the licence" */
    phiq_hub_file *files;
    int n_files;
} phiq_hub_info;

/* Parses the /api/models/{id}/revision/{rev} answer. 0 or PHIQ_EFORMAT. */
int phiq_hub_parse_info(const char *json, size_t len, phiq_hub_info *out);
void phiq_hub_info_free(phiq_hub_info *info);

/* The shard file names of a model.safetensors.index.json ("weight_map"
 * values, each once, in first-seen order). 0 or PHIQ_EFORMAT. Free with
 * phiq_hub_names_free. */
int phiq_hub_index_shards(const char *json, size_t len, char ***names, int *n);
void phiq_hub_names_free(char **names, int n);

/* ---- which files to take ------------------------------------------------------- */
/* True for a file phiq needs from a safetensors checkpoint: config and
 * generation config, the safetensors weights and their index, the tokenizer
 * files and the chat template. Weights in sub-directories are not taken. */
bool phiq_hub_default_want(const char *path);
/* The repo is a GGUF repo ("...-gguf" / "...-GGUF" name, or only .gguf weights). */
bool phiq_hub_is_gguf_repo(const char *repo, const phiq_hub_info *info);
/* The .gguf file of info that QUANT picks (case-insensitive: the name's last
 * "-", "." or "_"-separated part before ".gguf" equals quant, else the only
 * name containing it); with quant "" the only .gguf file, else Q4_K_M.
 * Returns the index, or PHIQ_EINVAL naming the choices. */
int phiq_hub_pick_gguf(const phiq_hub_info *info, const char *quant);
/* A glob of --include / --exclude matches path (fnmatch, '*' crosses '/',
 * a pattern ending in '/' means everything under it: huggingface_hub's rules). */
bool phiq_hub_glob(const char *pattern, const char *path);

#endif
