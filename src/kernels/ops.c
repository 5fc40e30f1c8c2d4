/* ops.c — reference CPU kernels (see ops.h). Straightforward loops; the
 * only concession to speed is that a weight row is dequantized once and then
 * dotted with every token of the batch, and that dots use several float
 * accumulators so the compiler can keep them in vector registers. */
#include "kernels/ops.h"

#include <math.h>
#include <stdlib.h>

#include "core/common.h"
#include "formats/ggml_type.h"
#include "kernels/dispatch.h"
#include "quant/quant.h"

bool phiq_ops_type_supported(int type) {
    if (type == PHIQ_GGML_TYPE_F32 || type == PHIQ_GGML_TYPE_F16 || type == PHIQ_GGML_TYPE_BF16) return true;
    return phiq_quant_can_dequantize(type) != 0;
}

/* A row of 16-bit floats, widened by conv; src may be only byte-aligned. */
#define HALF_ROW(conv) \
    do { \
        if (((uintptr_t)src & 1) == 0) { \
            const uint16_t *p = src; \
            for (int64_t i = 0; i < n; i++) dst[i] = conv(p[i]); \
        } else { \
            for (int64_t i = 0; i < n; i++) { \
                uint16_t h; \
                memcpy(&h, (const uint8_t *)src + 2 * i, 2); \
                dst[i] = conv(h); \
            } \
        } \
    } while (0)

int phiq_row_to_f32(int type, const void *src, float *dst, int64_t n) {
    switch (type) {
    case PHIQ_GGML_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        return 0;
    case PHIQ_GGML_TYPE_F16:
        HALF_ROW(phiq_ops_h2f);
        return 0;
    case PHIQ_GGML_TYPE_BF16:
        HALF_ROW(phiq_bf16_to_f32);
        return 0;
    default:
        return phiq_dequantize(type, src, dst, n);
    }
}
#undef HALF_ROW

float phiq_dot_f32(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

void phiq_matmul_rows(const phiq_mat *w, const float *x, int64_t ldx, int T, float *y, int64_t ldy,
                      const float *bias, int64_t r0, int64_t r1, float *scratch) {
    const uint8_t *base = w->data;
    for (int64_t r = r0; r < r1; r++) {
        const float *row;
        if (w->type == PHIQ_GGML_TYPE_F32 && ((uintptr_t)(base + (size_t)r * w->row_bytes) & 3) == 0) {
            row = (const float *)(const void *)(base + (size_t)r * w->row_bytes);
        } else {
            phiq_row_to_f32(w->type, base + (size_t)r * w->row_bytes, scratch, w->n_in);
            row = scratch;
        }
        float b = bias ? bias[r] : 0.0f;
        for (int t = 0; t < T; t++) y[t * ldy + r] = phiq_dot_f32(row, x + t * ldx, w->n_in) + b;
    }
}

typedef struct {
    const phiq_mat *w;
    const float *x;
    int64_t ldx, ldy;
    int T;
    float *y;
    const float *bias;
    float *scratch;
} phiq_matmul_job;

static void phiq_matmul_task(void *arg, int ith, int nth) {
    phiq_matmul_job *j = arg;
    long lo, hi;
    phiq_split((long)j->w->n_out, ith, nth, &lo, &hi);
    phiq_matmul_rows(j->w, j->x, j->ldx, j->T, j->y, j->ldy, j->bias, lo, hi,
                     j->scratch + (size_t)ith * (size_t)j->w->n_in);
}

void phiq_matmul(phiq_threadpool *tp, const phiq_mat *w, const float *x, int64_t ldx, int T, float *y,
                 int64_t ldy, const float *bias, float *scratch) {
    phiq_matmul_job j = {w, x, ldx, ldy, T, y, bias, scratch};
    if (!tp) {
        phiq_matmul_task(&j, 0, 1);
        return;
    }
    phiq_threadpool_run(tp, phiq_matmul_task, &j);
}

int phiq_ops_vec_dot_type(int wtype) {
    switch (wtype) {
    case PHIQ_GGML_TYPE_F32: return PHIQ_GGML_TYPE_F32;
    case PHIQ_GGML_TYPE_F16: return PHIQ_GGML_TYPE_F16;
    case PHIQ_GGML_TYPE_BF16: return PHIQ_GGML_TYPE_BF16;
    case PHIQ_GGML_TYPE_Q4_0: case PHIQ_GGML_TYPE_Q5_0: case PHIQ_GGML_TYPE_Q8_0: case PHIQ_GGML_TYPE_IQ4_NL:
    case PHIQ_GGML_TYPE_MXFP4:
        return PHIQ_GGML_TYPE_Q8_0;
    case PHIQ_GGML_TYPE_Q4_1: case PHIQ_GGML_TYPE_Q5_1: return PHIQ_GGML_TYPE_Q8_1;
    case PHIQ_GGML_TYPE_Q2_K: case PHIQ_GGML_TYPE_Q3_K: case PHIQ_GGML_TYPE_Q4_K: case PHIQ_GGML_TYPE_Q5_K:
    case PHIQ_GGML_TYPE_Q6_K: case PHIQ_GGML_TYPE_IQ4_XS: case PHIQ_GGML_TYPE_IQ2_XXS: case PHIQ_GGML_TYPE_IQ2_XS:
    case PHIQ_GGML_TYPE_IQ2_S: case PHIQ_GGML_TYPE_IQ3_XXS: case PHIQ_GGML_TYPE_IQ3_S: case PHIQ_GGML_TYPE_IQ1_S:
    case PHIQ_GGML_TYPE_IQ1_M: case PHIQ_GGML_TYPE_TQ1_0: case PHIQ_GGML_TYPE_TQ2_0:
        return PHIQ_GGML_TYPE_Q8_K;
    default: return -1;
    }
}

int phiq_act_round(int wtype, const float *x, int64_t ldx, int T, int64_t n, float *out, void *qbuf) {
    int vt = phiq_ops_vec_dot_type(wtype);
    if (vt < 0) return phiq_fail(PHIQ_EUNSUPPORTED, "no ggml input rounding known for weights of type %s", phiq_ggml_type_name(wtype));
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * (size_t)ldx;
        float *o = out + (size_t)t * (size_t)n;
        if (vt == PHIQ_GGML_TYPE_F32) {
            memcpy(o, xr, (size_t)n * sizeof(float));
            continue;
        }
        if (vt == PHIQ_GGML_TYPE_F16) {
            for (int64_t i = 0; i < n; i++) o[i] = phiq_ops_h2f(phiq_f32_to_f16(xr[i]));
            continue;
        }
        if (vt == PHIQ_GGML_TYPE_BF16) {
            for (int64_t i = 0; i < n; i++) o[i] = phiq_bf16_to_f32(phiq_f32_to_bf16(xr[i]));
            continue;
        }
        int64_t rc = phiq_quantize(vt, xr, qbuf, 1, n, NULL);
        if (rc < 0) return (int)rc;
        int r = phiq_dequantize(vt, qbuf, o, n);
        if (r < 0) return r;
    }
    return 0;
}

void phiq_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * scale * w[i];
}

void phiq_layernorm(float *y, const float *x, const float *w, const float *b, int64_t n, float eps) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    float mean = (float)(s / (double)n);
    double v = 0;
    for (int64_t i = 0; i < n; i++) {
        float d = x[i] - mean;
        v += (double)d * d;
    }
    float scale = 1.0f / sqrtf((float)(v / (double)n) + eps);
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mean) * scale * w[i] + (b ? b[i] : 0.0f);
}

void phiq_rope_table(float *cos_out, float *sin_out, int n_rot, double pos, double base,
                     const float *factors, float attn_factor) {
    for (int i = 0; i < n_rot / 2; i++) {
        double inv = 1.0 / pow(base, (2.0 * i) / n_rot);
        if (factors) inv /= factors[i];
        double th = pos * inv;
        cos_out[i] = (float)cos(th) * attn_factor;
        sin_out[i] = (float)sin(th) * attn_factor;
    }
}

void phiq_rope_neox(float *v, int n_rot, const float *cos_t, const float *sin_t) {
    int h = n_rot / 2;
    for (int i = 0; i < h; i++) {
        float a = v[i], b = v[i + h];
        v[i] = a * cos_t[i] - b * sin_t[i];
        v[i + h] = b * cos_t[i] + a * sin_t[i];
    }
}

void phiq_softmax(float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > m) m = x[i];
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        s += x[i];
    }
    float inv = (float)(1.0 / s);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void phiq_swiglu(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

float phiq_gelu_tanh(float z) {
    const float c = 0.79788456080286535587989211986876f; /* sqrt(2/pi) */
    return 0.5f * z * (1.0f + tanhf(c * z * (1.0f + 0.044715f * z * z)));
}

void phiq_gelu_table_init(uint16_t *table) {
    for (uint32_t i = 0; i < 65536; i++) table[i] = phiq_f32_to_f16(phiq_gelu_tanh(phiq_f16_to_f32((uint16_t)i)));
}

void phiq_gelu_lut(float *x, int64_t n, const uint16_t *table) {
    for (int64_t i = 0; i < n; i++) {
        if (x[i] <= -10.0f) x[i] = 0.0f;
        else if (x[i] >= 10.0f) continue;
        else x[i] = phiq_f16_to_f32(table[phiq_f32_to_f16(x[i])]);
    }
}

double phiq_row_logsumexp(const float *x, int64_t n, int *argmax, double *p) {
    float mx = x[0];
    int64_t am = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i], am = i;
    const double s = phiq_kernels_get()->exp_sum(x, n, mx, p);
    if (p)
        for (int64_t i = 0; i < n; i++) p[i] /= s;
    if (argmax) *argmax = (int)am;
    return mx + log(s);
}
