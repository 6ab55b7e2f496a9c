"""Operand rounding of the tensor-core precisions, emulated in NumPy (see gpucnn.config).

The kernels round each GEMM operand once, when they stage it in shared memory, then multiply exactly and
accumulate in float32.  Rounding the operand arrays here and running the exact float32 op is the same
computation up to the order of the float32 sums: TF32 and BF16 products are exact in float32.
"""
import numpy as np

TF32_DROPPED_BITS = 13  # float32 keeps 23 mantissa bits, TF32 10
BF16_DROPPED_BITS = 16  # bfloat16 keeps 7


def round_to_tf32(x):
    """float32 ``x`` rounded to TF32 as ``cvt.rna.tf32.f32`` (``wmma::__float_to_tf32``) does: to nearest,
    ties away from zero; the low 13 mantissa bits become zero.  Inf and NaN pass through."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    # Adding half an ulp to the magnitude bits and truncating rounds ties away from zero (the sign bit is
    # apart).  A carry into the exponent is the correct rounding up to the next binade, or to Inf.
    rounded = (bits + np.uint32(1 << (TF32_DROPPED_BITS - 1))) & np.uint32(0xFFFFFFFF << TF32_DROPPED_BITS & 0xFFFFFFFF)
    finite = (bits & np.uint32(0x7F800000)) != np.uint32(0x7F800000)
    return np.where(finite, rounded, bits).view(np.float32)


def round_to_bf16(x):
    """float32 ``x`` rounded to bfloat16 (kept as float32) as ``__float2bfloat16`` does: to nearest, ties
    to even.  Inf and NaN pass through."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    lsb = (bits >> np.uint32(BF16_DROPPED_BITS)) & np.uint32(1)
    rounded = (bits + np.uint32(0x7FFF) + lsb) & np.uint32(0xFFFF0000)
    finite = (bits & np.uint32(0x7F800000)) != np.uint32(0x7F800000)
    return np.where(finite, rounded, bits).view(np.float32)


_ROUNDING = {"high": round_to_tf32, "medium": round_to_bf16}


def round_operands(precision, *operands):
    """The GEMM operands as the kernels of ``precision`` (checked by the op's contract) see them: unchanged
    for None and 'highest' (the reference's default is exact FP32, whatever gpucnn.config says)."""
    rounding = _ROUNDING.get(precision)
    return operands if rounding is None else tuple(rounding(a) for a in operands)
