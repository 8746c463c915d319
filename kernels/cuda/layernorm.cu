// LayerNorm and DeepNorm (LN(α·x + g)) forward and backward. Letters: N rows, C channels.
//
// Layout: a row is handled by a group of `tpr` threads (threads per row, a power of two ≥ 32);
// a block holds max(1, 128 / tpr) row groups. Thread t of a group owns kChunks chunks of kVec
// consecutive columns, chunk k starting at column (k·tpr + t)·kVec, so each chunk is one
// coalesced 16-byte access across the group (kVec = 16 / sizeof(T)), or one element per access
// when the row is not 16-byte aligned (kVec = 1, more chunks). The row stays in registers.
#include <algorithm>
#include <initializer_list>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/pointwise.h"
#include "kernels/cuda/workspace.h"

namespace deepnet::cuda {
namespace {

constexpr int kMinBlockThreads = 128;
// 16-byte chunks per thread: forward 4 (32 bf16 or 16 f32 values in registers); backward 2, as it
// also holds dy and the dgamma/dbeta partials of its columns.
constexpr int kForwardVectorChunks = 4;
constexpr int kBackwardVectorChunks = 2;
constexpr int kScalarChunks = 16;  // single-element chunks per thread
// Threads per row at most: 128 registers per thread hold a row chunk, its gradient and partials.
constexpr int kMaxRowThreads = 512;
// Backward partial-sum slots (row groups that each own a strided set of rows): enough to fill the
// GPU, few enough that the second pass over (slots, C) floats stays small next to the rows.
constexpr int kMaxBackwardSlots = 1024;

// Sum over the `tpr` threads of a row group. tpr is uniform across the block, so every thread
// reaches the same barriers. `scratch` holds one float per warp.
__device__ __forceinline__ float RowSum(float v, int tpr, float* scratch) {
  v = WarpSum(v);
  if (tpr <= 32) return v;
  const int warp = threadIdx.x / 32, warps_per_row = tpr / 32;
  const int first_warp = warp / warps_per_row * warps_per_row;
  __syncthreads();  // the previous reduction has read scratch
  if (threadIdx.x % 32 == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < warps_per_row; ++w) total += scratch[first_warp + w];
  return total;
}

// This thread's place in the launch.
struct RowPosition {
  int row;  // may be ≥ N: such threads compute on zeros and store nothing
  int t;    // thread within the row group
};

__device__ __forceinline__ RowPosition PositionOf(int tpr, int first_row_of_block) {
  return {first_row_of_block + static_cast<int>(threadIdx.x) / tpr,
          static_cast<int>(threadIdx.x) % tpr};
}

// Loads chunk `k` of z = α·x + g (or x) into z[]; false (and zeros) when the chunk is outside the
// row or the row outside the tensor.
template <typename T, int kVec>
__device__ __forceinline__ bool LoadZ(float (&z)[kVec], const T* x_row, const T* g_row, int c,
                                      int C, float alpha, bool valid_row) {
  if (!valid_row || c >= C) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) z[i] = 0.0f;
    return false;
  }
  const Vec<T, kVec> xv = *reinterpret_cast<const Vec<T, kVec>*>(x_row + c);
  if (g_row == nullptr) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) z[i] = ToFloat(xv.v[i]);
  } else {
    const Vec<T, kVec> gv = *reinterpret_cast<const Vec<T, kVec>*>(g_row + c);
#pragma unroll
    for (int i = 0; i < kVec; ++i) z[i] = alpha * ToFloat(xv.v[i]) + ToFloat(gv.v[i]);
  }
  return true;
}

template <typename T, int kVec, int kChunks>
__global__ void __launch_bounds__(kMaxRowThreads) NormForwardKernel(NormForwardArgs a, int tpr) {
  __shared__ float scratch[32];
  const int rows_per_block = blockDim.x / tpr;
  const RowPosition pos = PositionOf(tpr, blockIdx.x * rows_per_block);
  const bool valid_row = pos.row < a.N;
  const int64_t offset = int64_t{valid_row ? pos.row : 0} * a.C;
  const T* x_row = static_cast<const T*>(a.x) + offset;
  const T* g_row = a.g == nullptr ? nullptr : static_cast<const T*>(a.g) + offset;

  float z[kChunks][kVec];
  bool present[kChunks];
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int c = (k * tpr + pos.t) * kVec;
    present[k] = LoadZ<T, kVec>(z[k], x_row, g_row, c, a.C, a.alpha, valid_row);
#pragma unroll
    for (int i = 0; i < kVec; ++i) sum += z[k][i];
  }
  const float mean = RowSum(sum, tpr, scratch) / a.C;
  // Two passes over the registers (mean, then squared deviations): no cancellation.
  float squares = 0.0f;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    if (!present[k]) continue;
#pragma unroll
    for (int i = 0; i < kVec; ++i) squares += (z[k][i] - mean) * (z[k][i] - mean);
  }
  const float variance = RowSum(squares, tpr, scratch) / a.C;
  const float rstd = 1.0f / sqrtf(variance + a.eps);
  if (!valid_row) return;  // no barrier follows

  T* y_row = static_cast<T*>(a.y) + offset;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    if (!present[k]) continue;
    const int c = (k * tpr + pos.t) * kVec;
    Vec<T, kVec> out;
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const float normed = (z[k][i] - mean) * rstd;
      out.v[i] = FromFloat<T>(normed * LoadFlex(a.gamma, c + i) + LoadFlex(a.beta, c + i));
    }
    *reinterpret_cast<Vec<T, kVec>*>(y_row + c) = out;
  }
  if (pos.t == 0) {
    StoreFlex(a.mean, pos.row, mean);
    StoreFlex(a.rstd, pos.row, rstd);
  }
}

// Backward over rows slot, slot + slots, ... (slot = this row group). With ẑ = (z − mean)·rstd
// and dn = dy·gamma: dz = (dn − mean_c(dn) − ẑ·mean_c(dn·ẑ))·rstd; the group's column sums of
// dy·ẑ and dy go to partial_dgamma / partial_dbeta (slots, C).
template <typename T, int kVec, int kChunks>
__global__ void __launch_bounds__(kMaxRowThreads)
    NormBackwardKernel(NormBackwardArgs a, int tpr, float* partial_dgamma, float* partial_dbeta) {
  __shared__ float scratch[32];
  const int rows_per_block = blockDim.x / tpr;
  const int slots = gridDim.x * rows_per_block;
  float dgamma[kChunks][kVec] = {}, dbeta[kChunks][kVec] = {};

  // The loop condition depends only on the block, so all its threads meet the same barriers.
  for (int first = blockIdx.x * rows_per_block; first < a.N; first += slots) {
    const RowPosition pos = PositionOf(tpr, first);
    const bool valid_row = pos.row < a.N;
    const int64_t offset = int64_t{valid_row ? pos.row : 0} * a.C;
    const T* x_row = static_cast<const T*>(a.x) + offset;
    const T* g_row = a.g == nullptr ? nullptr : static_cast<const T*>(a.g) + offset;
    const T* dy_row = static_cast<const T*>(a.dy) + offset;
    const float mean = valid_row ? LoadFlex(a.mean, pos.row) : 0.0f;
    const float rstd = valid_row ? LoadFlex(a.rstd, pos.row) : 0.0f;

    float zhat[kChunks][kVec], dy[kChunks][kVec];
    bool present[kChunks];
    float dn_sum = 0.0f, dn_zhat_sum = 0.0f;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const int c = (k * tpr + pos.t) * kVec;
      present[k] = LoadZ<T, kVec>(zhat[k], x_row, g_row, c, a.C, a.alpha, valid_row);
      if (present[k]) {
        const Vec<T, kVec> dyv = *reinterpret_cast<const Vec<T, kVec>*>(dy_row + c);
#pragma unroll
        for (int i = 0; i < kVec; ++i) dy[k][i] = ToFloat(dyv.v[i]);
      }
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        if (!present[k]) dy[k][i] = 0.0f;
        zhat[k][i] = present[k] ? (zhat[k][i] - mean) * rstd : 0.0f;
        const float dn = present[k] ? dy[k][i] * LoadFlex(a.gamma, c + i) : 0.0f;
        dn_sum += dn;
        dn_zhat_sum += dn * zhat[k][i];
      }
    }
    const float dn_mean = RowSum(dn_sum, tpr, scratch) / a.C;
    const float dn_zhat_mean = RowSum(dn_zhat_sum, tpr, scratch) / a.C;

#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      if (!present[k]) continue;
      const int c = (k * tpr + pos.t) * kVec;
      Vec<T, kVec> dx_out, dg_out;
#pragma unroll
      for (int i = 0; i < kVec; ++i) {
        dgamma[k][i] += dy[k][i] * zhat[k][i];
        dbeta[k][i] += dy[k][i];
        const float dn = dy[k][i] * LoadFlex(a.gamma, c + i);
        const float dz = (dn - dn_mean - zhat[k][i] * dn_zhat_mean) * rstd;
        dx_out.v[i] = FromFloat<T>(a.alpha * dz);
        dg_out.v[i] = FromFloat<T>(dz);
      }
      if (a.dx != nullptr)
        *reinterpret_cast<Vec<T, kVec>*>(static_cast<T*>(a.dx) + offset + c) = dx_out;
      if (a.dg != nullptr)
        *reinterpret_cast<Vec<T, kVec>*>(static_cast<T*>(a.dg) + offset + c) = dg_out;
    }
  }

  // Every slot writes its partial (zeros when it had no rows).
  const RowPosition pos = PositionOf(tpr, blockIdx.x * rows_per_block);
  const int64_t slot_offset = int64_t{pos.row} * a.C;  // row index here = slot index
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int c = (k * tpr + pos.t) * kVec;
    if (c >= a.C) continue;
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      partial_dgamma[slot_offset + c + i] = dgamma[k][i];
      partial_dbeta[slot_offset + c + i] = dbeta[k][i];
    }
  }
}

// How a row of C elements of T is spread over threads.
struct RowLayout {
  bool vectorized = false;
  int tpr = 32;
  int rows_per_block = 1;
  int threads() const { return tpr * rows_per_block; }
};

// Vectorized when the row is 16-byte aligned and fits kVec16<T>·vector_chunks elements per thread.
template <typename T>
RowLayout ChooseLayout(int C, bool aligned, int vector_chunks) {
  auto threads_for = [C](int elements_per_thread) {
    int tpr = 32;
    while (int64_t{tpr} * elements_per_thread < C) tpr *= 2;
    return tpr;
  };
  RowLayout layout;
  layout.vectorized =
      aligned && C % kVec16<T> == 0 && threads_for(kVec16<T> * vector_chunks) <= kMaxRowThreads;
  layout.tpr =
      layout.vectorized ? threads_for(kVec16<T> * vector_chunks) : threads_for(kScalarChunks);
  CHECK_LE(layout.tpr, kMaxRowThreads)
      << "LayerNorm over " << C << " channels exceeds the CUDA kernels' limit (" << kNormMaxChannels
      << ", or 16384 for aligned 16-bit rows)";
  layout.rows_per_block = std::max(1, kMinBlockThreads / layout.tpr);
  return layout;
}

bool AllAligned(std::initializer_list<const void*> pointers) {
  for (const void* p : pointers) {
    if (p != nullptr && !IsAlignedHost(p, 16)) return false;
  }
  return true;
}

int BackwardSlots(const RowLayout& layout, int N) {
  const int64_t blocks = std::min(CeilDiv(N, layout.rows_per_block),
                                  CeilDiv(kMaxBackwardSlots, layout.rows_per_block));
  return static_cast<int>(std::max<int64_t>(blocks, 1)) * layout.rows_per_block;
}

}  // namespace

void NormForward(const NormForwardArgs& args, cudaStream_t stream) {
  if (args.N == 0 || args.C == 0) return;
  DispatchFloat(args.dtype, "LayerNormForward", [&]<typename T>() {
    const RowLayout layout =
        ChooseLayout<T>(args.C, AllAligned({args.y, args.x, args.g}), kForwardVectorChunks);
    const unsigned blocks = static_cast<unsigned>(CeilDiv(args.N, layout.rows_per_block));
    if (layout.vectorized) {
      NormForwardKernel<T, kVec16<T>, kForwardVectorChunks>
          <<<blocks, layout.threads(), 0, stream>>>(args, layout.tpr);
    } else {
      NormForwardKernel<T, 1, kScalarChunks>
          <<<blocks, layout.threads(), 0, stream>>>(args, layout.tpr);
    }
    DEEPNET_CUDA_CHECK_LAUNCH();
  });
}

size_t NormBackwardScratchBytes(int N, int C, DType dtype) {
  size_t bytes = 0;
  DispatchFloat(dtype, "LayerNormBackward", [&]<typename T>() {
    // The most slots any layout of this C uses.
    const int slots = BackwardSlots(ChooseLayout<T>(C, false, kBackwardVectorChunks), N);
    const int vector_slots = BackwardSlots(ChooseLayout<T>(C, true, kBackwardVectorChunks), N);
    bytes = 2 * ScratchCarver::Round(size_t{sizeof(float)} * std::max(slots, vector_slots) * C);
  });
  return bytes;
}

void NormBackward(const NormBackwardArgs& args, void* scratch, cudaStream_t stream) {
  if (args.N == 0 || args.C == 0) return;
  DispatchFloat(args.dtype, "LayerNormBackward", [&]<typename T>() {
    const RowLayout layout = ChooseLayout<T>(
        args.C, AllAligned({args.dx, args.dg, args.dy, args.x, args.g}), kBackwardVectorChunks);
    const int slots = BackwardSlots(layout, args.N);
    ScratchCarver carve(scratch);
    float* partial_dgamma = carve.Take<float>(static_cast<size_t>(slots) * args.C);
    float* partial_dbeta = carve.Take<float>(static_cast<size_t>(slots) * args.C);
    const unsigned blocks = static_cast<unsigned>(slots / layout.rows_per_block);
    if (layout.vectorized) {
      NormBackwardKernel<T, kVec16<T>, kBackwardVectorChunks>
          <<<blocks, layout.threads(), 0, stream>>>(args, layout.tpr, partial_dgamma,
                                                    partial_dbeta);
    } else {
      NormBackwardKernel<T, 1, kScalarChunks><<<blocks, layout.threads(), 0, stream>>>(
          args, layout.tpr, partial_dgamma, partial_dbeta);
    }
    DEEPNET_CUDA_CHECK_LAUNCH();
    // slots ≤ kMaxBackwardSlots rows: a single pass, no scratch of its own.
    ColumnSum(args.dgamma, /*accumulate=*/true, partial_dgamma, DType::kF32, slots, args.C, nullptr,
              stream);
    ColumnSum(args.dbeta, /*accumulate=*/true, partial_dbeta, DType::kF32, slots, args.C, nullptr,
              stream);
  });
}

}  // namespace deepnet::cuda
