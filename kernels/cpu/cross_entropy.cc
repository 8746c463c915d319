// Fused log-softmax + cross-entropy with label smoothing. N rows, V vocab.
//
// With lse = log Σ_v exp(x_v), −log p_v = lse − x_v, so
//   loss = (1 − ε)·(lse − x_t) + ε·(lse − mean_v x_v)
//   ∂loss/∂x_v = p_v − (1 − ε)·[v = t] − ε/V.
// Rows are independent; each row's sums are in double (exponentials in T).
#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cpu/vector_math.h"

namespace deepnet::cpu {
namespace {

// Row sums run in vector lanes (`simd reduction`), in double: a fixed order for a given build,
// whatever the thread count.
template <typename T>
T Max(const T* x, int V) {
  T max = x[0];
#pragma omp simd reduction(max : max)
  for (int v = 1; v < V; ++v) max = x[v] > max ? x[v] : max;
  return max;
}

template <typename T>
double LogSumExp(const T* x, int V) {
  const T max = Max(x, V);
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int v = 0; v < V; ++v) sum += static_cast<double>(Exp(x[v] - max));
  return static_cast<double>(max) + std::log(sum);
}

template <typename T>
double Mean(const T* x, int V) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int v = 0; v < V; ++v) sum += static_cast<double>(x[v]);
  return sum / V;
}

}  // namespace

template <typename T>
void cross_entropy_forward(T* losses, T* lse, const T* logits, const int32_t* targets, int N, int V,
                           T smoothing, int ignore_index) {
  const double eps = static_cast<double>(smoothing);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const T* x = logits + static_cast<int64_t>(n) * V;
    const double row_lse = LogSumExp(x, V);
    lse[n] = static_cast<T>(row_lse);
    const int target = targets[n];
    if (target == ignore_index) {
      losses[n] = T(0);
      continue;
    }
    const double nll = row_lse - static_cast<double>(x[target]);
    const double smooth = eps == 0.0 ? 0.0 : row_lse - Mean(x, V);
    losses[n] = static_cast<T>((1.0 - eps) * nll + eps * smooth);
  }
}

template <typename T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets,
                            T dloss, int N, int V, T smoothing, int ignore_index) {
  const T uniform_share = smoothing / static_cast<T>(V);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const T* x = logits + static_cast<int64_t>(n) * V;
    T* dx = dlogits + static_cast<int64_t>(n) * V;
    const int target = targets[n];
    if (target == ignore_index) {
      std::fill(dx, dx + V, T(0));
      continue;
    }
    const T row_lse = lse[n];
#pragma omp simd
    for (int v = 0; v < V; ++v) dx[v] = dloss * (Exp(x[v] - row_lse) - uniform_share);
    dx[target] -= dloss * (T(1) - smoothing);
  }
}

template void cross_entropy_forward<float>(float*, float*, const float*, const int32_t*, int, int,
                                           float, int);
template void cross_entropy_forward<double>(double*, double*, const double*, const int32_t*, int,
                                            int, double, int);
template void cross_entropy_backward<float>(float*, const float*, const float*, const int32_t*,
                                            float, int, int, float, int);
template void cross_entropy_backward<double>(double*, const double*, const double*, const int32_t*,
                                             double, int, int, double, int);

}  // namespace deepnet::cpu
