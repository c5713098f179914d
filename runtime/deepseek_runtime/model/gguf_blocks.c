/* A decoder layer's arithmetic on weights kept in a GGUF's own blocks of 32: `--quantization
 * gguf` on CPU.
 *
 * torch's CPU int4 weight-only matmul (_weight_int4pack_mm_for_cpu) is vectorized for AVX-512
 * only; on an AVX2 CPU it falls back to scalar code, 20-50x slower than the fp32 matmul it
 * would replace. This file is the AVX2/FMA loop instead, compiled on first use by
 * model/gguf_kernel.py and called through ctypes with the tensors' data pointers.
 *
 * Besides y = x W^T it offers the steps around the matmuls of a Llama layer as single calls
 * (RMSNorm then matmul; matmul added into the residual; the whole gated MLP; rotary embedding
 * in place): at one row a decode step is ~40 small torch ops per layer otherwise, and their
 * dispatch cost as much as the matmuls (profiled; model/gguf_layer.py uses these).
 *
 * Layouts (the GGUF's, with the fp16 block scales widened to fp32 once at load):
 *   q4_1: qs [N, K/32, 16] bytes, element j of a block in the low nibble of byte j, element
 *         j+16 in the high one; w = d * q + m with d, m [N, K/32] (Q4_0 arrives as m = -8d);
 *   q8_0: qs [N, K/32, 32] int8; w = d * q with d [N, K/32] (m is NULL).
 * Activations are contiguous fp32 rows. As in llama.cpp, they are quantized to int8 per block
 * of 32 (one scale each) so the products are integer ones (maddubs: 32 per instruction): not
 * exact, which is why this is its own mode. Each weight block is unpacked once per column and
 * used for up to 8 rows, so decode (1-16 rows) reads the weights' bytes once per step. Output
 * columns are split across `threads` OpenMP threads in chunks taken dynamically, so a thread
 * that the OS parks for a while (the server's event loops share the cores) delays one chunk,
 * not a fixed half of the work.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

typedef struct {
    int64_t n, k; /* the weight is [n, k]: n outputs over k inputs, k a multiple of 32 */
    const uint8_t *qs;
    const float *d, *m; /* m: NULL for q8_0 */
} blocks_t;

typedef struct {
    int8_t *q; /* [rows, width] activations as int8 blocks (scratch from the caller) */
    float *d;  /* [rows, width / 32] each block's scale */
    float *s;  /* [rows, width / 32] each block's exact float sum (q4_1's m term) */
} qx_t;

enum { CHUNK = 16 }; /* output columns a thread takes at a time */

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One block of 32 floats as int8 (llama.cpp's Q8 activations): q = round(v / d) with d =
 * max|v| / 127; s = the block's exact float sum. */
static inline void quantize_block(const float *v, int8_t *q, float *d, float *s) {
    float peak = 0.0f, sum = 0.0f;
    for (int i = 0; i < 32; i++) {
        float a = fabsf(v[i]);
        peak = a > peak ? a : peak;
        sum += v[i];
    }
    float inv = peak > 0 ? 127.0f / peak : 0.0f;
    for (int i = 0; i < 32; i++) q[i] = (int8_t)__builtin_lrintf(v[i] * inv);
    *d = peak / 127.0f;
    *s = sum;
}

/* Rows of x ([R, K], row stride ldx) into qx; with `norm`, each row is first RMS-normalized
 * and scaled by norm[K] in LlamaRMSNorm's order: norm * (x * rsqrt(mean(x^2) + eps)). */
static void quantize_rows(const float *x, int64_t R, int64_t K, int64_t ldx, const float *norm,
                          float eps, const qx_t *qx) {
    int64_t G = K / 32;
    float block[32];
    for (int64_t r = 0; r < R; r++) {
        const float *row = x + r * ldx;
        float inv = 1.0f;
        if (norm) {
            float squares = 0.0f;
            for (int64_t i = 0; i < K; i++) squares += row[i] * row[i];
            inv = 1.0f / sqrtf(squares / (float)K + eps);
        }
        for (int64_t g = 0; g < G; g++) {
            const float *v = row + g * 32;
            if (norm) {
                for (int i = 0; i < 32; i++) block[i] = norm[g * 32 + i] * (v[i] * inv);
                v = block;
            }
            quantize_block(v, qx->q + (r * G + g) * 32, qx->d + r * G + g, qx->s + r * G + g);
        }
    }
}

/* Eight int32 sums of 32 u8 x s8 products, as floats. */
static inline __m256 dot_u8s8(__m256i u, __m256i s) {
    __m256i pairs = _mm256_maddubs_epi16(u, s);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

static inline void store(float *y, float v, int add) { *y = add ? *y + v : v; }

/* Where the CPU has AVX-512 with VNNI (model/gguf_kernel.py compiles for it then), blocks go
 * in pairs through 512-bit registers: one vpdpbusd does the 64 u8 x s8 products and their sums
 * that take maddubs + madd on AVX2. A pair's two scales fill the two halves of one vector. */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define WIDE 1
static inline __m512 pair_scales(float a, float b) {
    __m512d lo = _mm512_castps_pd(_mm512_castps256_ps512(_mm256_set1_ps(a)));
    return _mm512_castpd_ps(_mm512_insertf64x4(lo, _mm256_castps_pd(_mm256_set1_ps(b)), 1));
}
/* Two q4 blocks' 64 nibbles in element order: [g low, g high, g+1 low, g+1 high]. */
static inline __m512i q4_pair(const uint8_t *qs) {
    __m256i b = _mm256_loadu_si256((const __m256i *)qs), low = _mm256_set1_epi8(0x0F);
    __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(b, low)),
                                   _mm256_and_si256(_mm256_srli_epi16(b, 4), low), 1);
    return _mm512_shuffle_i64x2(q, q, _MM_SHUFFLE(3, 1, 2, 0));
}
#define PAIRS_Q4(T)                                                                            \
    for (; g + 2 <= G; g += 2) {                                                               \
        __m512i q = q4_pair(qs + g * 16);                                                      \
        for (int r = 0; r < T; r++) {                                                          \
            __m512i xv = _mm512_loadu_si512(xq + (r * G + g) * 32);                            \
            __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, xv);                  \
            __m512 scale = pair_scales(d[g] * dx[r * G + g], d[g + 1] * dx[r * G + g + 1]);    \
            wide[r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), wide[r]);                \
            bias[r] += m[g] * sx[r * G + g] + m[g + 1] * sx[r * G + g + 1];                    \
        }                                                                                      \
    }
#define PAIRS_Q8(T)                                                                            \
    for (; g + 2 <= G; g += 2) {                                                               \
        __m512i q = _mm512_loadu_si512(qs + g * 32);                                           \
        __m512i size = _mm512_abs_epi8(q); /* |q| as u8; x takes q's sign */                   \
        __mmask64 negative = _mm512_movepi8_mask(q);                                           \
        for (int r = 0; r < T; r++) {                                                          \
            __m512i xv = _mm512_loadu_si512(xq + (r * G + g) * 32);                            \
            xv = _mm512_mask_sub_epi8(xv, negative, _mm512_setzero_si512(), xv);               \
            __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), size, xv);               \
            __m512 scale = pair_scales(d[g] * dx[r * G + g], d[g + 1] * dx[r * G + g + 1]);    \
            wide[r] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), wide[r]);                \
        }                                                                                      \
    }
#define WIDE_START(T)                                                                          \
    __m512 wide[T];                                                                            \
    for (int r = 0; r < T; r++) wide[r] = _mm512_setzero_ps();
#define WIDE_SUM(r) _mm512_reduce_add_ps(wide[r])
#else
#define PAIRS_Q4(T)
#define PAIRS_Q8(T)
#define WIDE_START(T)
#define WIDE_SUM(r) 0.0f
#endif

/* Output column n for T rows starting at row r0: the column's blocks unpacked once, then per
 * row an integer dot product scaled by both blocks' scales (block pairs first where WIDE). */
#define ROWS(T)                                                                                \
    static void q4_rows##T(const blocks_t *w, const qx_t *x, int64_t r0, int64_t n, float *y,  \
                           int64_t ldy, int add) {                                             \
        int64_t G = w->k / 32, g = 0;                                                          \
        const uint8_t *qs = w->qs + n * G * 16;                                                \
        const float *d = w->d + n * G, *m = w->m + n * G;                                      \
        const int8_t *xq = x->q + r0 * w->k;                                                   \
        const float *dx = x->d + r0 * G, *sx = x->s + r0 * G;                                  \
        __m256 acc[T];                                                                         \
        float bias[T];                                                                         \
        for (int r = 0; r < T; r++) acc[r] = _mm256_setzero_ps(), bias[r] = 0.0f;              \
        WIDE_START(T)                                                                          \
        PAIRS_Q4(T)                                                                            \
        const __m128i low = _mm_set1_epi8(0x0F);                                               \
        for (; g < G; g++) {                                                                   \
            __m128i b = _mm_loadu_si128((const __m128i *)(qs + g * 16));                       \
            __m256i q = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), low),             \
                                         _mm_and_si128(b, low));                               \
            for (int r = 0; r < T; r++) {                                                      \
                __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + (r * G + g) * 32));     \
                __m256 scale = _mm256_set1_ps(d[g] * dx[r * G + g]);                           \
                acc[r] = _mm256_fmadd_ps(scale, dot_u8s8(q, xv), acc[r]);                      \
                bias[r] += m[g] * sx[r * G + g];                                               \
            }                                                                                  \
        }                                                                                      \
        for (int r = 0; r < T; r++)                                                            \
            store(y + (r0 + r) * ldy + n, hsum(acc[r]) + WIDE_SUM(r) + bias[r], add);          \
    }                                                                                          \
    static void q8_rows##T(const blocks_t *w, const qx_t *x, int64_t r0, int64_t n, float *y,  \
                           int64_t ldy, int add) {                                             \
        int64_t G = w->k / 32, g = 0;                                                          \
        const int8_t *qs = (const int8_t *)w->qs + n * G * 32;                                 \
        const float *d = w->d + n * G;                                                         \
        const int8_t *xq = x->q + r0 * w->k;                                                   \
        const float *dx = x->d + r0 * G;                                                       \
        __m256 acc[T];                                                                         \
        for (int r = 0; r < T; r++) acc[r] = _mm256_setzero_ps();                              \
        WIDE_START(T)                                                                          \
        PAIRS_Q8(T)                                                                            \
        for (; g < G; g++) {                                                                   \
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + g * 32));                    \
            __m256i size = _mm256_sign_epi8(q, q); /* |q| as u8; x takes q's sign */           \
            for (int r = 0; r < T; r++) {                                                      \
                __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + (r * G + g) * 32));     \
                __m256 scale = _mm256_set1_ps(d[g] * dx[r * G + g]);                           \
                acc[r] = _mm256_fmadd_ps(scale, dot_u8s8(size, _mm256_sign_epi8(xv, q)),       \
                                         acc[r]);                                              \
            }                                                                                  \
        }                                                                                      \
        for (int r = 0; r < T; r++)                                                            \
            store(y + (r0 + r) * ldy + n, hsum(acc[r]) + WIDE_SUM(r), add);                    \
    }

ROWS(1)
ROWS(2)
ROWS(4)
ROWS(8)

/* y[R, w.n] (row stride ldy) = x W^T, or += with `add`, x already quantized in qx. */
static void matmul(const blocks_t *w, const qx_t *x, int64_t R, float *y, int64_t ldy, int add,
                   int threads) {
    int q4 = w->m != 0;
#pragma omp parallel for num_threads(threads) schedule(dynamic, CHUNK) if (threads > 1)
    for (int64_t n = 0; n < w->n; n++) {
        int64_t r = 0;
        for (; r + 8 <= R; r += 8) (q4 ? q4_rows8 : q8_rows8)(w, x, r, n, y, ldy, add);
        for (; r + 4 <= R; r += 4) (q4 ? q4_rows4 : q8_rows4)(w, x, r, n, y, ldy, add);
        for (; r + 2 <= R; r += 2) (q4 ? q4_rows2 : q8_rows2)(w, x, r, n, y, ldy, add);
        for (; r < R; r++) (q4 ? q4_rows1 : q8_rows1)(w, x, r, n, y, ldy, add);
    }
}

/* y = x W^T (add = 0) or y += x W^T (add = 1): x [R, w.k], y [R, w.n]. */
void gguf_linear(const blocks_t *w, const float *x, int64_t R, float *y, int add, const qx_t *qx,
                 int threads) {
    quantize_rows(x, R, w->k, w->k, 0, 0.0f, qx);
    matmul(w, qx, R, y, w->n, add, threads);
}

/* y = rms_norm(x) W^T: the layer's input norm and its q/k/v projection (or the output head). */
void gguf_norm_linear(const blocks_t *w, const float *x, int64_t R, const float *norm, float eps,
                      float *y, const qx_t *qx, int threads) {
    quantize_rows(x, R, w->k, w->k, norm, eps, qx);
    matmul(w, qx, R, y, w->n, 0, threads);
}

/* x += down(silu(gate) * up) with [gate | up] = rms_norm(x) gate_up^T: the whole MLP block of
 * a Llama layer, residual included. x [R, K]; h [R, 2F] scratch; qx sized for max(K, F). */
void gguf_mlp(const blocks_t *gate_up, const blocks_t *down, float *x, int64_t R,
              const float *norm, float eps, float *h, const qx_t *qx, int threads) {
    int64_t K = gate_up->k, F = gate_up->n / 2;
    quantize_rows(x, R, K, K, norm, eps, qx);
    matmul(gate_up, qx, R, h, 2 * F, 0, threads);
    for (int64_t r = 0; r < R; r++) {
        float *gate = h + r * 2 * F, *up = gate + F;
        for (int64_t i = 0; i < F; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
    }
    quantize_rows(h, R, F, 2 * F, 0, 0.0f, qx);
    matmul(down, qx, R, x, K, 1, threads);
}

/* transformers' Llama rotary embedding in place on the first `heads` heads (q's, then k's) of
 * each row of qkv [R, width]: x * cos + rotate_half(x) * sin, with cos and sin [R, dim] as the
 * model's rotary_emb returns them (its attention scaling included). */
void gguf_rope(float *qkv, int64_t R, int64_t width, int64_t heads, int64_t dim,
               const float *cos, const float *sin) {
    int64_t half = dim / 2;
    for (int64_t r = 0; r < R; r++) {
        const float *c = cos + r * dim, *s = sin + r * dim;
        for (int64_t h = 0; h < heads; h++) {
            float *v = qkv + r * width + h * dim;
            for (int64_t i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i + half] + a * s[i + half];
            }
        }
    }
}

/* The weight as fp32 rows, out [n, k]: for many rows at once (a prefill) a float GEMM on the
 * dequantized weight beats integer dot products that pay per-block scales for every row. */
void gguf_dequantize(const blocks_t *w, float *out, int threads) {
    int64_t G = w->k / 32;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t n = 0; n < w->n; n++) {
        for (int64_t g = 0; g < G; g++) {
            float d = w->d[n * G + g], *o = out + n * w->k + g * 32;
            if (w->m) {
                const uint8_t *b = w->qs + (n * G + g) * 16;
                float m = w->m[n * G + g];
                for (int j = 0; j < 16; j++) o[j] = d * (float)(b[j] & 0x0F) + m;
                for (int j = 0; j < 16; j++) o[j + 16] = d * (float)(b[j] >> 4) + m;
            } else {
                const int8_t *q = (const int8_t *)w->qs + (n * G + g) * 32;
                for (int j = 0; j < 32; j++) o[j] = d * (float)q[j];
            }
        }
    }
}
