// AdamW update and the sum of squares behind the global gradient norm. n parameters.
#include "kernels/cpu/optimizer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace deepnet::cpu {
namespace {

// sum_of_squares reduces blocks of this many elements, each over kLanes interleaved double
// accumulators, then sums lanes and blocks in order: the grouping never depends on the threads.
constexpr int64_t kBlockSize = 4096;
constexpr int kLanes = 8;

template <typename T>
double BlockSumOfSquares(const T* x, int64_t n) {
  double lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int l = 0; l < kLanes; ++l) {
      const double value = static_cast<double>(x[i + l]);
      lanes[l] += value * value;
    }
  }
  for (int l = 0; i < n; ++i, ++l) {
    const double value = static_cast<double>(x[i]);
    lanes[l] += value * value;
  }
  double sum = 0.0;
  for (double lane : lanes) sum += lane;
  return sum;
}

}  // namespace

// As PyTorch's AdamW: param ← param·(1 − lr·wd) − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + eps).
template <typename T>
void adamw_update(T* param, T* m, T* v, const T* grad, int64_t n, const AdamWConfig& config,
                  int64_t step, T grad_scale) {
  const double t = static_cast<double>(step);
  const T beta1 = static_cast<T>(config.beta1);
  const T beta2 = static_cast<T>(config.beta2);
  const T one_minus_beta1 = static_cast<T>(1.0 - config.beta1);
  const T one_minus_beta2 = static_cast<T>(1.0 - config.beta2);
  const T decay = static_cast<T>(1.0 - config.lr * config.weight_decay);
  const T step_size = static_cast<T>(config.lr / (1.0 - std::pow(config.beta1, t)));
  const T inv_sqrt_correction2 = static_cast<T>(1.0 / std::sqrt(1.0 - std::pow(config.beta2, t)));
  const T eps = static_cast<T>(config.eps);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = grad[i] * grad_scale;
    m[i] = beta1 * m[i] + one_minus_beta1 * g;
    v[i] = beta2 * v[i] + one_minus_beta2 * g * g;
    const T denom = std::sqrt(v[i]) * inv_sqrt_correction2 + eps;
    param[i] = param[i] * decay - step_size * m[i] / denom;
  }
}

template <typename T>
double sum_of_squares(const T* x, int64_t n) {
  const int64_t blocks = (n + kBlockSize - 1) / kBlockSize;
  std::vector<double> partial(blocks);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t first = b * kBlockSize;
    partial[b] = BlockSumOfSquares(x + first, std::min(kBlockSize, n - first));
  }
  double sum = 0.0;
  for (double block_sum : partial) sum += block_sum;
  return sum;
}

template void adamw_update<float>(float*, float*, float*, const float*, int64_t, const AdamWConfig&,
                                  int64_t, float);
template void adamw_update<double>(double*, double*, double*, const double*, int64_t,
                                   const AdamWConfig&, int64_t, double);
template double sum_of_squares<float>(const float*, int64_t);
template double sum_of_squares<double>(const double*, int64_t);

}  // namespace deepnet::cpu
