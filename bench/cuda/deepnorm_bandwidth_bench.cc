// Fused DeepNorm LayerNorm on the GPU: achieved DRAM bandwidth of the forward and backward kernels
// against the device's peak (2 · memory clock · bus width, from the device attributes).
// Letters: N rows (tokens), C channels. bf16 activations, f32 statistics and dgamma/dbeta.
//
// Bytes counted are the compulsory ones: forward reads x, g and writes y (3·N·C·2) plus the row
// statistics; backward reads dy, x, g and writes dx, dg (5·N·C·2) plus the statistics read. The
// dgamma/dbeta partial sums the backward also moves are not counted, so they show as lost
// bandwidth. Inputs are rotated among several buffer sets when one set fits in L2, so the figures
// are DRAM, not cache. Each figure is the median of --repeats timed launches (CUDA events).
// Run: cuda_deepnorm_bench [--rows=8192,16384,32768,65536] [--channels=1024,2048,4096,8192]
// Without a GPU it prints "no usable GPU: <reason>" and exits 0.
#include <cuda_runtime_api.h>
#include <gflags/gflags.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"

DEFINE_string(rows, "8192,16384,32768,65536", "comma-separated row counts N");
DEFINE_string(channels, "1024,2048,4096,8192", "comma-separated channel counts C");
DEFINE_int32(repeats, 20, "timed launches per figure (the median is reported)");

namespace deepnet::cuda {
namespace {

constexpr double kAlpha = 2.2;
constexpr double kEps = 1e-5;

std::vector<int> ParseList(const std::string& text) {
  std::vector<int> values;
  std::stringstream stream(text);
  for (std::string item; std::getline(stream, item, ',');) values.push_back(std::stoi(item));
  return values;
}

// Fills a device tensor with a random bf16 pattern (never zeros: zeros can run faster).
void FillRandom(const CudaBackend& gpu, const Tensor& t, uint32_t seed) {
  constexpr int64_t kPattern = 1 << 20;
  const int64_t n = std::min(kPattern, t.numel());
  Tensor host = Tensor::Empty({n}, DType::kF32, MemoryCategory::kOther);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (int64_t i = 0; i < n; ++i) host.data<float>()[i] = uniform(rng);
  Tensor pattern = gpu.Empty({n}, DType::kF32, MemoryCategory::kOther);
  gpu.Copy(pattern, host);
  Tensor flat = t.Reshape({t.numel()});
  for (int64_t begin = 0; begin < t.numel(); begin += n) {
    const int64_t end = std::min(t.numel(), begin + n);
    gpu.Convert(flat.Slice(begin, end), pattern.Slice(0, end - begin));
  }
}

// One set of buffers of an (N, C) problem.
struct Buffers {
  Tensor x, g, y, dy, dx, dg, mean, rstd;
};

Buffers MakeBuffers(const CudaBackend& gpu, int N, int C, uint32_t seed) {
  auto make = [&](DType dtype, const Shape& shape) {
    return gpu.Empty(shape, dtype, MemoryCategory::kActivations);
  };
  Buffers b{make(DType::kBF16, {N, C}), make(DType::kBF16, {N, C}), make(DType::kBF16, {N, C}),
            make(DType::kBF16, {N, C}), make(DType::kBF16, {N, C}), make(DType::kBF16, {N, C}),
            make(DType::kF32, {N}),     make(DType::kF32, {N})};
  FillRandom(gpu, b.x, seed);
  FillRandom(gpu, b.g, seed + 1);
  FillRandom(gpu, b.dy, seed + 2);
  return b;
}

// Median time in milliseconds of `repeats` runs of run(i), each timed with events.
template <typename Run>
double MedianMs(const CudaBackend& gpu, int repeats, Run&& run) {
  cudaEvent_t start, stop;
  DEEPNET_CUDA_CHECK(cudaEventCreate(&start));
  DEEPNET_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) run(i);  // warm-up: module load, workspace growth
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    DEEPNET_CUDA_CHECK(cudaEventRecord(start, gpu.stream()));
    run(i);
    DEEPNET_CUDA_CHECK(cudaEventRecord(stop, gpu.stream()));
    DEEPNET_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0.0f;
    DEEPNET_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    times.push_back(ms);
  }
  DEEPNET_CUDA_CHECK(cudaEventDestroy(start));
  DEEPNET_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

int Main() {
  StatusOr<std::unique_ptr<CudaBackend>> created = CudaBackend::Create();
  if (!created.ok()) {
    std::printf("no usable GPU: %s\n", created.status().ToString().c_str());
    return 0;
  }
  const CudaBackend& gpu = **created;
  const DeviceInfo info = *GetDeviceInfo(0);
  const double peak = info.peak_memory_bytes_per_second();
  int l2_bytes = 0;
  DEEPNET_CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, 0));
  std::printf("%s: peak DRAM %.0f GB/s (memory clock %lld kHz, bus %d bits), L2 %d MiB\n",
              info.name.c_str(), peak / 1e9, static_cast<long long>(info.memory_clock_khz),
              info.memory_bus_width_bits, l2_bytes >> 20);
  std::printf("%8s %6s | %10s %9s %6s | %10s %9s %6s\n", "N", "C", "fwd us", "fwd GB/s", "%peak",
              "bwd us", "bwd GB/s", "%peak");

  for (int N : ParseList(FLAGS_rows)) {
    for (int C : ParseList(FLAGS_channels)) {
      const double set_bytes = 6.0 * N * C * 2;
      const int sets = std::clamp(static_cast<int>(2.0 * l2_bytes / set_bytes) + 1, 1, 4);
      std::vector<Buffers> buffers;
      for (int s = 0; s < sets; ++s) buffers.push_back(MakeBuffers(gpu, N, C, 10 * s + 1));
      const Tensor gamma = gpu.Empty({C}, DType::kBF16, MemoryCategory::kParameters);
      const Tensor beta = gpu.Empty({C}, DType::kBF16, MemoryCategory::kParameters);
      FillRandom(gpu, gamma, 7);
      FillRandom(gpu, beta, 8);
      const Tensor dgamma = gpu.Zeros({C}, DType::kF32, MemoryCategory::kGradients);
      const Tensor dbeta = gpu.Zeros({C}, DType::kF32, MemoryCategory::kGradients);

      const double forward_ms = MedianMs(gpu, FLAGS_repeats, [&](int i) {
        const Buffers& b = buffers[i % sets];
        gpu.DeepNormForward(b.y, b.mean, b.rstd, b.x, b.g, gamma, beta, kAlpha, kEps);
      });
      const double backward_ms = MedianMs(gpu, FLAGS_repeats, [&](int i) {
        const Buffers& b = buffers[i % sets];
        gpu.DeepNormBackward(&b.dx, &b.dg, dgamma, dbeta, b.dy, b.x, b.g, gamma, b.mean, b.rstd,
                             kAlpha);
      });
      const double forward_bytes = 3.0 * N * C * 2 + 8.0 * N;
      const double backward_bytes = 5.0 * N * C * 2 + 8.0 * N;
      const double forward_rate = forward_bytes / (forward_ms * 1e-3);
      const double backward_rate = backward_bytes / (backward_ms * 1e-3);
      std::printf("%8d %6d | %10.1f %9.0f %5.1f%% | %10.1f %9.0f %5.1f%%\n", N, C, forward_ms * 1e3,
                  forward_rate / 1e9, 100.0 * forward_rate / peak, backward_ms * 1e3,
                  backward_rate / 1e9, 100.0 * backward_rate / peak);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace deepnet::cuda

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return deepnet::cuda::Main();
}
