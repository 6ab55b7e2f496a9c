// The tensor-core GEMM (nvcuda::wmma) behind gemm_tc.cu and conv_tc.cu: same operands (common.cuh,
// conv_operands.cuh), same tile loaders, same fused bias + activation epilogue and split-K as the FP32
// gemm_tile, but the operands are rounded to the precision's element type when they are staged in shared
// memory and each warp multiplies 16×16 fragments with FP32 accumulation.
//
// Precisions (gpucnn.config's names): "high" = Tf32 (wmma::precision::tf32, m16n16k8, operands rounded with
// __float_to_tf32: nearest, ties away) and "medium" = Bf16 (__nv_bfloat16, m16n16k16, __float2bfloat16:
// nearest even).  Storage, accumulation, bias and activation stay FP32.
#pragma once

#include <mma.h>
#include <cuda_bf16.h>

#include "common.cuh"

struct Tf32 {
    using Element = float;                               // shared-memory tiles: float holding TF32 values
    using Fragment = nvcuda::wmma::precision::tf32;
    static constexpr int K = 8;
    __device__ static float convert(float v) { return nvcuda::wmma::__float_to_tf32(v); }
};

struct Bf16 {
    using Element = __nv_bfloat16;
    using Fragment = __nv_bfloat16;
    static constexpr int K = 16;
    __device__ static __nv_bfloat16 convert(float v) { return __float2bfloat16(v); }
};

constexpr int TC_BK = 16;  // k per shared-memory slice: two TF32 or one BF16 mma step

// One BM×BN tile of C per block of WARPS_M × WARPS_N warps, each warp a (BM/WARPS_M)×(BN/WARPS_N) block of
// 16×16 accumulator fragments.  The shared tiles are S[k][i] as the loaders store them: A is read as a
// col_major matrix_a (element (m, k) at k·ldm + m), B as a row_major matrix_b (element (k, n) at k·ldm + n).
// Rows are padded by 16 bytes, which keeps ldm a multiple of 16 bytes and every fragment 32-byte aligned.
template <class P, int BM, int BN, int WARPS_M, int WARPS_N, class AOperand, class BOperand>
__device__ void gemm_tile_tc(const AOperand& a, const BOperand& b, int M, int N, int K, int k_tiles_per_split,
                             const float* __restrict__ bias, float* __restrict__ out, int activation,
                             float alpha) {
    using namespace nvcuda;
    using Element = typename P::Element;
    constexpr int BK = TC_BK;
    constexpr int WARPS = WARPS_M * WARPS_N;
    constexpr int THREADS = 32 * WARPS;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
    constexpr int FM = WM / 16, FN = WN / 16;
    constexpr int PAD = 16 / sizeof(Element);
    constexpr int STAGE_LD = 16 + 4;  // floats per row of a warp's epilogue staging tile
    static_assert(WM % 16 == 0 && WN % 16 == 0 && BK % P::K == 0, "warp tiles are whole 16×16 fragments");
    __shared__ __align__(32) Element a_tile[2][BK][BM + PAD];
    __shared__ __align__(32) Element b_tile[2][BK][BN + PAD];
    __shared__ __align__(32) float stage[WARPS][16][STAGE_LD];

    const int m0 = blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int warp_m = (warp / WARPS_N) * WM, warp_n = (warp % WARPS_N) * WN;
    out += (long long)blockIdx.z * M * N;

    TileLoader<AOperand, BM, BK, THREADS> a_loader(a, m0);
    TileLoader<BOperand, BN, BK, THREADS> b_loader(b, n0);
    wmma::fragment<wmma::accumulator, 16, 16, P::K, float> acc[FM][FN];
    #pragma unroll
    for (int i = 0; i < FM; ++i)
        #pragma unroll
        for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

    double_buffered_k_loop<P, BK>(a_loader, b_loader, a_tile, b_tile, K, k_tiles_per_split, [&](int current) {
        #pragma unroll
        for (int kk = 0; kk < BK; kk += P::K) {
            wmma::fragment<wmma::matrix_a, 16, 16, P::K, typename P::Fragment, wmma::col_major> a_frag[FM];
            wmma::fragment<wmma::matrix_b, 16, 16, P::K, typename P::Fragment, wmma::row_major> b_frag[FN];
            #pragma unroll
            for (int i = 0; i < FM; ++i) wmma::load_matrix_sync(a_frag[i], &a_tile[current][kk][warp_m + 16 * i], BM + PAD);
            #pragma unroll
            for (int j = 0; j < FN; ++j) wmma::load_matrix_sync(b_frag[j], &b_tile[current][kk][warp_n + 16 * j], BN + PAD);
            #pragma unroll
            for (int i = 0; i < FM; ++i)
                #pragma unroll
                for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], a_frag[i], b_frag[j], acc[i][j]);
        }
    });

    // Epilogue: a fragment's element positions are unspecified, so each goes through the warp's staging
    // tile; then lane l owns row l/2, columns 8·(l%2) .. +8, adds the bias, applies the activation and stores
    // (two float4 where the row is 16-byte aligned, as in gemm_tile).
    const bool vector_store = N % 4 == 0 && reinterpret_cast<unsigned long long>(out) % 16 == 0;
    const int row = lane / 2, col = 8 * (lane % 2);
    #pragma unroll
    for (int i = 0; i < FM; ++i) {
        #pragma unroll
        for (int j = 0; j < FN; ++j) {
            wmma::store_matrix_sync(&stage[warp][0][0], acc[i][j], STAGE_LD, wmma::mem_row_major);
            __syncwarp();
            const int m = m0 + warp_m + 16 * i + row;
            const int n = n0 + warp_n + 16 * j + col;
            if (m < M) {
                float v[8];
                #pragma unroll
                for (int q = 0; q < 8; ++q)
                    v[q] = apply_activation(stage[warp][row][col + q] + (n + q < N ? bias[n + q] : 0.0f), activation, alpha);
                float* dst = out + (long long)m * N + n;
                #pragma unroll
                for (int h = 0; h < 8; h += 4) {
                    if (vector_store && n + h + 3 < N) {
                        *reinterpret_cast<float4*>(dst + h) = make_float4(v[h], v[h + 1], v[h + 2], v[h + 3]);
                    } else {
                        #pragma unroll
                        for (int q = h; q < h + 4; ++q)
                            if (n + q < N) dst[q] = v[q];
                    }
                }
            }
            __syncwarp();  // the staging tile is rewritten by the next fragment
        }
    }
}

template <class P, int BM, int BN, int WARPS_M, int WARPS_N>
struct TensorCoreTile {
    template <class... Args>
    __device__ static void run(const Args&... args) { gemm_tile_tc<P, BM, BN, WARPS_M, WARPS_N>(args...); }
};

// gemm_tile_tc as the callable of the problem builders (see GemmLaunch in common.cuh).
template <class P, int BM, int BN, int WARPS_M, int WARPS_N>
using TensorCoreGemm = GemmLaunch<TensorCoreTile<P, BM, BN, WARPS_M, WARPS_N>>;

// The tile shapes of the tensor-core kernels, the same BM×BN as the FP32 ones (the launcher's choose_tile
// serves both), 8 warps each: ENTRY(..., BM, BN, WARPS_M, WARPS_N) once per shape.
#define FOR_EACH_TC_TILE(ENTRY, ...)       \
    ENTRY(__VA_ARGS__, 128, 128, 2, 4)     \
    ENTRY(__VA_ARGS__, 64, 64, 2, 4)       \
    ENTRY(__VA_ARGS__, 128, 32, 4, 2)      \
    ENTRY(__VA_ARGS__, 32, 128, 2, 4)
