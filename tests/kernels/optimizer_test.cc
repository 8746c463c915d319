// AdamW against a hand-written double reference; the deterministic sum of squares.
#include "kernels/cpu/optimizer.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "tests/kernels/gradcheck.h"

namespace deepnet::cpu {
namespace {

using deepnet::testing::RandomVector;
using deepnet::testing::ToFloat;

// Textbook AdamW (Loshchilov & Hutter, with bias correction) in double, one element at a time.
struct ReferenceAdamW {
  std::vector<double> param, m, v;

  void Step(const std::vector<double>& grad, const AdamWConfig& c, int64_t t, double scale) {
    for (size_t i = 0; i < param.size(); ++i) {
      const double g = grad[i] * scale;
      m[i] = c.beta1 * m[i] + (1 - c.beta1) * g;
      v[i] = c.beta2 * v[i] + (1 - c.beta2) * g * g;
      const double m_hat = m[i] / (1 - std::pow(c.beta1, t));
      const double v_hat = v[i] / (1 - std::pow(c.beta2, t));
      param[i] -= c.lr * (m_hat / (std::sqrt(v_hat) + c.eps) + c.weight_decay * param[i]);
    }
  }
};

template <typename T>
void CompareOverSteps(double tolerance) {
  const int64_t n = 53;
  const AdamWConfig config{
      .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-8, .weight_decay = 0.1};
  ReferenceAdamW reference{RandomVector(n, 1), std::vector<double>(n, 0.0),
                           std::vector<double>(n, 0.0)};
  std::vector<T> param(reference.param.begin(), reference.param.end());
  std::vector<T> m(n, T(0)), v(n, T(0));
  for (int64_t step = 1; step <= 6; ++step) {
    const std::vector<double> grad = RandomVector(n, 10 + step, -2, 2);
    const double scale = step % 2 == 0 ? 0.5 : 1.0;  // clipping on every other step
    reference.Step(grad, config, step, scale);
    const std::vector<T> grad_t(grad.begin(), grad.end());
    adamw_update(param.data(), m.data(), v.data(), grad_t.data(), n, config, step,
                 static_cast<T>(scale));
    EXPECT_LT(deepnet::testing::MaxRelativeError(param, reference.param), tolerance) << step;
    EXPECT_LT(deepnet::testing::MaxRelativeError(m, reference.m), tolerance) << step;
    EXPECT_LT(deepnet::testing::MaxRelativeError(v, reference.v), tolerance) << step;
  }
}

TEST(AdamWTest, DoubleMatchesReference) { CompareOverSteps<double>(1e-13); }

TEST(AdamWTest, FloatMatchesReference) { CompareOverSteps<float>(2e-6); }

// With bias correction the first step moves every parameter by lr·sign(g) (eps aside).
TEST(AdamWTest, FirstStepMovesByLearningRate) {
  const AdamWConfig config{.lr = 0.05};
  std::vector<double> param = {1.0, -2.0, 0.5}, m(3, 0.0), v(3, 0.0);
  const std::vector<double> grad = {3.0, -0.001, 40.0};
  adamw_update(param.data(), m.data(), v.data(), grad.data(), 3, config, 1, 1.0);
  EXPECT_NEAR(param[0], 0.95, 1e-8);
  EXPECT_NEAR(param[1], -1.95, 1e-6);
  EXPECT_NEAR(param[2], 0.45, 1e-8);
}

// A zero gradient leaves only the decoupled decay: param·(1 − lr·wd).
TEST(AdamWTest, WeightDecayIsDecoupled) {
  const AdamWConfig config{.lr = 0.1, .weight_decay = 0.5};
  std::vector<float> param = {2.0f, -4.0f}, m(2, 0.0f), v(2, 0.0f);
  const std::vector<float> grad(2, 0.0f);
  adamw_update(param.data(), m.data(), v.data(), grad.data(), 2, config, 3, 1.0f);
  EXPECT_FLOAT_EQ(param[0], 2.0f * 0.95f);
  EXPECT_FLOAT_EQ(param[1], -4.0f * 0.95f);
}

TEST(SumOfSquaresTest, MatchesReferenceAcrossSizes) {
  for (int64_t n : {0, 1, 7, 4096, 4097, 100003}) {
    const std::vector<double> x = RandomVector(n, 20);
    double expected = 0.0;
    for (double value : x) expected += value * value;
    EXPECT_NEAR(sum_of_squares(x.data(), n), expected, 1e-12 * std::max(1.0, expected)) << n;
    const std::vector<float> xf = ToFloat(x);
    double expected_f = 0.0;
    for (float value : xf) expected_f += static_cast<double>(value) * value;
    EXPECT_NEAR(sum_of_squares(xf.data(), n), expected_f, 1e-12 * std::max(1.0, expected_f)) << n;
  }
}

TEST(SumOfSquaresTest, IndependentOfThreadCount) {
  const int64_t n = 300007;
  const std::vector<float> x = ToFloat(RandomVector(n, 21, -100, 100));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const double one = sum_of_squares(x.data(), n);
  omp_set_num_threads(2);
  const double two = sum_of_squares(x.data(), n);
  omp_set_num_threads(saved);
  EXPECT_EQ(one, two);
}

TEST(AdamWTest, IndependentOfThreadCount) {
  const int64_t n = 10001;
  const AdamWConfig config{.weight_decay = 0.01};
  const std::vector<float> grad = ToFloat(RandomVector(n, 22));
  const std::vector<float> start = ToFloat(RandomVector(n, 23));
  auto run = [&](int threads) {
    std::vector<float> param = start, m(n, 0.0f), v(n, 0.0f);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    for (int64_t step = 1; step <= 3; ++step) {
      adamw_update(param.data(), m.data(), v.data(), grad.data(), n, config, step, 0.7f);
    }
    omp_set_num_threads(saved);
    return param;
  };
  EXPECT_EQ(run(1), run(2));
}

}  // namespace
}  // namespace deepnet::cpu
