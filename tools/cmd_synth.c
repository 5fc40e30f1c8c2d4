/* cmd_synth.c — `phiq synth`: write a random-weight HF checkpoint of a Phi
 * preset or of explicit dimensions (library part in src/convert/synth.c). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "convert/synth.h"
#include "core/common.h"

static void synth_usage(FILE *f) {
    fprintf(f,
            "usage: phiq synth (--preset NAME | --hidden N --layers N --heads N --ff N --vocab N ...) -o DIR\n\n"
            "Writes a random-weight Hugging Face checkpoint (config.json, generation_config.json,\n"
            "BF16 safetensors, tokenizer files) of a Phi shape, for testing conversion and inference.\n\n"
            "  --preset NAME         %s\n"
            "  --arch A              phi3 (default), phi2, phimoe or phi3small (explicit dimensions)\n"
            "  --hidden N            hidden_size\n"
            "  --layers N            num_hidden_layers (with --preset: shrink the preset)\n"
            "  --heads N             num_attention_heads\n"
            "  --kv-heads N          num_key_value_heads (default = heads)\n"
            "  --ff N                intermediate_size\n"
            "  --vocab N             vocab_size\n"
            "  --experts N           num_local_experts (phimoe, default 4)\n"
            "  --experts-used N      num_experts_per_tok (phimoe, default 2)\n"
            "  --router-jitter F     router_jitter_noise (phimoe, default 0.01): the SparseMixer mask's eps\n"
            "  --mscale S[,L]        rope_scaling short_mscale[,long_mscale] (phimoe, default 1.243163121016122)\n"
            "  --blocksparse B,L,S[,D] phi3small: blocksparse_block_size B (a power of two >= 16),\n"
            "                        _num_local_blocks L, _vert_stride S, dense_attention_every_n_layers D\n"
            "                        (0 = every layer block-sparse); phi-3-small: 64,16,8,2\n"
            "  --partial-rotary F    partial_rotary_factor\n"
            "  --ctx N               max_position_embeddings\n"
            "  --ctx-orig N          original_max_position_embeddings (< ctx writes LongRoPE factors)\n"
            "  --rope-theta F        rope_theta\n"
            "  --sliding-window N    sliding_window (0 = null)\n"
            "  --tied                tie_word_embeddings (no lm_head tensor)\n"
            "  --tokenizer T         phi3, gpt2, cl100k, o200k, phi3small or none (default: the preset's /\n"
            "                        the arch's; phi3small = cl100k_base.tiktoken + Phi3SmallTokenizer config)\n"
            "  --tokenizer-dir DIR   fixtures/tokenizers directory (default: $PHIQ_SHARED/fixtures/tokenizers,\n"
            "                        ../shared/fixtures/tokenizers, or beside the binary)\n"
            "  --seed S              random seed (default 1); same seed, same bytes\n"
            "  --shard-size BYTES    split the weights into shards of at most BYTES (default 2 GB)\n"
            "  -o, --output DIR      output directory (created)\n"
            "  -q, --quiet           no progress output\n",
            phiq_synth_preset_names());
}

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    long long v = strtoll(s, &end, 0);
    if (!*s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static char *find_tokenizers(const char *explicit_dir) {
    if (explicit_dir) return strdup(explicit_dir);
    const char *sh = getenv("PHIQ_SHARED");
    if (sh && *sh) {
        char *p = phiq_path_join(sh, "fixtures/tokenizers");
        if (p && phiq_dir_exists(p)) return p;
        free(p);
    }
    if (phiq_dir_exists("../shared/fixtures/tokenizers")) return strdup("../shared/fixtures/tokenizers");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 64);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            strcpy(slash, "/../../shared/fixtures/tokenizers");
            if (phiq_dir_exists(exe)) return strdup(exe);
        }
    }
    return NULL;
}

int phiq_cmd_synth(int argc, char **argv) {
    phiq_synth_params p;
    phiq_synth_preset("phi-3-mini-4k", &p);
    const char *preset = NULL, *out = NULL, *tokdir_arg = NULL, *tok = NULL, *arch = NULL;
    /* explicit values, applied after the preset; -1 = not given */
    long long v_hidden = -1, v_layers = -1, v_heads = -1, v_kv = -1, v_ff = -1, v_vocab = -1, v_exp = -1, v_expu = -1;
    long long v_ctx = -1, v_orig = -1, v_sw = -1, v_seed = -1, v_shard = -1;
    double v_prf = -1, v_theta = -1, v_jit = -1, v_msl = -1, v_mss = -1;
    long long v_bs[4] = {-1, -1, -1, -1};
    int tied = 0, quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        long long *iv = NULL;
        double *dv = NULL;
        if (phiq_cli_is(a, "-h", "--help")) { synth_usage(stdout); return 0; }
        else if (phiq_cli_is(a, "--preset", NULL)) preset = phiq_cli_value(argc, argv, &i, "synth");
        else if (phiq_cli_is(a, "-o", "--output")) out = phiq_cli_value(argc, argv, &i, "synth");
        else if (phiq_cli_is(a, "--tokenizer-dir", NULL)) tokdir_arg = phiq_cli_value(argc, argv, &i, "synth");
        else if (phiq_cli_is(a, "--tokenizer", NULL)) tok = phiq_cli_value(argc, argv, &i, "synth");
        else if (phiq_cli_is(a, "--arch", NULL)) arch = phiq_cli_value(argc, argv, &i, "synth");
        else if (phiq_cli_is(a, "--tied", NULL)) tied = 1;
        else if (phiq_cli_is(a, "-q", "--quiet")) quiet = 1;
        else if (phiq_cli_is(a, "--hidden", NULL)) iv = &v_hidden;
        else if (phiq_cli_is(a, "--layers", NULL)) iv = &v_layers;
        else if (phiq_cli_is(a, "--heads", NULL)) iv = &v_heads;
        else if (phiq_cli_is(a, "--kv-heads", NULL)) iv = &v_kv;
        else if (phiq_cli_is(a, "--ff", NULL)) iv = &v_ff;
        else if (phiq_cli_is(a, "--vocab", NULL)) iv = &v_vocab;
        else if (phiq_cli_is(a, "--experts", NULL)) iv = &v_exp;
        else if (phiq_cli_is(a, "--experts-used", NULL)) iv = &v_expu;
        else if (phiq_cli_is(a, "--ctx", "-c")) iv = &v_ctx;
        else if (phiq_cli_is(a, "--ctx-orig", NULL)) iv = &v_orig;
        else if (phiq_cli_is(a, "--sliding-window", NULL)) iv = &v_sw;
        else if (phiq_cli_is(a, "--seed", "-s")) iv = &v_seed;
        else if (phiq_cli_is(a, "--shard-size", NULL)) iv = &v_shard;
        else if (phiq_cli_is(a, "--partial-rotary", NULL)) dv = &v_prf;
        else if (phiq_cli_is(a, "--rope-theta", NULL)) dv = &v_theta;
        else if (phiq_cli_is(a, "--router-jitter", NULL)) dv = &v_jit;
        else if (phiq_cli_is(a, "--blocksparse", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, "synth");
            int nf = v ? sscanf(v, "%lld,%lld,%lld,%lld", &v_bs[0], &v_bs[1], &v_bs[2], &v_bs[3]) : 0;
            if (nf < 3 || v_bs[0] < 16 || v_bs[0] > 65536 || v_bs[1] < 1 || v_bs[1] > 65536 || v_bs[2] < 1 ||
                v_bs[2] > 65536 || (nf == 4 && (v_bs[3] < 0 || v_bs[3] > 4096)))
                return phiq_cli_fail("synth", "--blocksparse: expected BLOCK,LOCAL,STRIDE[,DENSE_EVERY], not '%s'", v ? v : "");
            if (nf == 3) v_bs[3] = -1;
        }
        else if (phiq_cli_is(a, "--mscale", NULL)) {
            const char *v = phiq_cli_value(argc, argv, &i, "synth");
            char *end;
            v_mss = strtod(v, &end);
            v_msl = v_mss;
            if (*end == ',') v_msl = strtod(end + 1, &end);
            if (!*v || *end || !(v_mss > 0 && v_mss < 100) || !(v_msl > 0 && v_msl < 100))
                return phiq_cli_fail("synth", "--mscale: expected S or S,L with 0 < S, L < 100, not '%s'", v);
        }
        else {
            fprintf(stderr, "phiq synth: unknown option '%s'\n", a);
            synth_usage(stderr);
            return 2;
        }
        if (iv) {
            const char *v = phiq_cli_value(argc, argv, &i, "synth");
            long long hi = iv == &v_seed || iv == &v_shard ? LLONG_MAX : (1 << 30);
            long long lo = iv == &v_sw || iv == &v_seed ? 0 : 1;
            if (parse_int(v, lo, hi, iv)) return phiq_cli_fail("synth", "%s: bad value '%s'", a, v);
        }
        if (dv) {
            const char *v = phiq_cli_value(argc, argv, &i, "synth");
            char *end;
            *dv = strtod(v, &end);
            if (!*v || *end || !(*dv > 0)) return phiq_cli_fail("synth", "%s: bad value '%s'", a, v);
        }
    }
    if (!out) { synth_usage(stderr); return 2; }
    if (preset) {
        if (phiq_synth_preset(preset, &p)) return phiq_cli_fail("synth", "%s", phiq_error());
    } else {
        if (v_hidden < 0 || v_layers < 0 || v_heads < 0 || v_ff < 0 || v_vocab < 0)
            return phiq_cli_fail("synth", "give --preset NAME or all of --hidden --layers --heads --ff --vocab");
        p.sliding_window = 0;
        p.n_ctx_train = p.n_ctx_orig = 4096;
        if (arch && !strcmp(arch, "phi2")) {
            phiq_synth_preset("phi-2", &p);
        } else if (arch && !strcmp(arch, "phimoe")) {
            p.arch = PHIQ_ARCH_PHIMOE;
            p.n_expert = 4;
            p.n_expert_used = 2;
            p.gen_eos[0] = 32000; p.gen_eos[1] = 32007; p.n_gen_eos = 2;
        } else if (arch && !strcmp(arch, "phi3small")) {
            phiq_synth_preset("phi-3-small", &p);
        } else if (arch && strcmp(arch, "phi3")) {
            return phiq_cli_fail("synth", "--arch must be phi3, phi2, phimoe or phi3small");
        }
        p.sliding_window = 0;
        p.n_ctx_train = p.n_ctx_orig = p.arch == PHIQ_ARCH_PHI2 ? 2048 : 4096;
    }
    if (v_hidden > 0) p.n_embd = (int)v_hidden;
    if (v_layers > 0) p.n_layer = (int)v_layers;
    if (v_heads > 0) { p.n_head = (int)v_heads; if (v_kv < 0 && !preset) p.n_head_kv = p.n_head; }
    if (v_kv > 0) p.n_head_kv = (int)v_kv;
    if (!preset && v_kv < 0) p.n_head_kv = p.n_head;
    if (v_ff > 0) p.n_ff = (int)v_ff;
    if (v_vocab > 0) p.n_vocab = (int)v_vocab;
    if (v_exp > 0) p.n_expert = (int)v_exp;
    if (v_expu > 0) p.n_expert_used = (int)v_expu;
    if (v_ctx > 0) { p.n_ctx_train = (int)v_ctx; if (v_orig < 0 && p.n_ctx_orig > p.n_ctx_train) p.n_ctx_orig = p.n_ctx_train; }
    if (v_orig > 0) p.n_ctx_orig = (int)v_orig;
    if (v_sw >= 0) p.sliding_window = (int)v_sw;
    if (v_seed >= 0) p.seed = (uint64_t)v_seed;
    if (v_shard > 0) p.shard_size = (uint64_t)v_shard;
    if (v_prf > 0) p.partial_rotary = v_prf;
    if (v_bs[0] > 0) {
        if (p.arch != PHIQ_ARCH_PHI3SMALL) return phiq_cli_fail("synth", "--blocksparse applies to phi3small only");
        p.bs_block = (int)v_bs[0];
        p.bs_local = (int)v_bs[1];
        p.bs_stride = (int)v_bs[2];
        if (v_bs[3] >= 0) p.bs_dense_every = (int)v_bs[3];
    }
    if (v_theta > 0) p.rope_theta = v_theta;
    if (v_jit > 0) {
        if (v_jit >= 1) return phiq_cli_fail("synth", "--router-jitter must be in (0, 1)");
        p.router_jitter = v_jit;
    }
    if (v_mss > 0) { p.short_mscale = v_mss; p.long_mscale = v_msl; }
    if (tied) p.tied = true;
    p.quiet = quiet;
    if (tok) {
        if (!strcmp(tok, "none")) p.tokenizer = PHIQ_SYNTH_TOK_NONE;
        else if (!strcmp(tok, "phi3")) p.tokenizer = PHIQ_SYNTH_TOK_PHI3;
        else if (!strcmp(tok, "gpt2")) p.tokenizer = PHIQ_SYNTH_TOK_GPT2;
        else if (!strcmp(tok, "cl100k")) p.tokenizer = PHIQ_SYNTH_TOK_CL100K;
        else if (!strcmp(tok, "o200k")) p.tokenizer = PHIQ_SYNTH_TOK_O200K;
        else if (!strcmp(tok, "phi3small")) p.tokenizer = PHIQ_SYNTH_TOK_PHI3SMALL;
        else return phiq_cli_fail("synth", "--tokenizer must be phi3, gpt2, cl100k, o200k, phi3small or none");
    }
    char *tokdir = NULL;
    if (p.tokenizer != PHIQ_SYNTH_TOK_NONE) {
        tokdir = find_tokenizers(tokdir_arg);
        if (!tokdir)
            return phiq_cli_fail("synth", "cannot find the tokenizer fixtures (shared/fixtures/tokenizers): pass --tokenizer-dir DIR, set PHIQ_SHARED, or use --tokenizer none");
    }
    int rc = phiq_synth_write(&p, out, tokdir);
    free(tokdir);
    if (rc) return phiq_cli_fail("synth", "%s", phiq_error());
    if (!quiet) fprintf(stderr, "phiq synth: wrote %s\n", out);
    return 0;
}
