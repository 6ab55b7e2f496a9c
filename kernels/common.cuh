// Shared device code of conv.cu and gemm.cu (and their tensor-core twins conv_tc.cu, gemm_tc.cu): the fused
// activation epilogue and one tiled, register-blocked GEMM (C = A·B, A: M×K, B: K×N, C row-major M×N) that
// reads its operands through small "operand" structs.
//
// An operand hides where element (i, k) lives: a plain or transposed matrix for Dense, a gather from an
// NHWC image for the implicit-GEMM convolutions (no im2col buffer is ever built).  For the A operand the
// "fixed" index i is the row m, for B it is the column n; k is the reduction index.  Every operand provides
//   struct Fixed;  Fixed fixed(int i) const;   // index work for i, done once per thread (i is fixed per block)
//   struct Moving; Moving moving(int k) const;  // index work for k, redone for every K tile
//   float load(const Fixed&, const Moving&) const;  // element (i, k), 0 outside the matrix (or in the padding)
//   static constexpr bool k_contiguous;  // consecutive k are neighbours in memory (decides coalescing)
// Indices of rows, columns and k fit in int (the launchers check it); element offsets are 64-bit.
#pragma once

enum Activation { ACT_LINEAR = 0, ACT_RELU = 1, ACT_LEAKY_RELU = 2, ACT_SIGMOID = 3, ACT_TANH = 4 };

__device__ __forceinline__ float apply_activation(float v, int activation, float alpha) {
    switch (activation) {
    case ACT_RELU: return v > 0.0f ? v : 0.0f;
    case ACT_LEAKY_RELU: return v < 0.0f ? v * alpha : v;
    case ACT_SIGMOID: {
        // exp of -|v| only, so it never overflows (same formula as the NumPy reference).
        float e = expf(-fabsf(v));
        return v >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
    case ACT_TANH: return tanhf(v);
    default: return v;
    }
}

// A dense matrix seen as an operand: element (i, k) = data[i * fixed_stride + k * k_stride].
// K_CONTIGUOUS says which stride is 1, so the loader lets neighbouring threads read neighbouring floats.
template <bool K_CONTIGUOUS>
struct MatrixOperand {
    static constexpr bool k_contiguous = K_CONTIGUOUS;
    const float* data;
    int fixed_extent, k_extent;
    long long fixed_stride, k_stride;

    struct Fixed { long long offset; bool inside; };
    struct Moving { long long offset; bool inside; };
    __device__ Fixed fixed(int i) const { return {i * fixed_stride, i < fixed_extent}; }
    __device__ Moving moving(int k) const { return {k * k_stride, k < k_extent}; }
    __device__ float load(const Fixed& f, const Moving& m) const {
        return (f.inside && m.inside) ? data[f.offset + m.offset] : 0.0f;
    }
};

// The values a tile loader stores unchanged (the FP32 kernels); tensor-core kernels pass a rounding instead.
struct KeepFloat {
    __device__ static float convert(float v) { return v; }
};

// Moves one operand's BK×TILE slice from global memory into shared memory as S[k][i], through registers
// so the next slice can be fetched while the current one is multiplied.  Threads are laid out along the
// operand's contiguous index, so a warp reads runs of neighbouring floats.
template <class Operand, int TILE, int BK, int THREADS>
struct TileLoader {
    static constexpr bool k_contiguous = Operand::k_contiguous;
    static constexpr int LOADS = TILE * BK / THREADS;
    static constexpr int FIXED_PER_THREAD = k_contiguous ? LOADS : 1;
    static_assert(TILE * BK % THREADS == 0, "tile must be a whole number of loads per thread");
    static_assert(k_contiguous ? THREADS % BK == 0 : THREADS % TILE == 0, "threads must cover a row");

    const Operand& op;
    typename Operand::Fixed fixed_info[FIXED_PER_THREAD];
    float staged[LOADS];
    int lane, first_row;  // along the contiguous index / along the other one

    __device__ TileLoader(const Operand& operand, int tile_origin) : op(operand) {
        const int t = threadIdx.x;
        if constexpr (k_contiguous) {
            lane = t % BK;
            first_row = t / BK;
            #pragma unroll
            for (int r = 0; r < LOADS; ++r)
                fixed_info[r] = op.fixed(tile_origin + first_row + r * (THREADS / BK));
        } else {
            lane = t % TILE;
            first_row = t / TILE;
            fixed_info[0] = op.fixed(tile_origin + lane);
        }
    }

    __device__ void fetch(int k0) {
        if constexpr (k_contiguous) {
            const typename Operand::Moving m = op.moving(k0 + lane);
            #pragma unroll
            for (int r = 0; r < LOADS; ++r) staged[r] = op.load(fixed_info[r], m);
        } else {
            #pragma unroll
            for (int r = 0; r < LOADS; ++r)
                staged[r] = op.load(fixed_info[0], op.moving(k0 + first_row + r * (THREADS / TILE)));
        }
    }

    // Stores the slice as S[k][i], each value as Convert::convert makes it (the element type of the tiles).
    template <class Convert = KeepFloat, int STRIDE, class Element>
    __device__ void store(Element (*shared)[STRIDE]) const {
        #pragma unroll
        for (int r = 0; r < LOADS; ++r) {
            if constexpr (k_contiguous) shared[lane][first_row + r * (THREADS / BK)] = Convert::convert(staged[r]);
            else shared[first_row + r * (THREADS / TILE)][lane] = Convert::convert(staged[r]);
        }
    }
};

// Row (or column) of a thread's i-th accumulator inside the block tile.  A thread owns groups of 4
// neighbours spaced TILE / GROUPS apart, so a warp's float4 reads of shared memory cover one contiguous
// run (no bank conflicts) and its stores to global memory are 16-byte pieces of long runs.
template <int TILE, int PER_THREAD>
__device__ __forceinline__ int owned_index(int thread_coord, int i) {
    constexpr int GROUPS = PER_THREAD / 4;
    return (i / 4) * (TILE / GROUPS) + thread_coord * 4 + (i % 4);
}

// The K loop of gemm_tile and gemm_tile_tc (tensor_core.cuh): BK-deep slices of A and B double-buffered in
// shared memory (one barrier per slice), the next slice's global loads in flight while multiply(buffer)
// works on the current one.  Split-K: block z covers k tiles [z·k_tiles_per_split, (z+1)·k_tiles_per_split).
// Convert is how the loaders store values into the tiles (KeepFloat, or a tensor-core rounding).
template <class Convert, int BK, class ALoader, class BLoader, class ATiles, class BTiles, class Multiply>
__device__ __forceinline__ void double_buffered_k_loop(ALoader& a_loader, BLoader& b_loader, ATiles& a_tile,
                                                       BTiles& b_tile, int K, int k_tiles_per_split,
                                                       const Multiply& multiply) {
    const int k_begin = blockIdx.z * k_tiles_per_split * BK;
    const int k_tiles = min(k_tiles_per_split, (K - k_begin + BK - 1) / BK);
    if (k_tiles > 0) {
        a_loader.fetch(k_begin);
        b_loader.fetch(k_begin);
        a_loader.template store<Convert>(a_tile[0]);
        b_loader.template store<Convert>(b_tile[0]);
    }
    __syncthreads();
    for (int tile = 0; tile < k_tiles; ++tile) {
        const int current = tile & 1;
        const bool more = tile + 1 < k_tiles;
        if (more) {  // global loads in flight while the multiplication runs
            a_loader.fetch(k_begin + (tile + 1) * BK);
            b_loader.fetch(k_begin + (tile + 1) * BK);
        }
        multiply(current);
        if (more) {  // the other buffer was last read before the previous barrier
            a_loader.template store<Convert>(a_tile[current ^ 1]);
            b_loader.template store<Convert>(b_tile[current ^ 1]);
        }
        __syncthreads();
    }
}

// One BM×BN tile of C per block, each thread a TM×TN sub-tile in registers, the K loop above.  With split-K
// block z writes slice z of `out` (M×N each); with one split `out` is C itself.  The epilogue adds bias[n]
// and applies the activation before the single store.
template <int BM, int BN, int BK, int TM, int TN, class AOperand, class BOperand>
__device__ void gemm_tile(const AOperand& a, const BOperand& b, int M, int N, int K, int k_tiles_per_split,
                          const float* __restrict__ bias, float* __restrict__ out, int activation,
                          float alpha) {
    constexpr int THREADS = (BM / TM) * (BN / TN);
    constexpr int PAD = 4;  // keeps rows 16-byte aligned and spreads the k-contiguous stores over banks
    static_assert(TM % 4 == 0 && TN % 4 == 0, "threads own groups of 4 rows and columns");
    __shared__ __align__(16) float a_tile[2][BK][BM + PAD];
    __shared__ __align__(16) float b_tile[2][BK][BN + PAD];

    const int m0 = blockIdx.x * BM;
    const int n0 = blockIdx.y * BN;
    const int tx = threadIdx.x % (BN / TN);
    const int ty = threadIdx.x / (BN / TN);
    out += (long long)blockIdx.z * M * N;

    TileLoader<AOperand, BM, BK, THREADS> a_loader(a, m0);
    TileLoader<BOperand, BN, BK, THREADS> b_loader(b, n0);
    float acc[TM][TN];
    #pragma unroll
    for (int i = 0; i < TM; ++i)
        #pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    double_buffered_k_loop<KeepFloat, BK>(a_loader, b_loader, a_tile, b_tile, K, k_tiles_per_split, [&](int current) {
        #pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float a_frag[TM], b_frag[TN];
            #pragma unroll
            for (int g = 0; g < TM / 4; ++g) {
                const float4 v = *reinterpret_cast<const float4*>(&a_tile[current][kk][owned_index<BM, TM>(ty, 4 * g)]);
                a_frag[4 * g] = v.x; a_frag[4 * g + 1] = v.y; a_frag[4 * g + 2] = v.z; a_frag[4 * g + 3] = v.w;
            }
            #pragma unroll
            for (int g = 0; g < TN / 4; ++g) {
                const float4 v = *reinterpret_cast<const float4*>(&b_tile[current][kk][owned_index<BN, TN>(tx, 4 * g)]);
                b_frag[4 * g] = v.x; b_frag[4 * g + 1] = v.y; b_frag[4 * g + 2] = v.z; b_frag[4 * g + 3] = v.w;
            }
            #pragma unroll
            for (int i = 0; i < TM; ++i)
                #pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a_frag[i], b_frag[j], acc[i][j]);
        }
    });

    // float4 stores need 16-byte aligned addresses (a GPU faults with "misaligned address" otherwise):
    // with N % 4 == 0 every group of 4 columns is, provided `out` itself is (a view of an array may not be).
    const bool vector_store = N % 4 == 0 && reinterpret_cast<unsigned long long>(out) % 16 == 0;
    #pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int m = m0 + owned_index<BM, TM>(ty, i);
        if (m >= M) continue;
        #pragma unroll
        for (int g = 0; g < TN / 4; ++g) {
            const int n = n0 + owned_index<BN, TN>(tx, 4 * g);
            float v[4];
            #pragma unroll
            for (int q = 0; q < 4; ++q)
                v[q] = apply_activation(acc[i][4 * g + q] + (n + q < N ? bias[n + q] : 0.0f), activation, alpha);
            float* dst = out + (long long)m * N + n;
            if (vector_store && n + 3 < N) {
                *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
            } else {
                #pragma unroll
                for (int q = 0; q < 4; ++q)
                    if (n + q < N) dst[q] = v[q];
            }
        }
    }
}

// One launch's epilogue and split-K bound to a tile body: the callable gemm(a, b, M, N, K) that the problem
// builders (dense_gemm here, the conv passes in conv_operands.cuh) hand their operands to.  Tile::run is
// gemm_tile (CudaCoreTile) or gemm_tile_tc (TensorCoreTile in tensor_core.cuh).
template <class Tile>
struct GemmLaunch {
    const float* bias;
    float* out;
    int activation;
    float alpha;
    int k_tiles_per_split;

    template <class AOperand, class BOperand>
    __device__ void operator()(const AOperand& a, const BOperand& b, int M, int N, int K) const {
        Tile::run(a, b, M, N, K, k_tiles_per_split, bias, out, activation, alpha);
    }
};

template <int BM, int BN, int BK, int TM, int TN>
struct CudaCoreTile {
    template <class... Args>
    __device__ static void run(const Args&... args) { gemm_tile<BM, BN, BK, TM, TN>(args...); }
};

template <int BM, int BN, int BK, int TM, int TN>
using CudaCoreGemm = GemmLaunch<CudaCoreTile<BM, BN, BK, TM, TN>>;

// Dense GEMMs out (M×N) = op(A)·op(B): a is stored M×K (K×M when A_TRANSPOSED), b K×N (N×K when
// B_TRANSPOSED).  A transpose only changes which index of the stored matrix is contiguous.
template <bool A_TRANSPOSED, bool B_TRANSPOSED, class Gemm>
__device__ void dense_gemm(const float* a, const float* b, int M, int N, int K, const Gemm& gemm) {
    const MatrixOperand<!A_TRANSPOSED> a_op{a, M, K, A_TRANSPOSED ? 1 : K, A_TRANSPOSED ? M : 1};
    const MatrixOperand<B_TRANSPOSED> b_op{b, N, K, B_TRANSPOSED ? K : 1, B_TRANSPOSED ? 1 : N};
    gemm(a_op, b_op, M, N, K);
}

// The parameters of every Dense GEMM entry point (gemm.cu, gemm_tc.cu).
#define GEMM_PARAMS                                                                                     \
    const float *a, const float *b, const float *bias, float *out, int M, int N, int K, int activation, \
        float alpha, int k_tiles_per_split
#define GEMM_EPILOGUE bias, out, activation, alpha, k_tiles_per_split

// Sums the split-K slices of `partial` (splits × count) in a fixed order, then applies the epilogue:
// deterministic, unlike float atomics whose order changes from run to run.
__device__ __forceinline__ void split_k_reduce_body(const float* __restrict__ partial, int splits, long long count,
                                                    int N, const float* __restrict__ bias, float* __restrict__ out,
                                                    int activation, float alpha) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < count; e += stride) {
        float sum = 0.0f;
        for (int z = 0; z < splits; ++z) sum += partial[z * count + e];
        out[e] = apply_activation(sum + bias[e % N], activation, alpha);
    }
}
