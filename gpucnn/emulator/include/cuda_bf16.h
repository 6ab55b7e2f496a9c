// __nv_bfloat16 for the gpucnn emulator (found before the CUDA toolkit's cuda_bf16.h on the loader's include
// path): storage as the 16 high bits of a float32, conversions as the GPU does them.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

struct __nv_bfloat16 {
    unsigned short __x;

    __nv_bfloat16() = default;
    __nv_bfloat16(float f);  // round to nearest even, as __float2bfloat16
    operator float() const { return std::bit_cast<float>(static_cast<std::uint32_t>(__x) << 16); }
};
static_assert(sizeof(__nv_bfloat16) == 2 && alignof(__nv_bfloat16) == 2, "CUDA's size and alignment");

inline __nv_bfloat16 __float2bfloat16_rn(float f) {
    const std::uint32_t bits = std::bit_cast<std::uint32_t>(f);
    __nv_bfloat16 h;
    if (std::isnan(f)) {
        h.__x = 0x7fff;  // cvt.rn.bf16.f32 gives the canonical NaN
    } else {
        h.__x = static_cast<unsigned short>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
    }
    return h;
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline __nv_bfloat16 __float2bfloat16_rz(float f) {
    __nv_bfloat16 h;
    h.__x = static_cast<unsigned short>(std::bit_cast<std::uint32_t>(f) >> 16);
    if (std::isnan(f)) h.__x = 0x7fff;
    return h;
}
inline float __bfloat162float(__nv_bfloat16 h) { return static_cast<float>(h); }
inline __nv_bfloat16::__nv_bfloat16(float f) : __x(__float2bfloat16_rn(f).__x) {}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short x) {
    __nv_bfloat16 h;
    h.__x = x;
    return h;
}
