// Pointwise kernels of the CUDA backend: activations, dropout, add/axpy/scale, conversion,
// embedding lookup and scatter, sinusoidal positions, column sums.
// Letters: n elements, N rows (tokens), C channels, V vocab, B batch, Tlen time.
#include <cub/device/device_radix_sort.cuh>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/pointwise.h"
#include "kernels/cuda/workspace.h"

namespace deepnet::cuda {
namespace {

constexpr int kThreads = 256;

// ---- element maps ----
// Each thread takes kVec consecutive elements per step: one 16-byte access when the pointers allow
// it (kVec = kVec16<T>), else kVec = 1. No __restrict__: outputs may alias inputs, and every
// element is read before it is written by the same thread.

template <typename T, int kVec, typename Op>
__global__ void Map1Kernel(T* y, const T* x, int64_t n, Op op) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  const int64_t groups = n / kVec;
  for (int64_t g = first; g < groups; g += stride) {
    const Vec<T, kVec> in = reinterpret_cast<const Vec<T, kVec>*>(x)[g];
    Vec<T, kVec> out;
#pragma unroll
    for (int k = 0; k < kVec; ++k) out.v[k] = FromFloat<T>(op(ToFloat(in.v[k])));
    reinterpret_cast<Vec<T, kVec>*>(y)[g] = out;
  }
  for (int64_t i = groups * kVec + first; i < n; i += stride)
    y[i] = FromFloat<T>(op(ToFloat(x[i])));
}

template <typename T, int kVec, typename Op>
__global__ void Map2Kernel(T* y, const T* a, const T* b, int64_t n, Op op) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t first = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  const int64_t groups = n / kVec;
  for (int64_t g = first; g < groups; g += stride) {
    const Vec<T, kVec> in_a = reinterpret_cast<const Vec<T, kVec>*>(a)[g];
    const Vec<T, kVec> in_b = reinterpret_cast<const Vec<T, kVec>*>(b)[g];
    Vec<T, kVec> out;
#pragma unroll
    for (int k = 0; k < kVec; ++k)
      out.v[k] = FromFloat<T>(op(ToFloat(in_a.v[k]), ToFloat(in_b.v[k])));
    reinterpret_cast<Vec<T, kVec>*>(y)[g] = out;
  }
  for (int64_t i = groups * kVec + first; i < n; i += stride) {
    y[i] = FromFloat<T>(op(ToFloat(a[i]), ToFloat(b[i])));
  }
}

template <typename T, typename Op>
void LaunchMap1(void* y, const void* x, int64_t n, Op op, cudaStream_t stream) {
  if (n == 0) return;
  T* out = static_cast<T*>(y);
  const T* in = static_cast<const T*>(x);
  if (IsAlignedHost(y, 16) && IsAlignedHost(x, 16)) {
    constexpr int kV = kVec16<T>;
    Map1Kernel<T, kV><<<GridFor(CeilDiv(n, kV), kThreads), kThreads, 0, stream>>>(out, in, n, op);
  } else {
    Map1Kernel<T, 1><<<GridFor(n, kThreads), kThreads, 0, stream>>>(out, in, n, op);
  }
  DEEPNET_CUDA_CHECK_LAUNCH();
}

template <typename T, typename Op>
void LaunchMap2(void* y, const void* a, const void* b, int64_t n, Op op, cudaStream_t stream) {
  if (n == 0) return;
  T* out = static_cast<T*>(y);
  const T* in_a = static_cast<const T*>(a);
  const T* in_b = static_cast<const T*>(b);
  if (IsAlignedHost(y, 16) && IsAlignedHost(a, 16) && IsAlignedHost(b, 16)) {
    constexpr int kV = kVec16<T>;
    Map2Kernel<T, kV>
        <<<GridFor(CeilDiv(n, kV), kThreads), kThreads, 0, stream>>>(out, in_a, in_b, n, op);
  } else {
    Map2Kernel<T, 1><<<GridFor(n, kThreads), kThreads, 0, stream>>>(out, in_a, in_b, n, op);
  }
  DEEPNET_CUDA_CHECK_LAUNCH();
}

// Φ(x) and φ(x) of the standard normal: GELU in its exact erf form
// (docs/design.md#model-conventions), as the CPU op.
__device__ __forceinline__ float NormalCdf(float x) {
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  return 0.5f * (1.0f + erff(x * kInvSqrt2));
}
__device__ __forceinline__ float NormalPdf(float x) {
  constexpr float kInvSqrt2Pi = 0.39894228040143268f;
  return kInvSqrt2Pi * expf(-0.5f * x * x);
}

struct ReluOp {
  __device__ float operator()(float x) const { return x > 0.0f ? x : 0.0f; }
};
struct ReluGradOp {
  __device__ float operator()(float dy, float x) const { return x > 0.0f ? dy : 0.0f; }
};
struct GeluOp {
  __device__ float operator()(float x) const { return x * NormalCdf(x); }
};
struct GeluGradOp {
  __device__ float operator()(float dy, float x) const {
    return dy * (NormalCdf(x) + x * NormalPdf(x));
  }
};
struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct AxpyOp {
  float alpha;
  __device__ float operator()(float y, float x) const { return y + alpha * x; }
};
struct ScaleOp {
  float alpha;
  __device__ float operator()(float x) const { return alpha * x; }
};

// ---- dropout ----

// One Philox call per aligned group of four elements, as cpu::dropout_forward.
template <typename T>
__global__ void DropoutKernel(T* y, const T* x, int64_t n, float p, float scale, RngStream rng) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; g < groups; g += stride) {
    const Philox4x32 bits = PhiloxBlock(rng, static_cast<uint32_t>(g));
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t i = 4 * g + j;
      if (i >= n) break;
      const bool keep = UniformFromBits(bits.v[j]) >= p;
      y[i] = FromFloat<T>(keep ? ToFloat(x[i]) * scale : 0.0f);
    }
  }
}

// ---- conversion ----

template <typename TOut, typename TIn>
__global__ void ConvertKernel(TOut* dst, const TIn* src, int64_t n) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride) {
    dst[i] = FromFloat<TOut>(ToFloat(src[i]));
  }
}

// ---- embedding ----

template <typename T, int kVec>
__global__ void EmbeddingForwardKernel(T* out, const int32_t* tokens, const T* table, int N, int V,
                                       int C, float scale) {
  const int groups_per_row = C / kVec;
  const int64_t total = int64_t{N} * groups_per_row;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t g = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; g < total; g += stride) {
    const int64_t n = g / groups_per_row;
    const int column_group = static_cast<int>(g % groups_per_row);
    const int32_t token = tokens[n];
    Vec<T, kVec> row;
    if (token >= 0 && token < V) {
      row = reinterpret_cast<const Vec<T, kVec>*>(table + int64_t{token} * C)[column_group];
    } else {
#pragma unroll
      for (int k = 0; k < kVec; ++k) row.v[k] = FromFloat<T>(0.0f);
    }
#pragma unroll
    for (int k = 0; k < kVec; ++k) row.v[k] = FromFloat<T>(ToFloat(row.v[k]) * scale);
    reinterpret_cast<Vec<T, kVec>*>(out + n * C)[column_group] = row;
  }
}

__global__ void IotaKernel(int32_t* values, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    values[i] = i;
  }
}

// One warp per position p of the sorted tokens; the warp at the first position of a run of equal
// tokens adds the run's dout rows (in the order of n: the sort is stable) and updates that one
// row of dtable. No two warps touch the same row, so no atomics are needed.
template <typename T>
__global__ void EmbeddingScatterKernel(FlexPtr dtable, const int32_t* sorted_tokens,
                                       const int32_t* sorted_rows, const T* dout, int N, int V,
                                       int C, float scale) {
  constexpr int kColumnsPerLane = 8;
  const int p = static_cast<int>((int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32);
  const int lane = threadIdx.x % 32;
  if (p >= N) return;
  const int32_t token = sorted_tokens[p];
  if (p > 0 && sorted_tokens[p - 1] == token) return;  // not the first of its run
  if (token < 0 || token >= V) return;
  int run_end = p + 1;
  while (run_end < N && sorted_tokens[run_end] == token) ++run_end;
  for (int c0 = 0; c0 < C; c0 += 32 * kColumnsPerLane) {
    float sum[kColumnsPerLane] = {};
    for (int q = p; q < run_end; ++q) {
      const T* row = dout + int64_t{sorted_rows[q]} * C;
#pragma unroll
      for (int k = 0; k < kColumnsPerLane; ++k) {
        const int c = c0 + k * 32 + lane;
        if (c < C) sum[k] += ToFloat(row[c]);
      }
    }
#pragma unroll
    for (int k = 0; k < kColumnsPerLane; ++k) {
      const int c = c0 + k * 32 + lane;
      if (c >= C) continue;
      const int64_t i = int64_t{token} * C + c;
      StoreFlex(dtable, i, LoadFlex(dtable, i) + scale * sum[k]);
    }
  }
}

// Bytes of each piece of the embedding scatter's scratch: sorted tokens, row indices (in and
// out of the sort) and CUB's temporary storage.
size_t SortTempBytes(int N) {
  size_t bytes = 0;
  DEEPNET_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, bytes, static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), N));
  return bytes;
}

// ---- sinusoidal positions ----

// One thread per (t, c): the angle is computed once, in double as the CPU op, and added to every
// batch row.
template <typename T>
__global__ void PositionsAddKernel(T* x, int B, int Tlen, int C, int pos_offset) {
  const int64_t total = int64_t{Tlen} * C;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int t = static_cast<int>(i / C), c = static_cast<int>(i % C);
    const double inv_freq = pow(10000.0, -2.0 * static_cast<double>(c / 2) / C);
    const double angle = (static_cast<double>(pos_offset) + t) * inv_freq;
    const float pe = static_cast<float>(c % 2 == 0 ? sin(angle) : cos(angle));
    for (int b = 0; b < B; ++b) {
      T* element = x + (int64_t{b} * Tlen + t) * C + c;
      *element = FromFloat<T>(ToFloat(*element) + pe);
    }
  }
}

// ---- column sums ----

constexpr int kColumnsPerBlock = 32;
constexpr int kRowLanes = 8;       // a block is 32 columns × 8 row lanes
constexpr int kRowsPerSlot = 256;  // first pass of long columns: rows per partial sum
constexpr int kSinglePassMaxRows = 2048;

// out[slot·C + c] = (or +=) Σ rows [slot·rows_per_slot, ...) of column c. Lane l of a column adds
// rows l, l + 8, ... in order; the 8 lanes are then added in lane order.
template <typename TIn>
__global__ void ColumnSumKernel(const TIn* in, int R, int C, int rows_per_slot, FlexPtr out,
                                bool accumulate) {
  __shared__ float lanes[kRowLanes][kColumnsPerBlock + 1];
  const int column_in_block = threadIdx.x % kColumnsPerBlock;
  const int row_lane = threadIdx.x / kColumnsPerBlock;
  const int c = blockIdx.x * kColumnsPerBlock + column_in_block;
  const int slot = blockIdx.y;
  const int row_begin = slot * rows_per_slot;
  const int row_end = min(R, row_begin + rows_per_slot);
  float sum = 0.0f;
  if (c < C) {
#pragma unroll 4
    for (int r = row_begin + row_lane; r < row_end; r += kRowLanes) {
      sum += ToFloat(in[int64_t{r} * C + c]);
    }
  }
  lanes[row_lane][column_in_block] = sum;
  __syncthreads();
  if (row_lane != 0 || c >= C) return;
  float total = 0.0f;
  for (int l = 0; l < kRowLanes; ++l) total += lanes[l][column_in_block];
  const int64_t i = int64_t{slot} * C + c;
  StoreFlex(out, i, accumulate ? LoadFlex(out, i) + total : total);
}

}  // namespace

void ActivationForward(ActivationKind kind, void* y, const void* x, int64_t n, DType dtype,
                       cudaStream_t stream) {
  DispatchFloat(dtype, "ActivationForward", [&]<typename T>() {
    if (kind == ActivationKind::kRelu) {
      LaunchMap1<T>(y, x, n, ReluOp{}, stream);
    } else {
      LaunchMap1<T>(y, x, n, GeluOp{}, stream);
    }
  });
}

void ActivationBackward(ActivationKind kind, void* dx, const void* dy, const void* x, int64_t n,
                        DType dtype, cudaStream_t stream) {
  DispatchFloat(dtype, "ActivationBackward", [&]<typename T>() {
    if (kind == ActivationKind::kRelu) {
      LaunchMap2<T>(dx, dy, x, n, ReluGradOp{}, stream);
    } else {
      LaunchMap2<T>(dx, dy, x, n, GeluGradOp{}, stream);
    }
  });
}

void Dropout(void* y, const void* x, int64_t n, float p, const RngStream& rng, DType dtype,
             cudaStream_t stream) {
  if (n == 0) return;
  if (p <= 0.0f) {
    if (y != x) {
      DEEPNET_CUDA_CHECK(cudaMemcpyAsync(y, x, static_cast<size_t>(n) * DTypeSize(dtype),
                                         cudaMemcpyDeviceToDevice, stream));
    }
    return;
  }
  // The fp32 number 1/(1 − p) on every backend; p ≥ 1 keeps nothing (and 0 avoids 0·∞).
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  DispatchFloat(dtype, "Dropout", [&]<typename T>() {
    DropoutKernel<T><<<GridFor(CeilDiv(n, 4), kThreads), kThreads, 0, stream>>>(
        static_cast<T*>(y), static_cast<const T*>(x), n, p, scale, rng);
    DEEPNET_CUDA_CHECK_LAUNCH();
  });
}

void Add(void* y, const void* a, const void* b, int64_t n, DType dtype, cudaStream_t stream) {
  DispatchFloat(dtype, "Add", [&]<typename T>() { LaunchMap2<T>(y, a, b, n, AddOp{}, stream); });
}

void Axpy(void* y, const void* x, float alpha, int64_t n, DType dtype, cudaStream_t stream) {
  DispatchFloat(dtype, "Axpy",
                [&]<typename T>() { LaunchMap2<T>(y, y, x, n, AxpyOp{alpha}, stream); });
}

void Scale(void* y, const void* x, float alpha, int64_t n, DType dtype, cudaStream_t stream) {
  DispatchFloat(dtype, "Scale",
                [&]<typename T>() { LaunchMap1<T>(y, x, n, ScaleOp{alpha}, stream); });
}

void Convert(void* dst, DType dst_dtype, const void* src, DType src_dtype, int64_t n,
             cudaStream_t stream) {
  if (n == 0) return;
  if (dst_dtype == src_dtype) {
    if (dst != src) {
      DEEPNET_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * DTypeSize(dst_dtype),
                                         cudaMemcpyDeviceToDevice, stream));
    }
    return;
  }
  DispatchFloat(dst_dtype, "Convert", [&]<typename TOut>() {
    DispatchFloat(src_dtype, "Convert", [&]<typename TIn>() {
      ConvertKernel<TOut, TIn><<<GridFor(n, kThreads), kThreads, 0, stream>>>(
          static_cast<TOut*>(dst), static_cast<const TIn*>(src), n);
      DEEPNET_CUDA_CHECK_LAUNCH();
    });
  });
}

void EmbeddingForward(void* out, const int32_t* tokens, const void* table, int N, int V, int C,
                      float scale, DType dtype, cudaStream_t stream) {
  if (int64_t{N} * C == 0) return;
  DispatchFloat(dtype, "EmbeddingForward", [&]<typename T>() {
    constexpr int kV = kVec16<T>;
    T* y = static_cast<T*>(out);
    const T* rows = static_cast<const T*>(table);
    if (C % kV == 0 && IsAlignedHost(out, 16) && IsAlignedHost(table, 16)) {
      EmbeddingForwardKernel<T, kV>
          <<<GridFor(int64_t{N} * (C / kV), kThreads), kThreads, 0, stream>>>(y, tokens, rows, N, V,
                                                                              C, scale);
    } else {
      EmbeddingForwardKernel<T, 1><<<GridFor(int64_t{N} * C, kThreads), kThreads, 0, stream>>>(
          y, tokens, rows, N, V, C, scale);
    }
    DEEPNET_CUDA_CHECK_LAUNCH();
  });
}

size_t EmbeddingBackwardScratchBytes(int N, int V) {
  if (N == 0) return 0;
  return 3 * ScratchCarver::Round(static_cast<size_t>(N) * sizeof(int32_t)) +
         ScratchCarver::Round(SortTempBytes(N));
}

void EmbeddingBackward(FlexPtr dtable, const int32_t* tokens, const void* dout, DType dout_dtype,
                       int N, int V, int C, float scale, void* scratch, cudaStream_t stream) {
  if (N == 0 || C == 0) return;
  ScratchCarver carve(scratch);
  int32_t* sorted_tokens = carve.Take<int32_t>(N);
  int32_t* rows = carve.Take<int32_t>(N);
  int32_t* sorted_rows = carve.Take<int32_t>(N);
  size_t temp_bytes = SortTempBytes(N);
  void* temp = carve.Take<char>(temp_bytes);
  IotaKernel<<<GridFor(N, kThreads), kThreads, 0, stream>>>(rows, N);
  DEEPNET_CUDA_CHECK_LAUNCH();
  // All 32 key bits: out-of-range (negative) tokens still sort into runs of their own.
  DEEPNET_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, tokens, sorted_tokens, rows,
                                                     sorted_rows, N, 0, 32, stream));
  DispatchFloat(dout_dtype, "EmbeddingBackward", [&]<typename T>() {
    constexpr int kWarpsPerBlock = kThreads / 32;
    EmbeddingScatterKernel<T>
        <<<static_cast<unsigned>(CeilDiv(N, kWarpsPerBlock)), kThreads, 0, stream>>>(
            dtable, sorted_tokens, sorted_rows, static_cast<const T*>(dout), N, V, C, scale);
    DEEPNET_CUDA_CHECK_LAUNCH();
  });
}

void PositionsAdd(void* x, int B, int Tlen, int C, int pos_offset, DType dtype,
                  cudaStream_t stream) {
  if (int64_t{B} * Tlen * C == 0) return;
  DispatchFloat(dtype, "PositionsAdd", [&]<typename T>() {
    PositionsAddKernel<T><<<GridFor(int64_t{Tlen} * C, kThreads), kThreads, 0, stream>>>(
        static_cast<T*>(x), B, Tlen, C, pos_offset);
    DEEPNET_CUDA_CHECK_LAUNCH();
  });
}

size_t ColumnSumScratchBytes(int R, int C) {
  if (R <= kSinglePassMaxRows) return 0;
  return ScratchCarver::Round(static_cast<size_t>(CeilDiv(R, kRowsPerSlot)) * C * sizeof(float));
}

void ColumnSum(FlexPtr out, bool accumulate, const void* in, DType in_dtype, int R, int C,
               void* scratch, cudaStream_t stream) {
  if (C == 0 || (R == 0 && accumulate)) return;
  const unsigned column_blocks = static_cast<unsigned>(CeilDiv(C, kColumnsPerBlock));
  const dim3 threads(kColumnsPerBlock * kRowLanes);
  if (R <= kSinglePassMaxRows) {
    DispatchFloat(in_dtype, "ColumnSum", [&]<typename T>() {
      ColumnSumKernel<T><<<dim3(column_blocks, 1), threads, 0, stream>>>(static_cast<const T*>(in),
                                                                         R, C, R, out, accumulate);
      DEEPNET_CUDA_CHECK_LAUNCH();
    });
    return;
  }
  // Two passes: partial sums over slots of kRowsPerSlot rows, then the slots in order.
  const int slots = static_cast<int>(CeilDiv(R, kRowsPerSlot));
  CHECK_LE(slots, 65535) << "ColumnSum: " << R << " rows exceed the grid limit";
  float* partial = static_cast<float*>(scratch);
  DispatchFloat(in_dtype, "ColumnSum", [&]<typename T>() {
    ColumnSumKernel<T><<<dim3(column_blocks, slots), threads, 0, stream>>>(
        static_cast<const T*>(in), R, C, kRowsPerSlot, FlexPtr{partial, DType::kF32}, false);
    DEEPNET_CUDA_CHECK_LAUNCH();
  });
  ColumnSumKernel<float>
      <<<dim3(column_blocks, 1), threads, 0, stream>>>(partial, slots, C, slots, out, accumulate);
  DEEPNET_CUDA_CHECK_LAUNCH();
}

}  // namespace deepnet::cuda
