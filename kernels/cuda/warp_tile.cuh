// Warp-level matrix tiles for the attention kernels: a warp multiplies operands that sit in
// shared memory into f32 accumulators laid out as the m16n8 tiles of mma.sync.
//
// Accumulator layout (PTX ISA, mma.m16n8k16, f32 C/D): lane = 4·g + t holds
//   c[0], c[1] at (row g,     columns 2t, 2t + 1)
//   c[2], c[3] at (row g + 8, columns 2t, 2t + 1).
// Operands are SmemMatrix views: element (r, c) at base[r·row_stride + c·col_stride], so a
// transposed operand is the same memory with the strides swapped and no kernel needs its own
// fragment code. For bf16/f16 a step is one tensor-core mma.sync.m16n8k16 (f32 accumulate); for
// f32 the same step is 16 FMAs per accumulator element on the CUDA cores, exact fp32 (no tf32),
// which makes the f32 instantiation of every attention kernel a check of the tiling itself.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace deepnet::cuda {

struct AccTile {
  float c[4];
};

// Row and column of accumulator element i (0..3) of this lane within its 16×8 tile.
__device__ __forceinline__ int AccRow(int i) {
  return static_cast<int>(threadIdx.x % 32) / 4 + (i >= 2 ? 8 : 0);
}
__device__ __forceinline__ int AccCol(int i) {
  return 2 * (static_cast<int>(threadIdx.x) % 4) + (i & 1);
}

template <typename T>
struct SmemMatrix {
  const T* base;
  int row_stride;
  int col_stride;
  __device__ __forceinline__ T at(int r, int c) const {
    return base[r * row_stride + c * col_stride];
  }
};

template <typename T>
__device__ __forceinline__ SmemMatrix<T> RowMajor(const T* base, int stride) {
  return {base, stride, 1};
}
// The transpose of a row-major matrix: element (r, c) is base[c·stride + r].
template <typename T>
__device__ __forceinline__ SmemMatrix<T> Transposed(const T* base, int stride) {
  return {base, 1, stride};
}

__device__ __forceinline__ uint16_t Bits(bf16 x) { return __bfloat16_as_ushort(x); }
__device__ __forceinline__ uint16_t Bits(f16 x) { return __half_as_ushort(x); }

// Two 16-bit elements in one register, `low` in the low half (the operand order of mma.sync).
template <typename T>
__device__ __forceinline__ uint32_t Pack(T low, T high) {
  return static_cast<uint32_t>(Bits(low)) | (static_cast<uint32_t>(Bits(high)) << 16);
}

// A-operand (16×16) and B-operand (16×8) fragments. 16-bit types hold the mma.sync registers;
// f32 holds the view and origin and reads shared memory inside Mma.
template <typename T>
struct FragA {
  uint32_t r[4];
};
template <typename T>
struct FragB {
  uint32_t r[2];
};
template <>
struct FragA<float> {
  SmemMatrix<float> m;
  int row0, col0;
};
template <>
struct FragB<float> {
  SmemMatrix<float> m;
  int row0, col0;
};

// A rows [m0, m0 + 16), columns [k0, k0 + 16).
template <typename T>
__device__ __forceinline__ void LoadFragA(FragA<T>& frag, const SmemMatrix<T>& a, int m0, int k0) {
  if constexpr (std::is_same_v<T, float>) {
    frag = {a, m0, k0};
  } else {
    const int g = static_cast<int>(threadIdx.x % 32) / 4, t = static_cast<int>(threadIdx.x % 4);
    const int r = m0 + g, c = k0 + 2 * t;
    frag.r[0] = Pack(a.at(r, c), a.at(r, c + 1));
    frag.r[1] = Pack(a.at(r + 8, c), a.at(r + 8, c + 1));
    frag.r[2] = Pack(a.at(r, c + 8), a.at(r, c + 9));
    frag.r[3] = Pack(a.at(r + 8, c + 8), a.at(r + 8, c + 9));
  }
}

// B rows [k0, k0 + 16), columns [n0, n0 + 8).
template <typename T>
__device__ __forceinline__ void LoadFragB(FragB<T>& frag, const SmemMatrix<T>& b, int k0, int n0) {
  if constexpr (std::is_same_v<T, float>) {
    frag = {b, k0, n0};
  } else {
    const int g = static_cast<int>(threadIdx.x % 32) / 4, t = static_cast<int>(threadIdx.x % 4);
    const int r = k0 + 2 * t, c = n0 + g;
    frag.r[0] = Pack(b.at(r, c), b.at(r + 1, c));
    frag.r[1] = Pack(b.at(r + 8, c), b.at(r + 9, c));
  }
}

// acc += A·B for one 16×8×16 step.
__device__ __forceinline__ void Mma(AccTile& acc, const FragA<bf16>& a, const FragB<bf16>& b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(acc.c[0]), "+f"(acc.c[1]), "+f"(acc.c[2]), "+f"(acc.c[3])
      : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[0]), "r"(b.r[1]));
}

__device__ __forceinline__ void Mma(AccTile& acc, const FragA<f16>& a, const FragB<f16>& b) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
      "{%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(acc.c[0]), "+f"(acc.c[1]), "+f"(acc.c[2]), "+f"(acc.c[3])
      : "r"(a.r[0]), "r"(a.r[1]), "r"(a.r[2]), "r"(a.r[3]), "r"(b.r[0]), "r"(b.r[1]));
}

__device__ __forceinline__ void Mma(AccTile& acc, const FragA<float>& a, const FragB<float>& b) {
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int r = a.row0 + AccRow(i), c = b.col0 + AccCol(i);
    float sum = acc.c[i];
#pragma unroll 4
    for (int k = 0; k < 16; ++k) sum += a.m.at(r, a.col0 + k) * b.m.at(b.row0 + k, c);
    acc.c[i] = sum;
  }
}

// acc[n] += A[m0 : m0+16, 0 : 16·kSteps] · B[0 : 16·kSteps, 8n : 8n+8] for n < kNTiles.
template <typename T, int kNTiles, int kSteps>
__device__ __forceinline__ void WarpGemm(AccTile (&acc)[kNTiles], const SmemMatrix<T>& a, int m0,
                                         const SmemMatrix<T>& b) {
  // The f32 steps stay a loop: their FMAs are plenty of code already, and nothing in a step
  // depends on its index being a compile-time constant.
  constexpr int kUnrolledSteps = std::is_same_v<T, float> ? 1 : kSteps;
#pragma unroll(kUnrolledSteps)
  for (int step = 0; step < kSteps; ++step) {
    FragA<T> fa;
    LoadFragA(fa, a, m0, 16 * step);
#pragma unroll
    for (int n = 0; n < kNTiles; ++n) {
      FragB<T> fb;
      LoadFragB(fb, b, 16 * step, 8 * n);
      Mma(acc[n], fa, fb);
    }
  }
}

template <int kNTiles>
__device__ __forceinline__ void Clear(AccTile (&acc)[kNTiles]) {
#pragma unroll
  for (int n = 0; n < kNTiles; ++n) acc[n] = AccTile{{0.0f, 0.0f, 0.0f, 0.0f}};
}

}  // namespace deepnet::cuda
