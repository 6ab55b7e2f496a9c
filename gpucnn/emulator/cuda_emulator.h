// CUDA C on the CPU: the built-ins that gpucnn's kernels use, so that the same .cu text that NVRTC compiles
// for a GPU is compiled here by g++ (-include cuda_emulator.h) and run through gpucnn.emulator.loader.
//
// Execution model. The threads of a block run as fibers (ucontext) on one OS thread, so __syncthreads and the
// warp collectives (__shfl_*_sync, __ballot_sync, __syncwarp) are real rendezvous points: a fiber that reaches
// one switches back to the block's scheduler, which resumes the waiting threads once the whole group has
// arrived.  Blocks run in parallel, one per worker OS thread.  __shared__ variables are `static thread_local`:
// one copy per worker, i.e. per running block.
//
// With -DGPUCNN_EMU_THREADS=1 (the loader's sanitize='thread' mode) every CUDA thread is its own OS thread and
// the blocks run one after another, so ThreadSanitizer sees the accesses of different CUDA threads as
// concurrent: a missing __syncthreads becomes a reported data race.
//
// The emulator deliberately does not define __CUDA_ARCH__ (nor __CUDACC__): code that only a GPU can run
// (inline PTX, mma.sync, cooperative groups) belongs behind #ifdef __CUDA_ARCH__.  nvcuda::wmma and
// __nv_bfloat16 are emulated by include/mma.h and include/cuda_bf16.h (on the loader's include path) as warp
// collectives of the kind defined below (WarpCollective).
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

#ifndef GPUCNN_EMU_THREADS
#define GPUCNN_EMU_THREADS 0
#endif

#define GPUCNN_EMULATOR 1

// ---------------------------------------------------------------------------------------------------------
// Qualifiers
// ---------------------------------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#if GPUCNN_EMU_THREADS
// Blocks run one at a time and their threads are OS threads that must all see the same array.
#define __shared__ static
#else
// A block's fibers share their worker's OS thread; concurrently running blocks have different workers.
#define __shared__ static thread_local
#endif
// g++ knows __restrict__ natively; `#pragma unroll` is ignored (the loader passes -Wno-unknown-pragmas).

// ---------------------------------------------------------------------------------------------------------
// Vector types, with CUDA's sizes and alignments
// ---------------------------------------------------------------------------------------------------------
#define GPUCNN_EMU_VEC2(T, N, A)                                                                        \
    struct __attribute__((aligned(A))) N { T x, y; };                                                  \
    inline constexpr N make_##N(T x, T y) { return N{x, y}; }
#define GPUCNN_EMU_VEC3(T, N)                                                                           \
    struct N { T x, y, z; };                                                                           \
    inline constexpr N make_##N(T x, T y, T z) { return N{x, y, z}; }
#define GPUCNN_EMU_VEC4(T, N, A)                                                                        \
    struct __attribute__((aligned(A))) N { T x, y, z, w; };                                            \
    inline constexpr N make_##N(T x, T y, T z, T w) { return N{x, y, z, w}; }

GPUCNN_EMU_VEC2(signed char, char2, 2)
GPUCNN_EMU_VEC4(signed char, char4, 4)
GPUCNN_EMU_VEC2(unsigned char, uchar2, 2)
GPUCNN_EMU_VEC4(unsigned char, uchar4, 4)
GPUCNN_EMU_VEC2(short, short2, 4)
GPUCNN_EMU_VEC4(short, short4, 8)
GPUCNN_EMU_VEC2(unsigned short, ushort2, 4)
GPUCNN_EMU_VEC4(unsigned short, ushort4, 8)
GPUCNN_EMU_VEC2(int, int2, 8)
GPUCNN_EMU_VEC3(int, int3)
GPUCNN_EMU_VEC4(int, int4, 16)
GPUCNN_EMU_VEC2(unsigned int, uint2, 8)
GPUCNN_EMU_VEC3(unsigned int, uint3)
GPUCNN_EMU_VEC4(unsigned int, uint4, 16)
GPUCNN_EMU_VEC2(float, float2, 8)
GPUCNN_EMU_VEC3(float, float3)
GPUCNN_EMU_VEC4(float, float4, 16)
GPUCNN_EMU_VEC2(double, double2, 16)
GPUCNN_EMU_VEC2(long long, longlong2, 16)
GPUCNN_EMU_VEC2(unsigned long long, ulonglong2, 16)

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------------------------------
// Math and bit intrinsics (the single-precision functions expf, logf, ... come from <cmath>)
// ---------------------------------------------------------------------------------------------------------
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __log2f(float x) { return std::log2(x); }
inline float __log10f(float x) { return std::log10(x); }
inline float __sinf(float x) { return std::sin(x); }
inline float __cosf(float x) { return std::cos(x); }
inline float __tanf(float x) { return std::tan(x); }
inline float __powf(float x, float y) { return std::pow(x, y); }
inline float __fdividef(float x, float y) { return x / y; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __fadd_rn(float x, float y) { return x + y; }
inline float __fmul_rn(float x, float y) { return x * y; }
inline float __fmaf_rn(float x, float y, float z) { return std::fma(x, y, z); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(std::floor(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(std::ceil(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline unsigned int __float_as_uint(float x) { return std::bit_cast<unsigned int>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline float __uint_as_float(unsigned int x) { return std::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline int __popc(unsigned int x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned int>(x)); }
inline int __clzll(long long x) { return std::countl_zero(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned int __umulhi(unsigned int x, unsigned int y) {
    return static_cast<unsigned int>((static_cast<unsigned long long>(x) * y) >> 32);
}
inline unsigned int __brev(unsigned int x) {
    unsigned int r = 0;
    for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}

// CUDA overloads min/max for every arithmetic pair, with the usual arithmetic conversions.
template <class A, class B>
    requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
inline constexpr std::common_type_t<A, B> min(A a, B b) {
    using C = std::common_type_t<A, B>;
    return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <class A, class B>
    requires std::is_arithmetic_v<A> && std::is_arithmetic_v<B>
inline constexpr std::common_type_t<A, B> max(A a, B b) {
    using C = std::common_type_t<A, B>;
    return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}
inline unsigned int umin(unsigned int a, unsigned int b) { return a < b ? a : b; }
inline unsigned int umax(unsigned int a, unsigned int b) { return a < b ? b : a; }

template <class T>
inline T __ldg(const T* p) { return *p; }

// ---------------------------------------------------------------------------------------------------------
// Atomics: std::atomic_ref, because blocks run concurrently on several OS threads
// ---------------------------------------------------------------------------------------------------------
template <class T>
inline T atomicAdd(T* p, std::type_identity_t<T> v) { return std::atomic_ref<T>(*p).fetch_add(v); }
template <class T>
inline T atomicSub(T* p, std::type_identity_t<T> v) { return std::atomic_ref<T>(*p).fetch_sub(v); }
template <class T>
inline T atomicExch(T* p, std::type_identity_t<T> v) { return std::atomic_ref<T>(*p).exchange(v); }
template <class T>
inline T atomicAnd(T* p, std::type_identity_t<T> v) { return std::atomic_ref<T>(*p).fetch_and(v); }
template <class T>
inline T atomicOr(T* p, std::type_identity_t<T> v) { return std::atomic_ref<T>(*p).fetch_or(v); }
template <class T>
inline T atomicXor(T* p, std::type_identity_t<T> v) { return std::atomic_ref<T>(*p).fetch_xor(v); }
template <class T>
inline T atomicCAS(T* p, std::type_identity_t<T> compare, std::type_identity_t<T> v) {
    std::atomic_ref<T>(*p).compare_exchange_strong(compare, v);
    return compare;  // holds the old value whether or not the exchange happened
}
namespace gpucnn_emu {
// Replaces *p by update(old) atomically; returns old.
template <class T, class F>
inline T atomic_update(T* p, F update) {
    std::atomic_ref<T> ref(*p);
    T old = ref.load();
    while (!ref.compare_exchange_weak(old, update(old))) {
    }
    return old;
}
}  // namespace gpucnn_emu
template <class T>
inline T atomicMax(T* p, std::type_identity_t<T> v) {
    return gpucnn_emu::atomic_update(p, [v](T old) { return old < v ? v : old; });
}
template <class T>
inline T atomicMin(T* p, std::type_identity_t<T> v) {
    return gpucnn_emu::atomic_update(p, [v](T old) { return v < old ? v : old; });
}
inline unsigned int atomicInc(unsigned int* p, unsigned int limit) {
    return gpucnn_emu::atomic_update(p, [limit](unsigned int old) { return old >= limit ? 0u : old + 1; });
}
inline unsigned int atomicDec(unsigned int* p, unsigned int limit) {
    return gpucnn_emu::atomic_update(
        p, [limit](unsigned int old) { return (old == 0 || old > limit) ? limit : old - 1; });
}
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }
inline void __threadfence_block() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// ---------------------------------------------------------------------------------------------------------
// The runtime: blocks, rendezvous, launches
// ---------------------------------------------------------------------------------------------------------
namespace gpucnn_emu {

enum class State : unsigned char { ready, barrier, warp, exited };
enum class Op : unsigned char {
    bar_sync, bar_count, bar_and, bar_or,                                  // block-wide
    warp_sync, shfl_idx, shfl_up, shfl_down, shfl_xor, ballot, any, all,   // warp-wide
    active_mask,                                                           // one thread, once its warp settled
    collective,                                                            // a WarpCollective (wmma)
};

inline const char* op_name(Op op) {
    static const char* const names[] = {"__syncthreads", "__syncthreads_count", "__syncthreads_and",
                                        "__syncthreads_or", "__syncwarp", "__shfl_sync", "__shfl_up_sync",
                                        "__shfl_down_sync", "__shfl_xor_sync", "__ballot_sync",
                                        "__any_sync", "__all_sync", "__activemask", "a warp collective"};
    return names[static_cast<int>(op)];
}

struct Slot;

// A whole-warp operation such as wmma::mma_sync: every one of the 32 lanes must arrive at the same one.
// `run` gets the lanes' slots in lane order (each `args` points to that lane's arguments, on its stack,
// alive while it waits) and does the work of the whole warp; it returns an error message, or "" on success.
struct WarpCollective {
    const char* name;
    std::string (*run)(Slot* const* lanes);
};

// What one CUDA thread is doing at a rendezvous.
struct Slot {
    State state = State::ready;
    Op op = Op::bar_sync;
    unsigned int mask = 0;  // warp ops: the lanes that take part
    int arg = 0;            // shuffles: source lane, delta or lane mask
    int width = 32;
    unsigned long long value = 0;   // this thread's contribution (raw bits)
    unsigned long long result = 0;  // what the rendezvous hands back to it
    const WarpCollective* collective = nullptr;  // Op::collective: which one
    void* args = nullptr;                        // Op::collective: this lane's arguments
};

inline const char* slot_op_name(const Slot& s) { return s.op == Op::collective ? s.collective->name : op_name(s.op); }

// Thrown (thread mode) or never returned from (fiber mode) when a launch has failed, to end a CUDA thread.
struct Abort {};

class Block;

// Per OS thread: the identity of the CUDA thread that currently runs on it.
struct Context {
    uint3 thread_idx{0, 0, 0};
    uint3 block_idx{0, 0, 0};
    dim3 block_dim;
    dim3 grid_dim;
    int linear = 0;
    Block* block = nullptr;
    unsigned char* dynamic_shared = nullptr;
};
inline thread_local Context tls;

inline uint3 unflatten(unsigned long long i, dim3 d) {
    return uint3{static_cast<unsigned int>(i % d.x), static_cast<unsigned int>((i / d.x) % d.y),
                 static_cast<unsigned int>(i / (static_cast<unsigned long long>(d.x) * d.y))};
}

inline std::string format_index(uint3 i) {
    return "(" + std::to_string(i.x) + "," + std::to_string(i.y) + "," + std::to_string(i.z) + ")";
}

// The scheduling logic common to both modes: which rendezvous complete, and a diagnosis when none can.
class Block {
public:
    dim3 dim;
    int nthreads = 0;
    int ready = 0;  // threads neither waiting nor exited
    std::vector<Slot> slots;
    std::string error;  // non-empty once the block has failed

    void reset(dim3 block_dim) {
        dim = block_dim;
        nthreads = static_cast<int>(block_dim.x * block_dim.y * block_dim.z);
        ready = nthreads;
        slots.assign(nthreads, Slot{});
        error.clear();
    }

    enum class Progress { released, finished, stuck };

    // Called when no thread is ready. Releases every group whose rendezvous is complete; otherwise reports
    // whether all threads have finished or the block is deadlocked (then `error` says why).
    Progress resolve() {
        bool released = false;
        for (int base = 0; base < nthreads; base += 32) released |= resolve_warp(base);
        if (!error.empty()) return Progress::stuck;  // a warp collective failed
        if (released) return Progress::released;
        int at_barrier = 0, exited = 0;
        for (const Slot& s : slots) {
            at_barrier += s.state == State::barrier;
            exited += s.state == State::exited;
        }
        if (exited == nthreads) return Progress::finished;
        if (at_barrier == nthreads) {
            release_barrier();
            return Progress::released;
        }
        error = diagnose(at_barrier, exited);
        return Progress::stuck;
    }

private:
    std::string thread_name(int i) const { return "thread " + format_index(unflatten(i, dim)); }

    unsigned int existing_lanes(int base) const {
        int n = std::min(32, nthreads - base);
        return n == 32 ? 0xffffffffu : ((1u << n) - 1);
    }

    bool resolve_warp(int base) {
        const unsigned int existing = existing_lanes(base);
        bool released = false;
        for (int lane = 0; lane < 32 && base + lane < nthreads; ++lane) {
            if (slots[base + lane].state != State::warp) continue;
            const unsigned int group = (slots[base + lane].mask & existing) | (1u << lane);
            bool complete = true, collective = false;
            for (int l = 0; l < 32; ++l) {
                if (!(group >> l & 1u)) continue;
                complete &= slots[base + l].state == State::warp;
                collective |= slots[base + l].op == Op::collective;
            }
            if (!complete) continue;
            if (collective) {
                // One collective call of the warp, if every lane is at it; a mismatch fails the launch.
                if (!run_collective(base, group)) return false;
                released = true;
                continue;
            }
            release_warp_group(base, group);
            released = true;
        }
        return released;
    }

    static int shuffle_source(Op op, int lane, int arg, int width) {
        const int start = lane & ~(width - 1);
        switch (op) {
            case Op::shfl_idx: return start + (arg & (width - 1));
            case Op::shfl_up: return (lane - start) < arg ? lane : lane - arg;
            case Op::shfl_down: return (lane - start) + arg >= width ? lane : lane + arg;
            case Op::shfl_xor: return (lane ^ arg) >= start + width ? lane : (lane ^ arg);
            default: return lane;
        }
    }

    void release_warp_group(int base, unsigned int group) {
        unsigned int votes = 0, alive = 0;
        for (int l = 0; l < 32 && base + l < nthreads; ++l) {
            if ((group >> l & 1u) && slots[base + l].value != 0) votes |= 1u << l;
            if (slots[base + l].state != State::exited) alive |= 1u << l;
        }
        // All results are computed before any thread runs again, so no thread can overwrite a value that
        // another one still has to read.
        for (int l = 0; l < 32; ++l) {
            if (!(group >> l & 1u)) continue;
            Slot& s = slots[base + l];
            switch (s.op) {
                case Op::ballot: s.result = votes; break;
                case Op::any: s.result = votes != 0; break;
                case Op::all: s.result = votes == group; break;
                case Op::warp_sync: s.result = 0; break;
                case Op::active_mask: s.result = alive; break;
                default: {
                    // Reading a lane outside the group is undefined on a GPU; the emulator returns the
                    // caller's own value.
                    int src = shuffle_source(s.op, l, s.arg, s.width);
                    s.result = (src >= 0 && src < 32 && (group >> src & 1u)) ? slots[base + src].value : s.value;
                }
            }
        }
        for (int l = 0; l < 32; ++l)
            if (group >> l & 1u) slots[base + l].state = State::ready;
        ready += std::popcount(group);
    }

    // The warp at `base` waits at warp operations, at least one of them a WarpCollective: run it if every
    // lane of a full warp is at the same one; else set `error`.
    bool run_collective(int base, unsigned int group) {
        int first_collective = base;
        while (!(group >> (first_collective - base) & 1u) || slots[first_collective].op != Op::collective)
            ++first_collective;
        const Slot& head = slots[first_collective];
        const std::string where = std::string(head.collective->name) + " in warp " + std::to_string(base / 32) +
                                  " (" + thread_name(base) + ")";
        if (existing_lanes(base) != 0xffffffffu) {
            error = where + ": the block has only " + std::to_string(nthreads - base) +
                    " threads in this warp; a warp collective needs all 32 lanes";
            return false;
        }
        for (int l = 0; l < 32; ++l) {
            const Slot& s = slots[base + l];
            if (s.state != State::warp || s.op != Op::collective || s.collective != head.collective) {
                const std::string other = s.state == State::exited ? std::string("has exited")
                                          : s.state == State::ready ? std::string("is running")
                                                                    : std::string("is at ") + slot_op_name(s);
                error = where + ": lane " + std::to_string(l) + " " + other +
                        " instead; every lane of the warp must call it together (divergent call)";
                return false;
            }
        }
        Slot* lanes[32];
        for (int l = 0; l < 32; ++l) lanes[l] = &slots[base + l];
        const std::string failure = head.collective->run(lanes);
        if (!failure.empty()) {
            error = where + ": " + failure;
            return false;
        }
        for (int l = 0; l < 32; ++l) slots[base + l].state = State::ready;
        ready += 32;
        return true;
    }

    void release_barrier() {
        unsigned long long count = 0;
        for (const Slot& s : slots) count += s.value != 0;
        for (Slot& s : slots) {
            switch (s.op) {
                case Op::bar_count: s.result = count; break;
                case Op::bar_and: s.result = count == static_cast<unsigned long long>(nthreads); break;
                case Op::bar_or: s.result = count != 0; break;
                default: s.result = 0;
            }
            s.state = State::ready;
        }
        ready = nthreads;
    }

    int first(State state) const {
        for (int i = 0; i < nthreads; ++i)
            if (slots[i].state == state) return i;
        return -1;
    }

    std::string diagnose(int at_barrier, int exited) const {
        const int waiting_warp = first(State::warp);
        if (waiting_warp < 0) {
            const int bar = first(State::barrier);
            return std::string(slot_op_name(slots[bar])) + " reached by " + std::to_string(at_barrier) + " of " +
                   std::to_string(nthreads) + " threads; " + std::to_string(exited) +
                   " exited without reaching it (first: " + thread_name(first(State::exited)) + ")";
        }
        const Slot& w = slots[waiting_warp];
        const int base = waiting_warp / 32 * 32;
        const unsigned int group = (w.mask & existing_lanes(base)) | (1u << (waiting_warp - base));
        std::string missing;
        for (int l = 0; l < 32; ++l) {
            if (!(group >> l & 1u) || slots[base + l].state == State::warp) continue;
            const Slot& m = slots[base + l];
            if (!missing.empty()) missing += ", ";
            missing += "lane " + std::to_string(l) +
                       (m.state == State::exited ? " exited" : std::string(" waits at ") + slot_op_name(m));
        }
        char mask[16];
        std::snprintf(mask, sizeof mask, "0x%08x", w.mask);
        return std::string(slot_op_name(w)) + "(mask=" + mask + ") in warp " + std::to_string(base / 32) + " (" +
               thread_name(waiting_warp) + ") never completes: " + missing;
    }
};

// One kernel invocation with its arguments bound, callable once per CUDA thread.
struct KernelCall {
    void (*fn)(void*);
    void* ctx;
};

#if GPUCNN_EMU_THREADS
// ----- Thread mode: one OS thread per CUDA thread, synchronised with a mutex the sanitizer understands.
struct BlockSync {
    std::mutex mutex;
    std::condition_variable cv;
};
inline BlockSync* block_sync = nullptr;  // blocks run one at a time

// Under the mutex, after this thread stopped being ready.
inline void settle(Block& b) {
    if (b.ready == 0 && b.error.empty()) {
        b.resolve();
        block_sync->cv.notify_all();
    }
}

inline unsigned long long wait_at(Slot update) {
    Block& b = *tls.block;
    Slot& s = b.slots[tls.linear];
    std::unique_lock<std::mutex> lock(block_sync->mutex);
    if (!b.error.empty()) throw Abort{};
    s = update;
    --b.ready;
    settle(b);
    block_sync->cv.wait(lock, [&] { return s.state == State::ready || !b.error.empty(); });
    if (s.state != State::ready) throw Abort{};
    return s.result;
}

[[noreturn]] inline void fail_thread(const std::string& message) {
    {
        std::lock_guard<std::mutex> lock(block_sync->mutex);
        if (tls.block->error.empty()) tls.block->error = message;
        block_sync->cv.notify_all();
    }
    throw Abort{};
}

inline std::string run_block(Block& b, KernelCall call, unsigned long long block_index, const dim3& grid,
                             const dim3& block_dim, unsigned char* dynamic_shared) {
    b.reset(block_dim);
    BlockSync sync;
    block_sync = &sync;
    std::vector<std::thread> threads;
    threads.reserve(b.nthreads);
    for (int i = 0; i < b.nthreads; ++i) {
        threads.emplace_back([&, i] {
            tls = Context{unflatten(i, block_dim), unflatten(block_index, grid), block_dim, grid, i, &b,
                          dynamic_shared};
            try {
                call.fn(call.ctx);
            } catch (const Abort&) {
            }
            std::lock_guard<std::mutex> lock(sync.mutex);
            b.slots[i].state = State::exited;
            --b.ready;
            settle(b);
        });
    }
    for (std::thread& t : threads) t.join();
    block_sync = nullptr;
    return b.error;
}

struct Worker {
    Block block;
    std::string run(KernelCall call, unsigned long long block_index, const dim3& grid, const dim3& block_dim,
                    unsigned char* dynamic_shared) {
        return run_block(block, call, block_index, grid, block_dim, dynamic_shared);
    }
};

#else
// ----- Fiber mode: a block's CUDA threads are fibers on one OS thread.

#if defined(__SANITIZE_ADDRESS__)
inline void asan_start_switch(void** fake_stack, const void* bottom, size_t size) {
    __sanitizer_start_switch_fiber(fake_stack, bottom, size);
}
inline void asan_finish_switch(void* fake_stack, const void** bottom, size_t* size) {
    __sanitizer_finish_switch_fiber(fake_stack, bottom, size);
}
constexpr size_t stack_bytes = 1 << 20;  // instrumented frames are much larger
#else
inline void asan_start_switch(void**, const void*, size_t) {}
inline void asan_finish_switch(void*, const void**, size_t*) {}
constexpr size_t stack_bytes = 256 << 10;
#endif

class Worker {
public:
    Block block;

    Worker() { getcontext(&template_context_); }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;
    ~Worker() {
        if (stacks_) munmap(stacks_, capacity_ * slot_bytes());
    }

    std::string run(KernelCall call, unsigned long long block_index, const dim3& grid, const dim3& block_dim,
                    unsigned char* dynamic_shared) {
        block.reset(block_dim);
        reserve(block.nthreads);
        call_ = call;
        fibers_.resize(block.nthreads);
        for (int i = 0; i < block.nthreads; ++i) {
            fibers_[i] = template_context_;
            fibers_[i].uc_stack.ss_sp = stack(i);
            fibers_[i].uc_stack.ss_size = stack_bytes;
            fibers_[i].uc_link = nullptr;
            makecontext(&fibers_[i], &Worker::fiber_main, 0);
        }
        tls.block_idx = unflatten(block_index, grid);
        tls.block_dim = block_dim;
        tls.grid_dim = grid;
        tls.block = &block;
        tls.dynamic_shared = dynamic_shared;
        current_worker = this;
        for (;;) {
            for (int i = 0; i < block.nthreads && block.error.empty(); ++i) {
                if (block.slots[i].state != State::ready) continue;
                tls.thread_idx = unflatten(i, block_dim);
                tls.linear = i;
                void* fake_stack = nullptr;
                asan_start_switch(&fake_stack, stack(i), stack_bytes);
                swapcontext(&scheduler_, &fibers_[i]);
                asan_finish_switch(fake_stack, nullptr, nullptr);
            }
            if (!block.error.empty()) return block.error;
            if (block.resolve() != Block::Progress::released) return block.error;
        }
    }

    // Called on a fiber: park it at a rendezvous until the scheduler resumes it.
    unsigned long long wait_at(Slot update) {
        Slot& s = block.slots[tls.linear];
        s = update;
        --block.ready;
        void* fake_stack = nullptr;
        asan_start_switch(&fake_stack, scheduler_stack_bottom_, scheduler_stack_size_);
        swapcontext(&fibers_[tls.linear], &scheduler_);
        asan_finish_switch(fake_stack, &scheduler_stack_bottom_, &scheduler_stack_size_);
        return s.result;
    }

    // Called on a fiber: it will never run again.
    [[noreturn]] void exit_fiber(const std::string& error) {
        if (!error.empty() && block.error.empty()) block.error = error;
        block.slots[tls.linear].state = State::exited;
        --block.ready;
        asan_start_switch(nullptr, scheduler_stack_bottom_, scheduler_stack_size_);
        setcontext(&scheduler_);
        std::abort();  // unreachable: setcontext does not return
    }

    static inline thread_local Worker* current_worker = nullptr;

private:
    static size_t slot_bytes() { return stack_bytes + page_size(); }
    static size_t page_size() { return static_cast<size_t>(sysconf(_SC_PAGESIZE)); }
    void* stack(int i) const { return stacks_ + i * slot_bytes() + page_size(); }

    // One lazily committed mapping holds every fiber's stack, each above a guard page, so that an overflow
    // is a segmentation fault rather than silent corruption of the neighbouring stack.
    void reserve(int n) {
        if (n <= capacity_) return;
        if (stacks_) munmap(stacks_, capacity_ * slot_bytes());
        void* memory = mmap(nullptr, n * slot_bytes(), PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (memory == MAP_FAILED) {
            std::perror("gpucnn emulator: mmap of fiber stacks");
            std::abort();
        }
        stacks_ = static_cast<char*>(memory);
        capacity_ = n;
        for (int i = 0; i < n; ++i) mprotect(stacks_ + i * slot_bytes(), page_size(), PROT_NONE);
    }

    static void fiber_main() {
        Worker& w = *current_worker;
        asan_finish_switch(nullptr, &w.scheduler_stack_bottom_, &w.scheduler_stack_size_);
        w.call_.fn(w.call_.ctx);
        w.exit_fiber("");
    }

    ucontext_t template_context_{};
    ucontext_t scheduler_{};
    std::vector<ucontext_t> fibers_;
    char* stacks_ = nullptr;
    int capacity_ = 0;
    KernelCall call_{};
    const void* scheduler_stack_bottom_ = nullptr;
    size_t scheduler_stack_size_ = 0;
};

inline unsigned long long wait_at(Slot update) { return Worker::current_worker->wait_at(update); }

[[noreturn]] inline void fail_thread(const std::string& message) { Worker::current_worker->exit_fiber(message); }
#endif

inline unsigned long long wait_at(State state, Op op, unsigned long long value, unsigned int mask, int arg,
                                  int width) {
    return wait_at(Slot{state, op, mask, arg, width, value, 0});
}

// Parks the calling lane at `collective` with its `args` until all 32 lanes of its warp are there and the
// collective has run (or the launch has failed).
inline void warp_collective(const WarpCollective& collective, void* args) {
    Slot s{State::warp, Op::collective, 0xffffffffu, 0, 32, 0, 0};
    s.collective = &collective;
    s.args = args;
    wait_at(s);
}

inline unsigned char* dynamic_shared() { return tls.dynamic_shared; }

// Runs every block of a launch on up to `workers` OS threads (0: one per hardware thread).  Returns 0, or 1
// with a message in `err` naming the first failing block.
inline int run_launch(const char* name, dim3 grid, dim3 block_dim, unsigned long long shared_bytes, int workers,
                      KernelCall call, char* err, unsigned long errlen) {
    const unsigned long long nblocks = static_cast<unsigned long long>(grid.x) * grid.y * grid.z;
    if (GPUCNN_EMU_THREADS) workers = 1;
    if (workers <= 0) workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    workers = static_cast<int>(std::min<unsigned long long>(workers, nblocks));
    std::atomic<unsigned long long> next{0};
    std::atomic<bool> failed{false};
    std::mutex error_mutex;
    std::string error;
    auto work = [&] {
        Worker worker;
        // Dynamic shared memory starts as all-ones bytes (NaN floats, -1 integers) so that reading it before
        // writing shows up in results rather than passing by luck with zeros.
        std::vector<unsigned char> shared_buffer(shared_bytes + 64);
        unsigned char* shared = shared_buffer.data() + (64 - reinterpret_cast<uintptr_t>(shared_buffer.data()) % 64);
        for (unsigned long long b; !failed && (b = next++) < nblocks;) {
            std::memset(shared, 0xff, shared_bytes);
            std::string e = worker.run(call, b, grid, block_dim, shared);
            if (!e.empty()) {
                std::lock_guard<std::mutex> lock(error_mutex);
                if (error.empty())
                    error = std::string("kernel ") + name + " block " + format_index(unflatten(b, grid)) + ": " + e;
                failed = true;
            }
        }
    };
    if (workers == 1) {
        work();
    } else {
        std::vector<std::thread> threads;
        for (int i = 0; i < workers; ++i) threads.emplace_back(work);
        for (std::thread& t : threads) t.join();
    }
    if (error.empty()) return 0;
    std::snprintf(err, errlen, "%s", error.c_str());
    return 1;
}

template <class... Ts, size_t... I>
inline void call_kernel(void (*kernel)(Ts...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cvref_t<Ts>*>(args[I])...);
}

// The body of each generated `extern "C"` launch trampoline.
template <class... Ts>
inline int launch(const char* name, void (*kernel)(Ts...), const unsigned int* grid, const unsigned int* block,
                  unsigned long long shared_bytes, int workers, void** args, char* err, unsigned long errlen) {
    struct Bound {
        void (*kernel)(Ts...);
        void** args;
    } bound{kernel, args};
    KernelCall call{[](void* p) {
                        auto* b = static_cast<Bound*>(p);
                        call_kernel(b->kernel, b->args, std::index_sequence_for<Ts...>{});
                    },
                    &bound};
    return run_launch(name, dim3(grid[0], grid[1], grid[2]), dim3(block[0], block[1], block[2]), shared_bytes,
                      workers, call, err, errlen);
}

// Parameter descriptions for the loader's argument checks: "ptr|val const|mut kind size align" per
// parameter, separated by ';', with kind f (floating), i (signed), u (unsigned), b (bool), v (void),
// o (other: struct or vector type).
template <class T>
constexpr char kind_of() {
    if constexpr (std::is_void_v<T>) return 'v';
    else if constexpr (std::is_same_v<T, bool>) return 'b';
    else if constexpr (std::is_floating_point_v<T>) return 'f';
    else if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) return 'i';
    else if constexpr (std::is_integral_v<T>) return 'u';
    else return 'o';
}

template <class T>
inline std::string describe_parameter() {
    if constexpr (std::is_pointer_v<T>) {
        using P = std::remove_pointer_t<T>;
        using U = std::remove_cv_t<P>;
        constexpr size_t size = std::is_void_v<U> ? 0 : sizeof(std::conditional_t<std::is_void_v<U>, char, U>);
        constexpr size_t align = std::is_void_v<U> ? 1 : alignof(std::conditional_t<std::is_void_v<U>, char, U>);
        return std::string("ptr ") + (std::is_const_v<P> ? "const " : "mut ") + kind_of<U>() + " " +
               std::to_string(size) + " " + std::to_string(align);
    } else {
        return std::string("val mut ") + kind_of<T>() + " " + std::to_string(sizeof(T)) + " " +
               std::to_string(alignof(T));
    }
}

template <class... Ts>
inline const char* describe(void (*)(Ts...)) {
    static const std::string text = [] {
        std::string s;
        ((s += describe_parameter<std::remove_cv_t<Ts>>() + ";"), ...);
        return s;
    }();
    return text.c_str();
}

}  // namespace gpucnn_emu

// ---------------------------------------------------------------------------------------------------------
// CUDA built-in variables and synchronisation
// ---------------------------------------------------------------------------------------------------------
#define threadIdx (::gpucnn_emu::tls.thread_idx)
#define blockIdx (::gpucnn_emu::tls.block_idx)
#define blockDim (::gpucnn_emu::tls.block_dim)
#define gridDim (::gpucnn_emu::tls.grid_dim)

namespace gpucnn_emu {
inline int block_op(Op op, int predicate) {
    return static_cast<int>(wait_at(State::barrier, op, predicate != 0, 0, 0, 32));
}
template <class T>
inline T warp_shuffle(Op op, unsigned int mask, T var, int arg, int width) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp shuffles move at most 8 bytes");
    unsigned long long bits = 0;
    std::memcpy(&bits, &var, sizeof(T));
    bits = wait_at(State::warp, op, bits, mask, arg, width);
    std::memcpy(&var, &bits, sizeof(T));
    return var;
}
inline unsigned int warp_vote(Op op, unsigned int mask, int predicate) {
    return static_cast<unsigned int>(wait_at(State::warp, op, predicate != 0, mask, 0, 32));
}
}  // namespace gpucnn_emu

inline void __syncthreads() { gpucnn_emu::block_op(gpucnn_emu::Op::bar_sync, 0); }
inline int __syncthreads_count(int p) { return gpucnn_emu::block_op(gpucnn_emu::Op::bar_count, p); }
inline int __syncthreads_and(int p) { return gpucnn_emu::block_op(gpucnn_emu::Op::bar_and, p); }
inline int __syncthreads_or(int p) { return gpucnn_emu::block_op(gpucnn_emu::Op::bar_or, p); }
inline void __syncwarp(unsigned int mask = 0xffffffffu) {
    gpucnn_emu::warp_vote(gpucnn_emu::Op::warp_sync, mask, 0);
}
template <class T>
inline T __shfl_sync(unsigned int mask, T var, int src_lane, int width = warpSize) {
    return gpucnn_emu::warp_shuffle(gpucnn_emu::Op::shfl_idx, mask, var, src_lane, width);
}
template <class T>
inline T __shfl_up_sync(unsigned int mask, T var, unsigned int delta, int width = warpSize) {
    return gpucnn_emu::warp_shuffle(gpucnn_emu::Op::shfl_up, mask, var, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_down_sync(unsigned int mask, T var, unsigned int delta, int width = warpSize) {
    return gpucnn_emu::warp_shuffle(gpucnn_emu::Op::shfl_down, mask, var, static_cast<int>(delta), width);
}
template <class T>
inline T __shfl_xor_sync(unsigned int mask, T var, int lane_mask, int width = warpSize) {
    return gpucnn_emu::warp_shuffle(gpucnn_emu::Op::shfl_xor, mask, var, lane_mask, width);
}
inline unsigned int __ballot_sync(unsigned int mask, int p) { return gpucnn_emu::warp_vote(gpucnn_emu::Op::ballot, mask, p); }
inline int __any_sync(unsigned int mask, int p) { return gpucnn_emu::warp_vote(gpucnn_emu::Op::any, mask, p); }
inline int __all_sync(unsigned int mask, int p) { return gpucnn_emu::warp_vote(gpucnn_emu::Op::all, mask, p); }
// Lanes of the caller's warp that have not exited.  Answered once every other thread has run as far as it
// can, so lanes that exit early (as converged lanes would on a GPU) are no longer counted.
inline unsigned int __activemask() { return gpucnn_emu::warp_vote(gpucnn_emu::Op::active_mask, 0, 0); }
[[noreturn]] inline void __trap() {
    gpucnn_emu::fail_thread("__trap() called by thread " + gpucnn_emu::format_index(threadIdx));
}
