// Fused softmax cross-entropy with label smoothing. N rows, V vocab.
//
// loss = (1 − ε)·(lse − x_t) + ε·(lse − mean_v x_v),  ∂loss/∂x_v = p_v − (1 − ε)·[v = t] − ε/V.
#include <cmath>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cross_entropy.h"

namespace deepnet::cuda {
namespace {

constexpr int kThreads = 512;

// Running max m and Σ exp(x − m) over part of a row.
struct MaxSum {
  float max = -INFINITY;
  float sum = 0.0f;
};

__device__ __forceinline__ MaxSum Combine(MaxSum a, MaxSum b) {
  const float max = fmaxf(a.max, b.max);
  if (max == -INFINITY) return {max, 0.0f};
  return {max, a.sum * expf(a.max - max) + b.sum * expf(b.max - max)};
}

__device__ __forceinline__ void Add(MaxSum& acc, float x) {
  if (x == -INFINITY) return;  // exp(−∞) = 0; skipping avoids ∞ − ∞
  if (x > acc.max) {
    acc.sum = acc.sum * expf(acc.max - x) + 1.0f;
    acc.max = x;
  } else {
    acc.sum += expf(x - acc.max);
  }
}

// Reduces (max/sum, plain sum) over the block in a fixed tree: the same bits on every run.
__device__ void BlockCombine(MaxSum& acc, float& plain_sum) {
  __shared__ float shared_max[32], shared_sum[32], shared_plain[32];
  for (int offset = 16; offset > 0; offset >>= 1) {
    const MaxSum other{__shfl_xor_sync(kFullMask, acc.max, offset),
                       __shfl_xor_sync(kFullMask, acc.sum, offset)};
    acc = Combine(acc, other);
    plain_sum += __shfl_xor_sync(kFullMask, plain_sum, offset);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    shared_max[warp] = acc.max;
    shared_sum[warp] = acc.sum;
    shared_plain[warp] = plain_sum;
  }
  __syncthreads();
  acc = MaxSum{};
  plain_sum = 0.0f;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) {
    acc = Combine(acc, MaxSum{shared_max[w], shared_sum[w]});
    plain_sum += shared_plain[w];
  }
}

template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    CrossEntropyForwardKernel(FlexPtr losses, FlexPtr lse, const T* logits, const int32_t* targets,
                              int V, float smoothing, int ignore_index) {
  const int n = blockIdx.x;
  const T* row = logits + int64_t{n} * V;
  MaxSum acc;
  float plain_sum = 0.0f;
  for (int g = threadIdx.x; g < V / kVec; g += blockDim.x) {
    const Vec<T, kVec> values = reinterpret_cast<const Vec<T, kVec>*>(row)[g];
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const float x = ToFloat(values.v[i]);
      Add(acc, x);
      plain_sum += x;
    }
  }
  BlockCombine(acc, plain_sum);
  if (threadIdx.x != 0) return;
  const float row_lse = acc.max + logf(acc.sum);
  StoreFlex(lse, n, row_lse);
  const int target = targets[n];
  float loss = 0.0f;
  if (target != ignore_index) {
    if (target < 0 || target >= V) {
      loss = NAN;
    } else {
      const float nll = row_lse - ToFloat(row[target]);
      const float smooth = smoothing == 0.0f ? 0.0f : row_lse - plain_sum / V;
      loss = (1.0f - smoothing) * nll + smoothing * smooth;
    }
  }
  StoreFlex(losses, n, loss);
}

template <typename T, int kVec>
__global__ void __launch_bounds__(kThreads)
    CrossEntropyBackwardKernel(T* dlogits, const T* logits, FlexPtr lse, const int32_t* targets,
                               float dloss, int V, float smoothing, int ignore_index) {
  const int n = blockIdx.x;
  const int64_t offset = int64_t{n} * V;
  const int target = targets[n];
  const bool ignored = target == ignore_index;
  const float row_lse = LoadFlex(lse, n);
  const float uniform_share = smoothing / static_cast<float>(V);
  const float target_share = dloss * (1.0f - smoothing);
  for (int g = threadIdx.x; g < V / kVec; g += blockDim.x) {
    const Vec<T, kVec> x = reinterpret_cast<const Vec<T, kVec>*>(logits + offset)[g];
    Vec<T, kVec> dx;
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const int v = g * kVec + i;
      float grad = 0.0f;
      if (!ignored) {
        grad = dloss * (expf(ToFloat(x.v[i]) - row_lse) - uniform_share);
        if (v == target) grad -= target_share;
      }
      dx.v[i] = FromFloat<T>(grad);
    }
    reinterpret_cast<Vec<T, kVec>*>(dlogits + offset)[g] = dx;
  }
}

}  // namespace

void CrossEntropyForward(FlexPtr losses, FlexPtr lse, const void* logits, const int32_t* targets,
                         int N, int V, float smoothing, int ignore_index, DType dtype,
                         cudaStream_t stream) {
  if (N == 0) return;
  DispatchFloat(dtype, "CrossEntropyForward", [&]<typename T>() {
    const T* x = static_cast<const T*>(logits);
    if (V % kVec16<T> == 0 && IsAlignedHost(logits, 16)) {
      CrossEntropyForwardKernel<T, kVec16<T>>
          <<<N, kThreads, 0, stream>>>(losses, lse, x, targets, V, smoothing, ignore_index);
    } else {
      CrossEntropyForwardKernel<T, 1>
          <<<N, kThreads, 0, stream>>>(losses, lse, x, targets, V, smoothing, ignore_index);
    }
    DEEPNET_CUDA_CHECK_LAUNCH();
  });
}

void CrossEntropyBackward(void* dlogits, const void* logits, FlexPtr lse, const int32_t* targets,
                          float dloss, int N, int V, float smoothing, int ignore_index, DType dtype,
                          cudaStream_t stream) {
  if (N == 0) return;
  DispatchFloat(dtype, "CrossEntropyBackward", [&]<typename T>() {
    T* dx = static_cast<T*>(dlogits);
    const T* x = static_cast<const T*>(logits);
    if (V % kVec16<T> == 0 && IsAlignedHost(logits, 16) && IsAlignedHost(dlogits, 16)) {
      CrossEntropyBackwardKernel<T, kVec16<T>>
          <<<N, kThreads, 0, stream>>>(dx, x, lse, targets, dloss, V, smoothing, ignore_index);
    } else {
      CrossEntropyBackwardKernel<T, 1>
          <<<N, kThreads, 0, stream>>>(dx, x, lse, targets, dloss, V, smoothing, ignore_index);
    }
    DEEPNET_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace deepnet::cuda
