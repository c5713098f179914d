/* y = x W^T with W kept in a GGUF's own blocks of 32 weights: `--quantization gguf` on CPU.
 *
 * torch's CPU int4 weight-only matmul (_weight_int4pack_mm_for_cpu) is vectorized for AVX-512
 * only; on an AVX2 CPU it falls back to scalar code, 20-50x slower than the fp32 matmul it
 * would replace. This file is the AVX2/FMA loop instead, compiled on first use by
 * model/gguf_kernel.py and called through ctypes with the tensors' data pointers.
 *
 * Layouts (the GGUF's, with the fp16 block scales widened to fp32 once at load):
 *   q4_1: qs [N, K/32, 16] bytes, element j of a block in the low nibble of byte j, element
 *         j+16 in the high one; w = d * q + m with d, m [N, K/32] (Q4_0 arrives as m = -8d);
 *   q8_0: qs [N, K/32, 32] int8; w = d * q with d [N, K/32].
 * x [R, K] and y [R, N] are contiguous fp32. As in llama.cpp, x is quantized to int8 per block
 * of 32 (one scale each) so the products are integer ones (maddubs: 32 per instruction): not
 * exact, which is why this is its own mode. Each weight block is unpacked once per column and
 * used for up to 8 rows of x, so decode (1-16 rows) reads the weights' bytes once per step.
 */
#include <immintrin.h>
#include <stdint.h>

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* x's rows in blocks of 32 as int8 (llama.cpp's Q8 activations): xq = round(x / dx) with dx
 * = max|x| / 127 per block; sx = the block's exact float sum (for Q4_1's m term). */
static void quantize_rows(const float *x, int64_t R, int64_t K, int8_t *xq, float *dx, float *sx) {
    for (int64_t b = 0; b < R * K / 32; b++) {
        const float *v = x + b * 32;
        float peak = 0.0f, sum = 0.0f;
        for (int i = 0; i < 32; i++) {
            float a = v[i] < 0 ? -v[i] : v[i];
            peak = a > peak ? a : peak;
            sum += v[i];
        }
        float scale = peak / 127.0f, inv = peak > 0 ? 127.0f / peak : 0.0f;
        for (int i = 0; i < 32; i++) xq[b * 32 + i] = (int8_t)__builtin_lrintf(v[i] * inv);
        dx[b] = scale;
        sx[b] = sum;
    }
}

/* Eight int32 sums of 32 u8 x s8 products, as floats. */
static inline __m256 dot_u8s8(__m256i u, __m256i s) {
    __m256i pairs = _mm256_maddubs_epi16(u, s);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}

/* One output column n for T rows: the block's weights unpacked once, then per row an integer
 * dot product scaled by both blocks' scales. */
#define ROWS(T)                                                                                \
    static void q4_1_rows##T(const int8_t *xq, const float *dx, const float *sx, int64_t G,    \
                             const uint8_t *qs, const float *d, const float *m, int64_t N,     \
                             int64_t n, float *y) {                                            \
        __m256 acc[T];                                                                         \
        float bias[T];                                                                         \
        for (int r = 0; r < T; r++) acc[r] = _mm256_setzero_ps(), bias[r] = 0.0f;              \
        const __m128i low = _mm_set1_epi8(0x0F);                                               \
        for (int64_t g = 0; g < G; g++) {                                                      \
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
        for (int r = 0; r < T; r++) y[r * N + n] = hsum(acc[r]) + bias[r];                     \
    }                                                                                          \
    static void q8_0_rows##T(const int8_t *xq, const float *dx, int64_t G, const int8_t *qs,   \
                             const float *d, int64_t N, int64_t n, float *y) {                 \
        __m256 acc[T];                                                                         \
        for (int r = 0; r < T; r++) acc[r] = _mm256_setzero_ps();                              \
        for (int64_t g = 0; g < G; g++) {                                                      \
            __m256i q = _mm256_loadu_si256((const __m256i *)(qs + g * 32));                    \
            __m256i size = _mm256_sign_epi8(q, q); /* |q| as u8; x takes q's sign */           \
            for (int r = 0; r < T; r++) {                                                      \
                __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + (r * G + g) * 32));     \
                __m256 scale = _mm256_set1_ps(d[g] * dx[r * G + g]);                           \
                acc[r] = _mm256_fmadd_ps(scale, dot_u8s8(size, _mm256_sign_epi8(xv, q)),       \
                                         acc[r]);                                              \
            }                                                                                  \
        }                                                                                      \
        for (int r = 0; r < T; r++) y[r * N + n] = hsum(acc[r]);                               \
    }

ROWS(1)
ROWS(2)
ROWS(4)
ROWS(8)

/* Both entry points take scratch space from the caller (torch allocates it): xq [R, K] int8,
 * dx and sx [R, K/32] fp32. */
void q4_1_mm(const float *x, int64_t R, int64_t K, const uint8_t *qs, const float *d,
             const float *m, int64_t N, float *y, int8_t *xq, float *dx, float *sx, int threads) {
    int64_t G = K / 32;
    quantize_rows(x, R, K, xq, dx, sx);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const uint8_t *qn = qs + n * G * 16;
        const float *dn = d + n * G, *mn = m + n * G;
        int64_t r = 0;
#define AT(r) xq + (r) * K, dx + (r) * G, sx + (r) * G, G, qn, dn, mn, N, n, y + (r) * N
        for (; r + 8 <= R; r += 8) q4_1_rows8(AT(r));
        for (; r + 4 <= R; r += 4) q4_1_rows4(AT(r));
        for (; r + 2 <= R; r += 2) q4_1_rows2(AT(r));
        for (; r < R; r++) q4_1_rows1(AT(r));
#undef AT
    }
}

void q8_0_mm(const float *x, int64_t R, int64_t K, const int8_t *qs, const float *d, int64_t N,
             float *y, int8_t *xq, float *dx, float *sx, int threads) {
    int64_t G = K / 32;
    quantize_rows(x, R, K, xq, dx, sx);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t n = 0; n < N; n++) {
        const int8_t *qn = qs + n * G * 32;
        const float *dn = d + n * G;
        int64_t r = 0;
#define AT(r) xq + (r) * K, dx + (r) * G, G, qn, dn, N, n, y + (r) * N
        for (; r + 8 <= R; r += 8) q8_0_rows8(AT(r));
        for (; r + 4 <= R; r += 4) q8_0_rows4(AT(r));
        for (; r + 2 <= R; r += 2) q8_0_rows2(AT(r));
        for (; r < R; r++) q8_0_rows1(AT(r));
#undef AT
    }
}
