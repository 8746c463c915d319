// Mixed precision: the loss scaler (host logic), multi-tensor AdamW and the deterministic sum of
// squares. n elements per tensor.
//
// Multi-tensor launches: a list of tensors travels in one kernel parameter (a few KB, constant
// for the launch); every tensor is cut into chunks of a fixed size and each block takes one chunk,
// finding its tensor from the table of first blocks. Long lists take several launches.
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/mixed_precision.h"
#include "kernels/cuda/workspace.h"

namespace deepnet::cuda {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxTensorsPerLaunch = 36;  // keeps the parameter block under 4 KB
constexpr int64_t kAdamElementsPerBlock = 8192;
// Sum of squares: the block size fixes the order of additions, so it never depends on the GPU.
constexpr int64_t kSumElementsPerBlock = 16384;
constexpr int kFinalThreads = 1024;

// Tensors [0, count) of one launch; block b works on tensor t when
// first_block[t] <= b < first_block[t + 1].
template <typename Tensor>
struct TensorBatch {
  Tensor tensors[kMaxTensorsPerLaunch];
  int first_block[kMaxTensorsPerLaunch + 1];
  int count;
};

template <typename Tensor>
__device__ __forceinline__ int TensorOfBlock(const TensorBatch<Tensor>& batch) {
  int t = 0;
  while (t + 1 < batch.count && static_cast<int>(blockIdx.x) >= batch.first_block[t + 1]) ++t;
  return t;
}

// Splits `tensors` into batches of whole tensors; calls launch(batch, blocks) for each.
template <typename Tensor, typename Launch>
void ForEachBatch(std::span<const Tensor> tensors, int64_t elements_per_block, Launch&& launch) {
  size_t next = 0;
  while (next < tensors.size()) {
    TensorBatch<Tensor> batch{};
    int blocks = 0;
    while (next < tensors.size() && batch.count < kMaxTensorsPerLaunch) {
      const Tensor& tensor = tensors[next++];
      if (tensor.n == 0) continue;
      batch.tensors[batch.count] = tensor;
      batch.first_block[batch.count] = blocks;
      const int64_t tensor_blocks = CeilDiv(tensor.n, elements_per_block);
      CHECK_LT(blocks + tensor_blocks, int64_t{1} << 31) << "multi-tensor launch too large";
      blocks += static_cast<int>(tensor_blocks);
      ++batch.count;
    }
    batch.first_block[batch.count] = blocks;
    if (batch.count > 0) launch(batch, blocks);
  }
}

// ---- AdamW ----

struct AdamWConstants {
  float beta1, beta2, one_minus_beta1, one_minus_beta2;
  float decay, step_size, inv_sqrt_correction2, eps, grad_scale;
};

// As cpu::adamw_update, element by element in f32.
__global__ void __launch_bounds__(kThreads)
    AdamWKernel(const __grid_constant__ TensorBatch<AdamWTensor> batch, AdamWConstants k) {
  const int t = TensorOfBlock(batch);
  const AdamWTensor& tensor = batch.tensors[t];
  const int64_t begin = int64_t{blockIdx.x - batch.first_block[t]} * kAdamElementsPerBlock;
  const int64_t end = min(tensor.n, begin + kAdamElementsPerBlock);
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float g = LoadFlex(tensor.grad, i) * k.grad_scale;
    const float m = k.beta1 * tensor.m[i] + k.one_minus_beta1 * g;
    const float v = k.beta2 * tensor.v[i] + k.one_minus_beta2 * g * g;
    tensor.m[i] = m;
    tensor.v[i] = v;
    const float denom = sqrtf(v) * k.inv_sqrt_correction2 + k.eps;
    const float param = LoadFlex(tensor.param, i) * k.decay - k.step_size * m / denom;
    StoreFlex(tensor.param, i, param);
    if (tensor.compute_copy.ptr != nullptr) StoreFlex(tensor.compute_copy, i, param);
  }
}

// ---- sum of squares ----

struct SquaresTensor {
  FlexPtr data;
  int64_t n = 0;
};

// Sum over the block in a fixed order; valid in thread 0.
__device__ double BlockSumDouble(double v) {
  __shared__ double warp_sums[32];
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = v;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += warp_sums[w];
  }
  return total;
}

// partials[b] = Σ x² over block b's chunk.
__global__ void __launch_bounds__(kThreads)
    SquaresKernel(const __grid_constant__ TensorBatch<SquaresTensor> batch, double* partials) {
  const int t = TensorOfBlock(batch);
  const SquaresTensor& tensor = batch.tensors[t];
  const int64_t begin = int64_t{blockIdx.x - batch.first_block[t]} * kSumElementsPerBlock;
  const int64_t end = min(tensor.n, begin + kSumElementsPerBlock);
  double sum = 0.0;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double x = LoadFlex(tensor.data, i);
    sum += x * x;
  }
  const double total = BlockSumDouble(sum);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

// result = Σ partials, thread t adding t, t + 1024, ... then the threads in order.
__global__ void __launch_bounds__(kFinalThreads)
    SumPartialsKernel(const double* partials, int count, double* result) {
  double sum = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) sum += partials[i];
  const double total = BlockSumDouble(sum);
  if (threadIdx.x == 0) *result = total;
}

std::vector<SquaresTensor> ToSquaresTensors(std::span<const TensorRef> tensors) {
  std::vector<SquaresTensor> out;
  out.reserve(tensors.size());
  for (const TensorRef& t : tensors) {
    out.push_back({FlexPtr{const_cast<void*>(t.data), t.dtype}, t.n});
  }
  return out;
}

int64_t TotalBlocks(std::span<const TensorRef> tensors) {
  int64_t blocks = 0;
  for (const TensorRef& t : tensors) blocks += CeilDiv(t.n, kSumElementsPerBlock);
  return blocks;
}

}  // namespace

void MultiTensorAdamW(std::span<const AdamWTensor> tensors, const AdamWConfig& config, int64_t step,
                      float grad_scale, cudaStream_t stream) {
  // The same constants as cpu::adamw_update, computed in double and rounded once.
  const double t = static_cast<double>(step);
  const AdamWConstants k{
      static_cast<float>(config.beta1),
      static_cast<float>(config.beta2),
      static_cast<float>(1.0 - config.beta1),
      static_cast<float>(1.0 - config.beta2),
      static_cast<float>(1.0 - config.lr * config.weight_decay),
      static_cast<float>(config.lr / (1.0 - std::pow(config.beta1, t))),
      static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(config.beta2, t))),
      static_cast<float>(config.eps),
      grad_scale,
  };
  ForEachBatch(tensors, kAdamElementsPerBlock,
               [&](const TensorBatch<AdamWTensor>& batch, int blocks) {
                 AdamWKernel<<<blocks, kThreads, 0, stream>>>(batch, k);
                 DEEPNET_CUDA_CHECK_LAUNCH();
               });
}

size_t SumOfSquaresScratchBytes(std::span<const TensorRef> tensors) {
  return ScratchCarver::Round(sizeof(double) * static_cast<size_t>(TotalBlocks(tensors))) +
         ScratchCarver::Round(sizeof(double));
}

double SumOfSquares(std::span<const TensorRef> tensors, void* scratch, cudaStream_t stream) {
  const int64_t total_blocks = TotalBlocks(tensors);
  if (total_blocks == 0) return 0.0;
  CHECK_LT(total_blocks, int64_t{1} << 31) << "SumOfSquares: too many elements";
  ScratchCarver carve(scratch);
  double* partials = carve.Take<double>(static_cast<size_t>(total_blocks));
  double* result = carve.Take<double>(1);
  const std::vector<SquaresTensor> views = ToSquaresTensors(tensors);
  int64_t written = 0;  // partials are laid out in tensor order across launches
  ForEachBatch(std::span<const SquaresTensor>(views), kSumElementsPerBlock,
               [&](const TensorBatch<SquaresTensor>& batch, int blocks) {
                 SquaresKernel<<<blocks, kThreads, 0, stream>>>(batch, partials + written);
                 DEEPNET_CUDA_CHECK_LAUNCH();
                 written += blocks;
               });
  SumPartialsKernel<<<1, kFinalThreads, 0, stream>>>(partials, static_cast<int>(written), result);
  DEEPNET_CUDA_CHECK_LAUNCH();
  double host_result = 0.0;
  DEEPNET_CUDA_CHECK(
      cudaMemcpyAsync(&host_result, result, sizeof(double), cudaMemcpyDeviceToHost, stream));
  DEEPNET_CUDA_CHECK(cudaStreamSynchronize(stream));
  return host_result;
}

}  // namespace deepnet::cuda
