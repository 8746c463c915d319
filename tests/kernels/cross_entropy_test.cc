// Fused log-softmax + cross-entropy: known values, label smoothing, ignore_index, gradients.
// N rows, V vocab.
#include "kernels/cpu/cross_entropy.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/kernels/gradcheck.h"

namespace deepnet::cpu {
namespace {

using deepnet::testing::RandomVector;
using deepnet::testing::ToFloat;

constexpr int kIgnore = -100;

// Naive double reference: loss_n = (1 − ε)·(−log p_t) + ε·mean_v(−log p_v).
std::vector<double> ReferenceLosses(const std::vector<double>& logits,
                                    const std::vector<int32_t>& targets, int V, double eps) {
  std::vector<double> losses(targets.size(), 0.0);
  for (size_t n = 0; n < targets.size(); ++n) {
    if (targets[n] == kIgnore) continue;
    double sum_exp = 0.0;
    for (int v = 0; v < V; ++v) sum_exp += std::exp(logits[n * V + v]);
    auto neg_log_p = [&](int v) { return std::log(sum_exp) - logits[n * V + v]; };
    double mean = 0.0;
    for (int v = 0; v < V; ++v) mean += neg_log_p(v) / V;
    losses[n] = (1 - eps) * neg_log_p(targets[n]) + eps * mean;
  }
  return losses;
}

TEST(CrossEntropyTest, KnownValues) {
  // logits (1, 2, 3), target 2: lse = 3 + log(1 + e⁻¹ + e⁻²) = 3.40760596444438;
  // NLL = lse − 3; smoothing term = lse − mean(logits) = lse − 2.
  const std::vector<double> logits = {1, 2, 3};
  const std::vector<int32_t> targets = {2};
  double loss = 0, lse = 0;
  cross_entropy_forward(&loss, &lse, logits.data(), targets.data(), 1, 3, 0.0, kIgnore);
  EXPECT_NEAR(lse, 3.4076059644443804, 1e-14);
  EXPECT_NEAR(loss, 0.4076059644443804, 1e-14);
  cross_entropy_forward(&loss, &lse, logits.data(), targets.data(), 1, 3, 0.1, kIgnore);
  EXPECT_NEAR(loss, 0.9 * 0.4076059644443804 + 0.1 * 1.4076059644443804, 1e-14);
  // Equal logits: every −log p_v = log V, whatever ε.
  const std::vector<float> flat(8, 0.25f);
  const std::vector<int32_t> five = {5};
  float loss_f = 0, lse_f = 0;
  cross_entropy_forward(&loss_f, &lse_f, flat.data(), five.data(), 1, 8, 0.3f, kIgnore);
  EXPECT_NEAR(loss_f, std::log(8.0), 1e-6);
}

TEST(CrossEntropyTest, KnownValueAndGradientWithSmoothing) {
  // PyTorch: F.cross_entropy([[0.5, -1, 2, 0.25]], [0], label_smoothing=0.2) in float64.
  const std::vector<double> logits = {0.5, -1.0, 2.0, 0.25};
  const std::vector<int32_t> targets = {0};
  double loss = 0, lse = 0;
  cross_entropy_forward(&loss, &lse, logits.data(), targets.data(), 1, 4, 0.2, kIgnore);
  EXPECT_NEAR(loss, 1.8817789984482536, 1e-14);
  std::vector<double> dlogits(4);
  cross_entropy_backward(dlogits.data(), logits.data(), &lse, targets.data(), 1.0, 1, 4, 0.2,
                         kIgnore);
  const std::vector<double> expected = {-0.69576517471583788, -0.01558555873387979,
                                        0.64123253074153097, 0.07011820270818686};
  for (int v = 0; v < 4; ++v) EXPECT_NEAR(dlogits[v], expected[v], 1e-14) << v;
}

TEST(CrossEntropyTest, IgnoredRowsHaveZeroLossAndGradient) {
  const int N = 3, V = 5;
  const std::vector<float> logits = ToFloat(RandomVector(N * V, 1, -3, 3));
  const std::vector<int32_t> targets = {kIgnore, 4, kIgnore};
  std::vector<float> losses(N), lse(N), dlogits(N * V, 123.0f);
  cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), N, V, 0.1f,
                        kIgnore);
  cross_entropy_backward(dlogits.data(), logits.data(), lse.data(), targets.data(), 1.0f, N, V,
                         0.1f, kIgnore);
  EXPECT_EQ(losses[0], 0.0f);
  EXPECT_EQ(losses[2], 0.0f);
  EXPECT_GT(losses[1], 0.0f);
  for (int v = 0; v < V; ++v) {
    EXPECT_EQ(dlogits[0 * V + v], 0.0f);
    EXPECT_EQ(dlogits[2 * V + v], 0.0f);
  }
}

TEST(CrossEntropyTest, FloatMatchesDoubleReference) {
  const int N = 9, V = 37;
  const std::vector<double> logits = RandomVector(N * V, 2, -8, 8);
  std::vector<int32_t> targets(N);
  for (int n = 0; n < N; ++n) targets[n] = n % 3 == 1 ? kIgnore : (n * 11) % V;
  const std::vector<float> logits_f = ToFloat(logits);
  for (double eps : {0.0, 0.1}) {
    std::vector<float> losses(N), lse(N);
    cross_entropy_forward(losses.data(), lse.data(), logits_f.data(), targets.data(), N, V,
                          static_cast<float>(eps), kIgnore);
    EXPECT_LT(deepnet::testing::MaxRelativeError(losses, ReferenceLosses(logits, targets, V, eps)),
              1e-5)
        << "eps=" << eps;
  }
}

TEST(CrossEntropyTest, LargeLogitsStayFinite) {
  const std::vector<float> logits = {1000.0f, -1000.0f, 999.0f};
  const std::vector<int32_t> targets = {1};
  float loss = 0, lse = 0;
  cross_entropy_forward(&loss, &lse, logits.data(), targets.data(), 1, 3, 0.1f, kIgnore);
  std::vector<float> dlogits(3);
  cross_entropy_backward(dlogits.data(), logits.data(), &lse, targets.data(), 1.0f, 1, 3, 0.1f,
                         kIgnore);
  EXPECT_TRUE(std::isfinite(loss));
  // lse = 1000 + log(1 + e⁻¹); NLL = lse + 1000; smoothing term = lse − 999/3.
  EXPECT_NEAR(loss, 0.9 * 2000.3132617 + 0.1 * (1000.3132617 - 333.0), 1e-2);
  for (float d : dlogits) EXPECT_TRUE(std::isfinite(d));
}

// dloss · Σ_n loss_n with dloss = 1 / (non-ignored rows): the trainer's mean over tokens.
void CheckGradient(double eps) {
  const int N = 5, V = 6;
  std::vector<double> logits = RandomVector(N * V, 3, -2, 2);
  const std::vector<int32_t> targets = {3, kIgnore, 0, 5, kIgnore};
  const double dloss = 1.0 / 3.0;
  std::vector<double> losses(N), lse(N), dlogits(N * V);
  cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), N, V, eps,
                        kIgnore);
  cross_entropy_backward(dlogits.data(), logits.data(), lse.data(), targets.data(), dloss, N, V,
                         eps, kIgnore);
  deepnet::testing::ExpectGradientMatches("dlogits", logits, dlogits, [&] {
    cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), N, V, eps,
                          kIgnore);
    double total = 0.0;
    for (double l : losses) total += l;
    return dloss * total;
  });
}

TEST(CrossEntropyTest, GradientMatchesFiniteDifferencesNoSmoothing) { CheckGradient(0.0); }

TEST(CrossEntropyTest, GradientMatchesFiniteDifferencesWithSmoothing) { CheckGradient(0.1); }

TEST(CrossEntropyTest, IndependentOfThreadCount) {
  const int N = 64, V = 1000;
  const std::vector<float> logits = ToFloat(RandomVector(N * V, 4, -5, 5));
  std::vector<int32_t> targets(N);
  for (int n = 0; n < N; ++n) targets[n] = (n * 37) % V;
  auto run = [&](int threads, std::vector<float>& losses, std::vector<float>& dlogits) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> lse(N);
    cross_entropy_forward(losses.data(), lse.data(), logits.data(), targets.data(), N, V, 0.1f,
                          kIgnore);
    cross_entropy_backward(dlogits.data(), logits.data(), lse.data(), targets.data(), 0.5f, N, V,
                           0.1f, kIgnore);
    omp_set_num_threads(saved);
  };
  std::vector<float> losses1(N), losses2(N), dlogits1(N * V), dlogits2(N * V);
  run(1, losses1, dlogits1);
  run(2, losses2, dlogits2);
  EXPECT_EQ(0, std::memcmp(losses1.data(), losses2.data(), N * sizeof(float)));
  EXPECT_EQ(0, std::memcmp(dlogits1.data(), dlogits2.data(), N * V * sizeof(float)));
}

}  // namespace
}  // namespace deepnet::cpu
