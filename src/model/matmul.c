/* matmul.c — the engine's y = W x (+ b) through the CPU kernel table
 * (kernels/dispatch.h), with llama.cpp's numerics: the activation rows are
 * converted once per matmul to the weight type's activation type (Q8_0 for
 * Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for K-quants and IQ4_XS,
 * F16 for F16, BF16 for BF16, F32 for F32) into the context's scratch, then
 * weight rows are split into contiguous 16-row-aligned chunks that the
 * thread pool's threads claim dynamically, each a matvec (one token) or
 * gemm (a batch).
 *
 * On AMX the prefill gemms (AMX-BF16 for F16 weights, AMX-INT8 for the
 * quantized types) get their activations packed into tiles once per matmul
 * (a parallel pass over column tiles into the context's phiq_mm_scratch,
 * sized at context creation); each chunk then unpacks only its own weight
 * rows, in a per-thread slot of that scratch.
 *
 * BF16 weights: by default (phiq run, eval, serve) they take the f32
 * reference path below (f32 activations, as PyTorch), or with
 * llamacpp_numerics the kernel table's BF16 dots (activations rounded to
 * bf16, as llama.cpp). A context with bf16_gemm set (models loaded with
 * PHIQ_LOAD_KEEP_BF16: the calibration forward of `convert --calib` and its
 * --target-bpw selection, which hold BF16 checkpoints unconverted) runs
 * prefill (T > 1) on the register-tiled BF16 gemm
 * (kernels/gemm_bf16_avx512.c: weights widened exactly, activations f32 and
 * not rounded, put in the kernel's lane order once per matmul), so its
 * numerics are the default ones up to the order of the f32 additions; its
 * decode (T == 1) stays on the default path. bf16_gemm is only set where
 * the kernel table is AVX-512's (phiq_mm_bf16_gemm_usable); elsewhere
 * calibration converts BF16 checkpoints to F16 as before.
 *
 * The f32 reference path (each weight row dequantized and dotted with f32
 * activations, kernels/ops.c) stays reachable: PHIQ_REFERENCE_MATMUL=1 in the
 * environment when the context is created, weight types the table lacks,
 * row shapes its kernels do not accept, and BF16 weights as above. */
#include <stdatomic.h>
#include <stdlib.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_amx.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_f16.h"
#include "model/model.h"

/* Rows per scheduling unit: the AMX/AVX-512 gemm works on 16-row tiles. */
#define PHIQ_MM_ROW_ALIGN 16

/* Scratch of the AMX gemms, allocated once per context (NULL when the
 * kernel table has no AMX): the packed activation tiles of one matmul
 * (sized for the largest: F16's bf16 hi/lo, 4 bytes a value, so 16 MiB at
 * n_batch 512 x 8192 inputs; pages only touched as used) and one weight
 * scratch per concurrently running chunk (~0.6 MiB each); a chunk claims a
 * free slot (at most n_threads chunks run at once, so one is always free). */
struct phiq_mm_scratch {
    int64_t max_in, max_cols;
    bool f16;          /* AMX-BF16 usable: the F16 gemm may run */
    void *packed;      /* the largest packing of max_cols rows of max_in values */
    uint8_t *slots;    /* [n_slots][slot_size] */
    size_t slot_size;
    int n_slots;
    atomic_int *busy;  /* [n_slots] */
};

void phiq_mm_scratch_free(phiq_context *ctx) {
    struct phiq_mm_scratch *s = ctx->mms;
    if (!s) return;
    free(s->packed);
    free(s->slots);
    free(s->busy);
    free(s);
    ctx->mms = NULL;
}

int phiq_mm_scratch_init(phiq_context *ctx, int64_t max_in) {
#if defined(__x86_64__) || defined(_M_X64)
    const phiq_cpu *cpu = phiq_cpu_get();
    max_in = max_in / 32 * 32; /* both gemms take n a multiple of 32 */
    if (!ctx->kern || strcmp(ctx->kern->isa, "amx") != 0 || max_in <= 0) return 0;
    struct phiq_mm_scratch *s = calloc(1, sizeof *s);
    if (!s) return phiq_fail(PHIQ_ENOMEM, "context: out of memory for matmul scratch");
    ctx->mms = s;
    s->max_in = max_in;
    s->max_cols = ctx->n_batch;
    s->n_slots = ctx->n_threads;
    s->f16 = cpu->amx_bf16 && cpu->avx512bf16;
    size_t packed = 0, slot = 0;
    if (s->f16) {
        packed = phiq_gemm_f16_amx_packed_size(max_in, s->max_cols);
        slot = phiq_gemm_f16_amx_scratch_size(max_in, s->max_cols);
    }
    for (int t = 0; t < PHIQ_GGML_TYPE_COUNT; t++)
        if (phiq_gemm_amx_supports(t)) {
            const int64_t n = max_in / phiq_ggml_block_size(t) * phiq_ggml_block_size(t);
            if (phiq_gemm_amx_packed_size(t, n, s->max_cols) > packed) packed = phiq_gemm_amx_packed_size(t, n, s->max_cols);
            if (phiq_gemm_amx_scratch_size(t, n) > slot) slot = phiq_gemm_amx_scratch_size(t, n);
        }
    s->slot_size = (slot + 63) & ~(size_t)63;
    s->packed = aligned_alloc(64, (packed + 63) & ~(size_t)63);
    s->slots = aligned_alloc(64, (size_t)s->n_slots * s->slot_size);
    s->busy = calloc((size_t)s->n_slots, sizeof *s->busy);
    if (!s->packed || !s->slots || !s->busy) {
        phiq_mm_scratch_free(ctx);
        return phiq_fail(PHIQ_ENOMEM, "context: out of memory for matmul scratch");
    }
    for (int i = 0; i < s->n_slots; i++) atomic_init(&s->busy[i], 0);
#else
    (void)ctx, (void)max_in;
#endif
    return 0;
}

/* A free slot of the tile scratch (claimed until phiq_mm_slot_put). */
static int phiq_mm_slot_get(struct phiq_mm_scratch *s) {
    for (;;)
        for (int i = 0; i < s->n_slots; i++) {
            int z = 0;
            if (atomic_load_explicit(&s->busy[i], memory_order_relaxed) == 0 &&
                atomic_compare_exchange_strong(&s->busy[i], &z, 1))
                return i;
        }
}

static void phiq_mm_slot_put(struct phiq_mm_scratch *s, int i) { atomic_store(&s->busy[i], 0); }

typedef struct {
    const phiq_kernels *k;
    const phiq_mat *w;
    const void *act; /* T converted rows, act_stride bytes apart */
    size_t act_stride;
    int T;
    float *y;
    int64_t ldy;
    const float *bias;
    bool f16_f32; /* F16 weights, f32 activation rows (f16-rounded) for the register-tiled gemm */
    bool bf16;    /* BF16 weights, f32 activation rows in the BF16 gemm's order (ctx->bf16_gemm) */
    bool f16_amx; /* ... on AMX-BF16 tiles (exact split products), activations packed in mms */
    bool q_amx;   /* quantized weights on AMX-INT8 tiles, activations packed in mms */
    struct phiq_mm_scratch *mms;
    _Atomic int64_t *busy_ns; /* profiling: kernel time of the chunks (NULL: not profiled) */
} phiq_mm_job;

/* Chunk c's rows: [lo, hi), whole 16-row units, units split evenly. */
static void phiq_mm_rows(int64_t n_out, int c, int nch, int64_t *lo, int64_t *hi) {
    long units = (long)((n_out + PHIQ_MM_ROW_ALIGN - 1) / PHIQ_MM_ROW_ALIGN), a, b;
    phiq_split(units, c, nch, &a, &b);
    *lo = (int64_t)a * PHIQ_MM_ROW_ALIGN;
    *hi = (int64_t)b * PHIQ_MM_ROW_ALIGN;
    if (*hi > n_out) *hi = n_out;
    if (*lo > *hi) *lo = *hi;
}

/* Chunks per matmul: small enough that a thread descheduled mid-job leaves
 * little for the others to wait on, large enough that per-call set-up
 * (activation rearrangement, AMX tile packing of all T columns) stays small. */
static int phiq_mm_chunks(const phiq_context *ctx, const phiq_mat *w, int T) {
    int64_t units = (w->n_out + PHIQ_MM_ROW_ALIGN - 1) / PHIQ_MM_ROW_ALIGN;
    /* 256 rows both ways. Mat-vec chunks of 64 rows left decode 10-23% slower
     * (8-layer Phi-3-mini: Q4_0 34 -> 42 tok/s, Q4_K_M 33 -> 40, Q8_0 23.5 ->
     * 25.8, F16 13.2 -> 13.8): every chunk restarts the hardware prefetcher
     * and the software prefetch runs past its end. */
    int64_t per = 16;
    int64_t nch = units / per;
    if (nch > 8 * (int64_t)ctx->n_threads && T > 1) nch = 8 * (int64_t)ctx->n_threads;
    if (nch > 1024) nch = 1024;
    if (nch < 1) nch = 1;
    return (int)nch;
}

static void phiq_mm_run(const phiq_mm_job *j, int ith, int nth);

static void phiq_mm_task(void *arg, int ith, int nth) {
    const phiq_mm_job *j = arg;
    if (!j->busy_ns) {
        phiq_mm_run(j, ith, nth);
        return;
    }
    const double t0 = phiq_now();
    phiq_mm_run(j, ith, nth);
    atomic_fetch_add_explicit(j->busy_ns, (int64_t)((phiq_now() - t0) * 1e9), memory_order_relaxed);
}

/* Chunk ith of nth of a matmul job. */
static void phiq_mm_run(const phiq_mm_job *j, int ith, int nth) {
    const phiq_mat *w = j->w;
    int64_t lo, hi;
    phiq_mm_rows(w->n_out, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    const char *wr = (const char *)w->data + (size_t)lo * w->row_bytes;
#if defined(__x86_64__) || defined(_M_X64)
    if (j->f16_amx || j->q_amx) {
        /* AMX on the packed activations, weight rows unpacked in a claimed slot */
        struct phiq_mm_scratch *s = j->mms;
        const int slot = phiq_mm_slot_get(s);
        void *scratch = s->slots + (size_t)slot * s->slot_size;
        int rc = 0;
        if (j->q_amx)
            phiq_gemm_amx_run(w->type, w->n_in, hi - lo, j->T, j->y + lo, (size_t)j->ldy, wr, w->row_bytes, s->packed,
                              scratch, j->act, j->act_stride);
        else
            rc = phiq_gemm_f16_amx_packed(w->n_in, hi - lo, j->T, j->y + lo, (size_t)j->ldy, wr, w->row_bytes,
                                          s->packed, scratch, j->act, j->act_stride / sizeof(float));
        phiq_mm_slot_put(s, slot);
        if (rc < 0) /* fewer than 16 rows: the tail of n_out % 16, rows in actq */
            phiq_gemm_f16_f32_avx512(w->n_in, hi - lo, j->T, j->y + lo, (size_t)j->ldy, wr, w->row_bytes, j->act,
                                     j->act_stride / sizeof(float));
    } else if (j->f16_f32)
        phiq_gemm_f16_f32_avx512(w->n_in, hi - lo, j->T, j->y + lo, (size_t)j->ldy, wr, w->row_bytes, j->act,
                                 j->act_stride / sizeof(float));
    else if (j->bf16)
        phiq_gemm_bf16_f32_avx512(w->n_in, hi - lo, j->T, j->y + lo, (size_t)j->ldy, wr, w->row_bytes, j->act,
                                  j->act_stride / sizeof(float));
    else
#endif
    if (j->T == 1)
        j->k->matvec[w->type](w->n_in, hi - lo, j->y + lo, wr, w->row_bytes, j->act);
    else
        j->k->gemm[w->type](w->n_in, hi - lo, j->T, j->y + lo, (size_t)j->ldy, wr, w->row_bytes, j->act, j->act_stride);
    if (j->bias)
        for (int t = 0; t < j->T; t++) {
            float *yt = j->y + (size_t)t * (size_t)j->ldy;
            for (int64_t r = lo; r < hi; r++) yt[r] += j->bias[r];
        }
}

/* Converting a batch's activation rows: T rows split across the pool, to
 * the table's activation type at (PHIQ_CONV_TABLE) or for a tiled gemm. */
enum { PHIQ_CONV_TABLE, PHIQ_CONV_F16_F32, PHIQ_CONV_BF16 };
typedef struct {
    const phiq_context *ctx;
    int at, T, mode;
    const float *x;
    int64_t ldx, n;
    atomic_int err;
} phiq_conv_job;

static int phiq_conv_row(const phiq_context *ctx, int at, int mode, const float *x, int64_t n, uint8_t *dst) {
#if defined(__x86_64__) || defined(_M_X64)
    if (mode == PHIQ_CONV_F16_F32) {
        phiq_round_f16_f32_avx512((float *)(void *)dst, x, n);
        return 0;
    }
    if (mode == PHIQ_CONV_BF16) {
        phiq_bf16_act_prepare_avx512((float *)(void *)dst, x, n);
        return 0;
    }
#else
    (void)mode;
#endif
    return ctx->kern->quantize_act(at, x, dst, n);
}

static void phiq_conv_task(void *arg, int c, int nch) {
    phiq_conv_job *j = arg;
    long lo, hi;
    phiq_split(j->T, c, nch, &lo, &hi);
    for (long t = lo; t < hi; t++) {
        int rc = phiq_conv_row(j->ctx, j->at, j->mode, j->x + (size_t)t * (size_t)j->ldx, j->n,
                               j->ctx->actq + (size_t)t * j->ctx->actq_row);
        if (rc < 0) atomic_store(&j->err, rc);
    }
}

/* Activation rows x (T of them) into ctx->actq; parallel for batches. */
static int phiq_conv_rows(phiq_context *ctx, int at, int mode, const float *x, int64_t ldx, int T, int64_t n) {
    if (T < 4) {
        for (int t = 0; t < T; t++) {
            int rc = phiq_conv_row(ctx, at, mode, x + (size_t)t * (size_t)ldx, n, ctx->actq + (size_t)t * ctx->actq_row);
            if (rc < 0) return rc;
        }
        return 0;
    }
    phiq_conv_job j = {ctx, at, T, mode, x, ldx, n, 0};
    atomic_init(&j.err, 0);
    int nch = T / 2 < 4 * ctx->n_threads ? T / 2 : 4 * ctx->n_threads;
    phiq_threadpool_run_chunks(ctx->tp, phiq_conv_task, &j, nch);
    return atomic_load(&j.err);
}

/* phiq_conv_rows, its time added to the profile's when one is on. */
static int phiq_conv(phiq_context *ctx, int at, int mode, const float *x, int64_t ldx, int T, int64_t n) {
    if (!ctx->prof) return phiq_conv_rows(ctx, at, mode, x, ldx, T, n);
    const double t0 = phiq_now();
    const int rc = phiq_conv_rows(ctx, at, mode, x, ldx, T, n);
    ctx->prof->conv += phiq_now() - t0;
    return rc;
}

/* Packing a batch's activations for an AMX gemm: column tiles split across
 * the pool (every tile of the padded layout, zeros included). wtype -1:
 * the F16 gemm from f32 rows (x, ldx floats apart); else the INT8 gemm of
 * that weight type from converted rows (x, ldx bytes apart). */
typedef struct {
    int64_t n, T;
    const void *x;
    size_t ldx;
    void *packed;
    int wtype;
} phiq_pack_job;

static void phiq_pack_task(void *arg, int c, int nch) {
    const phiq_pack_job *j = arg;
    long lo, hi;
#if defined(__x86_64__) || defined(_M_X64)
    if (j->wtype < 0) {
        phiq_split((long)phiq_gemm_f16_amx_packed_tiles(j->T), c, nch, &lo, &hi);
        phiq_gemm_f16_amx_pack(j->n, j->T, lo, hi, j->x, j->ldx, j->packed);
    } else {
        phiq_split((long)((j->T + 15) / 16), c, nch, &lo, &hi);
        phiq_gemm_amx_pack(j->wtype, j->n, j->T, lo, hi, j->x, j->ldx, j->packed);
    }
#else
    (void)j, (void)lo, (void)hi, (void)c, (void)nch;
#endif
}

/* True when the kernel table can run this matrix with the context's scratch. */
static bool phiq_mm_fast_ok(const phiq_context *ctx, const phiq_mat *w) {
    const phiq_kernels *k = ctx->kern;
    if (!k || ctx->ref_matmul || w->type < 0 || w->type >= PHIQ_GGML_TYPE_COUNT) return false;
    int at = k->act_type[w->type];
    if (at < 0 || !k->matvec[w->type] || !k->gemm[w->type]) return false;
    /* BF16 weights hold the checkpoint exactly; rounding activations to bf16
     * (llama.cpp) costs 1e-3 of the logit range against PyTorch's f32, so
     * only do it when llama.cpp's numerics were asked for. */
    if (w->type == PHIQ_GGML_TYPE_BF16 && !ctx->llamacpp_numerics) return false;
    if (w->n_in % phiq_ggml_block_size(w->type) != 0 || w->n_in % phiq_ggml_block_size(at) != 0) return false;
    if (((uintptr_t)w->data & 1) != 0 || (w->row_bytes & 1) != 0) return false;
    if (at != PHIQ_GGML_TYPE_F32 && (size_t)phiq_ggml_row_size(at, w->n_in) > ctx->actq_row) return false;
    return true;
}

bool phiq_mm_bf16_gemm_usable(void) {
#if defined(__x86_64__) || defined(_M_X64)
    const char *refmm = getenv("PHIQ_REFERENCE_MATMUL");
    return strcmp(phiq_kernels_get()->isa, "avx512") == 0 && !(refmm && *refmm && *refmm != '0');
#else
    return false;
#endif
}

static int phiq_mm_do(phiq_context *ctx, const phiq_mat *w, const float *x, int64_t ldx, int T, float *y, int64_t ldy,
                      const float *bias, _Atomic int64_t *busy_ns);

/* The profile's entry for w's shape and type (NULL when the table is full). */
static phiq_prof_mm *phiq_prof_entry(phiq_prof *p, const phiq_mat *w) {
    for (int i = 0; i < p->n_mm; i++)
        if (p->mm[i].n_in == w->n_in && p->mm[i].n_out == w->n_out && p->mm[i].type == w->type) return &p->mm[i];
    if (p->n_mm == PHIQ_PROF_SHAPES) return NULL;
    phiq_prof_mm *e = &p->mm[p->n_mm++];
    *e = (phiq_prof_mm){.n_in = w->n_in, .n_out = w->n_out, .type = w->type};
    return e;
}

int phiq_mm(phiq_context *ctx, const phiq_mat *w, const float *x, int64_t ldx, int T, float *y, int64_t ldy,
            const float *bias) {
    phiq_prof_mm *e = ctx->prof ? phiq_prof_entry(ctx->prof, w) : NULL;
    if (!e) return phiq_mm_do(ctx, w, x, ldx, T, y, ldy, bias, NULL);
    _Atomic int64_t busy = 0;
    const double t0 = phiq_now(), conv0 = ctx->prof->conv;
    int rc = phiq_mm_do(ctx, w, x, ldx, T, y, ldy, bias, &busy);
    e->wall += phiq_now() - t0;
    e->conv += ctx->prof->conv - conv0;
    e->busy += (double)atomic_load(&busy) * 1e-9;
    e->bytes += (double)w->row_bytes * (double)w->n_out;
    e->calls++;
    return rc;
}

/* phiq_mm; with busy_ns set (profiling), the chunks' kernel time is added
 * there. */
static int phiq_mm_do(phiq_context *ctx, const phiq_mat *w, const float *x, int64_t ldx, int T, float *y, int64_t ldy,
                      const float *bias, _Atomic int64_t *busy_ns) {
    if (ctx->mm_hook) {
        int hrc = ctx->mm_hook(ctx->mm_hook_ud, w, x, ldx, T);
        if (hrc < 0) return hrc;
    }
#if defined(__x86_64__) || defined(_M_X64)
    /* prefill with BF16 weights where the context asked for the BF16 gemm */
    if (ctx->bf16_gemm && w->type == PHIQ_GGML_TYPE_BF16 && T > 1 && ctx->kern && ((uintptr_t)w->data & 1) == 0 &&
        (w->row_bytes & 1) == 0 && (size_t)w->n_in * sizeof(float) <= ctx->actq_row) {
        phiq_mm_job j = {ctx->kern, w, ctx->actq, ctx->actq_row, T, y, ldy, bias, false, true, false, false, NULL, busy_ns};
        int rc = phiq_conv(ctx, -1, PHIQ_CONV_BF16, x, ldx, T, w->n_in);
        if (rc < 0) return rc;
        phiq_threadpool_run_chunks(ctx->tp, phiq_mm_task, &j, phiq_mm_chunks(ctx, w, T));
        return 0;
    }
#endif
    if (!phiq_mm_fast_ok(ctx, w)) {
        if (ctx->llamacpp_numerics && w->type != PHIQ_GGML_TYPE_F32) {
            int rc = phiq_act_round(w->type, x, ldx, T, w->n_in, ctx->act, ctx->act_q);
            if (rc < 0) return rc;
            x = ctx->act;
            ldx = w->n_in;
        }
        phiq_matmul(ctx->tp, w, x, ldx, T, y, ldy, bias, ctx->mm_scratch);
        return 0;
    }
    const phiq_kernels *k = ctx->kern;
    int at = k->act_type[w->type];
    phiq_mm_job j = {k, w, NULL, 0, T, y, ldy, bias, false, false, false, false, ctx->mms, busy_ns};
#if defined(__x86_64__) || defined(_M_X64)
    /* prefill with F16 weights: the table's gemm converts both operands per
     * FMA; the tiled kernel converts weights only (AVX-512 tables). */
    if (at == PHIQ_GGML_TYPE_F16 && T > 1 && w->n_in % 16 == 0 && (size_t)w->n_in * sizeof(float) <= ctx->actq_row &&
        (strcmp(k->isa, "avx512") == 0 || strcmp(k->isa, "amx") == 0)) {
        const struct phiq_mm_scratch *mms = ctx->mms;
        const char *noamx = getenv("PHIQ_F16_NO_AMX");
        j.f16_amx = mms && mms->f16 && w->n_in % 32 == 0 && w->n_in <= mms->max_in && T <= mms->max_cols && w->n_out >= 16 &&
                    !(noamx && *noamx && *noamx != '0');
        j.act = ctx->actq;
        j.act_stride = ctx->actq_row;
        j.f16_f32 = true;
        /* f16-rounded f32 rows for the AVX-512 kernel: all rows, or a tail of n_out % 16 */
        if (!j.f16_amx || w->n_out % PHIQ_MM_ROW_ALIGN != 0) phiq_conv(ctx, at, PHIQ_CONV_F16_F32, x, ldx, T, w->n_in);
        if (j.f16_amx) {
            phiq_pack_job pj = {w->n_in, T, x, (size_t)ldx, mms->packed, -1};
            int64_t nct = ((int64_t)T + 15) / 16;
            phiq_threadpool_run_chunks(ctx->tp, phiq_pack_task, &pj, (int)(nct < 4 * ctx->n_threads ? nct : 4 * ctx->n_threads));
        }
        phiq_threadpool_run_chunks(ctx->tp, phiq_mm_task, &j, phiq_mm_chunks(ctx, w, T));
        return 0;
    }
#endif
    if (at == PHIQ_GGML_TYPE_F32 && ((uintptr_t)x & 3) == 0) {
        j.act = x; /* already in the activation type */
        j.act_stride = (size_t)ldx * sizeof(float);
    } else {
        if (at == PHIQ_GGML_TYPE_F32) return phiq_fail(PHIQ_EINVAL, "matmul: misaligned f32 activations");
        int rc = phiq_conv(ctx, at, PHIQ_CONV_TABLE, x, ldx, T, w->n_in);
        if (rc < 0) return rc;
        j.act = ctx->actq;
        j.act_stride = ctx->actq_row;
#if defined(__x86_64__) || defined(_M_X64)
        /* AMX-INT8 prefill: the converted rows packed into tiles once */
        const struct phiq_mm_scratch *mms = ctx->mms;
        if (mms && T > 1 && strcmp(k->isa, "amx") == 0 && phiq_gemm_amx_supports(w->type) && w->n_in <= mms->max_in &&
            T <= mms->max_cols && w->n_out >= 16) {
            phiq_pack_job pj = {w->n_in, T, j.act, j.act_stride, mms->packed, w->type};
            int64_t nct = ((int64_t)T + 15) / 16;
            phiq_threadpool_run_chunks(ctx->tp, phiq_pack_task, &pj, (int)(nct < 4 * ctx->n_threads ? nct : 4 * ctx->n_threads));
            j.q_amx = true;
        }
#endif
    }
    phiq_threadpool_run_chunks(ctx->tp, phiq_mm_task, &j, phiq_mm_chunks(ctx, w, T));
    return 0;
}
