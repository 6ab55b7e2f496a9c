// nvcuda::wmma for the gpucnn emulator (found before the CUDA toolkit's mma.h on the loader's include path).
//
// load_matrix_sync, store_matrix_sync and mma_sync are warp collectives (gpucnn_emu::WarpCollective): all 32
// lanes of the warp must call the same one, with the same pointer, leading dimension and layout, or the
// launch fails with a message naming the lane; the warp's work is done once everyone has arrived.  They
// check what CUDA requires of their arguments: a 256-bit (32-byte) aligned pointer and a leading dimension
// that is a multiple of 16 bytes.  Which element of the matrix a lane's fragment.x[i] holds is unspecified in
// CUDA; here element i of lane l is entry (i·32 + l) of the tile in row-major order, so code may apply
// element-wise operations to x[] (as CUDA allows) but cannot rely on a layout without being wrong somewhere.
//
// Shapes: precision::tf32 m16n16k8 and __nv_bfloat16 m16n16k16, float accumulators.  mma_sync multiplies
// exactly and adds in double, rounding each result once to float (the GPU accumulates in FP32).  A tf32
// operand must hold TF32 values (low 13 mantissa bits zero, as wmma::__float_to_tf32 leaves them): the GPU
// ignores those bits, so any other value is a kernel bug that the emulator reports.
#pragma once

#include <cuda_bf16.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <type_traits>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
namespace precision {
struct tf32 {};
}  // namespace precision

// cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa bits (the result is a float whose
// low 13 bits are zero).  Inf and NaN pass through.
inline float __float_to_tf32(float in) {
    std::uint32_t bits = std::bit_cast<std::uint32_t>(in);
    if ((bits & 0x7f800000u) != 0x7f800000u) bits = (bits + 0x1000u) & 0xffffe000u;
    return std::bit_cast<float>(bits);
}

namespace detail {
template <class T> struct storage { using type = T; };
template <> struct storage<precision::tf32> { using type = float; };

template <class Use, int M, int N, int K, class T>
constexpr bool supported() {
    if constexpr (std::is_same_v<Use, accumulator>) return std::is_same_v<T, float> && M == 16 && N == 16 && (K == 8 || K == 16);
    else if constexpr (std::is_same_v<T, precision::tf32>) return M == 16 && N == 16 && K == 8;
    else if constexpr (std::is_same_v<T, __nv_bfloat16>) return M == 16 && N == 16 && K == 16;
    else return false;
}
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
    static_assert(detail::supported<Use, M, N, K, T>(),
                  "the gpucnn emulator has wmma shapes precision::tf32 m16n16k8, __nv_bfloat16 m16n16k16 and "
                  "their float accumulators only");
    static_assert(std::is_same_v<Use, accumulator> == std::is_void_v<Layout>,
                  "matrix_a / matrix_b fragments need a layout (row_major or col_major), accumulators none");

public:
    using element_type = typename detail::storage<T>::type;
    using storage_element_type = element_type;
    static constexpr int rows = std::is_same_v<Use, matrix_b> ? K : M;
    static constexpr int cols = std::is_same_v<Use, matrix_a> ? K : N;
    static constexpr int num_elements = rows * cols / 32;
    element_type x[num_elements];
};

namespace detail {
// Entry (row, col) of the tile that element i of `lane` holds.
template <class F> inline int row_of(int i, int lane) { return (i * 32 + lane) / F::cols; }
template <class F> inline int col_of(int i, int lane) { return (i * 32 + lane) % F::cols; }

inline std::string hex(const void* p) {
    char text[32];
    std::snprintf(text, sizeof text, "%p", p);
    return text;
}

template <class F, class Memory>
struct MemoryArgs {
    F* fragment;
    Memory* pointer;
    unsigned ldm;
    bool row_major;
};

// What load_matrix_sync / store_matrix_sync require of their arguments, and that every lane passed the same.
template <class F, class Memory>
std::string check_memory_args(gpucnn_emu::Slot* const* lanes) {
    const auto& a = *static_cast<MemoryArgs<F, Memory>*>(lanes[0]->args);
    for (int l = 1; l < 32; ++l) {
        const auto& b = *static_cast<MemoryArgs<F, Memory>*>(lanes[l]->args);
        if (b.pointer != a.pointer || b.ldm != a.ldm || b.row_major != a.row_major)
            return "lane " + std::to_string(l) + " passed (pointer " + hex(b.pointer) + ", ldm " +
                   std::to_string(b.ldm) + ", " + (b.row_major ? "row" : "col") + "-major) but lane 0 (pointer " +
                   hex(a.pointer) + ", ldm " + std::to_string(a.ldm) + ", " + (a.row_major ? "row" : "col") +
                   "-major); every lane must pass the same arguments";
    }
    if (reinterpret_cast<std::uintptr_t>(a.pointer) % 32)
        return "pointer " + hex(a.pointer) + " is misaligned: wmma needs a 256-bit (32-byte) aligned address";
    if (a.ldm * sizeof(Memory) % 16)
        return "ldm " + std::to_string(a.ldm) + " is not a multiple of 16 bytes (" + std::to_string(16 / sizeof(Memory)) +
               " elements of " + std::to_string(sizeof(Memory)) + " bytes)";
    return "";
}

template <class F, class Memory>
inline long long offset(const MemoryArgs<F, Memory>& a, int i, int lane) {
    const int r = row_of<F>(i, lane), c = col_of<F>(i, lane);
    return a.row_major ? static_cast<long long>(r) * a.ldm + c : static_cast<long long>(c) * a.ldm + r;
}

template <class F, class Memory>
std::string load_all(gpucnn_emu::Slot* const* lanes) {
    if (std::string e = check_memory_args<F, Memory>(lanes); !e.empty()) return e;
    for (int l = 0; l < 32; ++l) {
        auto& a = *static_cast<MemoryArgs<F, Memory>*>(lanes[l]->args);
        for (int i = 0; i < F::num_elements; ++i) a.fragment->x[i] = a.pointer[offset(a, i, l)];
    }
    return "";
}

template <class F, class Memory>
std::string store_all(gpucnn_emu::Slot* const* lanes) {
    if (std::string e = check_memory_args<F, Memory>(lanes); !e.empty()) return e;
    for (int l = 0; l < 32; ++l) {
        auto& a = *static_cast<MemoryArgs<F, Memory>*>(lanes[l]->args);
        for (int i = 0; i < F::num_elements; ++i) a.pointer[offset(a, i, l)] = a.fragment->x[i];
    }
    return "";
}

template <class F, class Memory>
inline void memory_collective(const char* name, std::string (*run)(gpucnn_emu::Slot* const*), F& f, Memory* p,
                              unsigned ldm, bool row_major) {
    static const gpucnn_emu::WarpCollective collective{name, run};
    MemoryArgs<F, Memory> args{&f, p, ldm, row_major};
    gpucnn_emu::warp_collective(collective, &args);
}

template <class D, class A, class B, class C>
struct MmaArgs {
    D* d;
    const A* a;
    const B* b;
    const C* c;
};

template <class T>
inline bool is_tf32_value(T v) {
    if constexpr (std::is_same_v<T, float>) return (std::bit_cast<std::uint32_t>(v) & 0x1fffu) == 0;
    else return true;
}

// The whole warp's D = A·B + C: gathers the tiles from the 32 lanes' fragments, computes, scatters D (which
// may be C itself: every result is computed before any is written).
template <bool TF32, class D, class A, class B, class C>
std::string mma_all(gpucnn_emu::Slot* const* lanes) {
    constexpr int M = A::rows, K = A::cols, N = B::cols;
    float a[M][K], b[K][N], c[M][N], d[M][N];
    for (int l = 0; l < 32; ++l) {
        const auto& args = *static_cast<MmaArgs<D, A, B, C>*>(lanes[l]->args);
        for (int i = 0; i < A::num_elements; ++i) {
            if (TF32 && !is_tf32_value(args.a->x[i]))
                return "matrix_a element " + std::to_string(i) + " of lane " + std::to_string(l) +
                       " is not a TF32 value (convert precision::tf32 operands with wmma::__float_to_tf32)";
            a[row_of<A>(i, l)][col_of<A>(i, l)] = static_cast<float>(args.a->x[i]);
        }
        for (int i = 0; i < B::num_elements; ++i) {
            if (TF32 && !is_tf32_value(args.b->x[i]))
                return "matrix_b element " + std::to_string(i) + " of lane " + std::to_string(l) +
                       " is not a TF32 value (convert precision::tf32 operands with wmma::__float_to_tf32)";
            b[row_of<B>(i, l)][col_of<B>(i, l)] = static_cast<float>(args.b->x[i]);
        }
        for (int i = 0; i < C::num_elements; ++i) c[row_of<C>(i, l)][col_of<C>(i, l)] = args.c->x[i];
    }
    for (int m = 0; m < M; ++m)
        for (int n = 0; n < N; ++n) {
            double sum = c[m][n];
            for (int k = 0; k < K; ++k) sum += static_cast<double>(a[m][k]) * b[k][n];
            d[m][n] = static_cast<float>(sum);
        }
    for (int l = 0; l < 32; ++l) {
        const auto& args = *static_cast<MmaArgs<D, A, B, C>*>(lanes[l]->args);
        for (int i = 0; i < D::num_elements; ++i) args.d->x[i] = d[row_of<D>(i, l)][col_of<D>(i, l)];
    }
    return "";
}

template <class L> constexpr bool is_row_major() {
    static_assert(std::is_same_v<L, row_major> || std::is_same_v<L, col_major>, "layout is row_major or col_major");
    return std::is_same_v<L, row_major>;
}
}  // namespace detail

// Not a collective on a GPU either: each lane sets its own elements.
template <class Use, int M, int N, int K, class T, class L>
inline void fill_fragment(fragment<Use, M, N, K, T, L>& f, typename fragment<Use, M, N, K, T, L>::element_type v) {
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = v;
}

template <class Use, int M, int N, int K, class T, class L>
inline void load_matrix_sync(fragment<Use, M, N, K, T, L>& f,
                             const typename fragment<Use, M, N, K, T, L>::element_type* p, unsigned ldm) {
    using F = fragment<Use, M, N, K, T, L>;
    using Memory = const typename F::element_type;
    detail::memory_collective<F, Memory>("wmma::load_matrix_sync", &detail::load_all<F, Memory>, f, p, ldm,
                                         detail::is_row_major<L>());
}

template <int M, int N, int K>
inline void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm,
                             layout_t layout) {
    using F = fragment<accumulator, M, N, K, float>;
    detail::memory_collective<F, const float>("wmma::load_matrix_sync", &detail::load_all<F, const float>, f, p,
                                              ldm, layout == mem_row_major);
}

template <int M, int N, int K>
inline void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm,
                              layout_t layout) {
    using F = const fragment<accumulator, M, N, K, float>;
    detail::memory_collective<F, float>("wmma::store_matrix_sync", &detail::store_all<F, float>, f, p, ldm,
                                        layout == mem_row_major);
}

template <int M, int N, int K, class T, class LA, class LB>
inline void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
                     const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
    using D = fragment<accumulator, M, N, K, float>;
    using A = fragment<matrix_a, M, N, K, T, LA>;
    using B = fragment<matrix_b, M, N, K, T, LB>;
    static const gpucnn_emu::WarpCollective collective{
        "wmma::mma_sync", &detail::mma_all<std::is_same_v<T, precision::tf32>, D, A, B, D>};
    detail::MmaArgs<D, A, B, D> args{&d, &a, &b, &c};
    gpucnn_emu::warp_collective(collective, &args);
}

}  // namespace wmma
}  // namespace nvcuda
