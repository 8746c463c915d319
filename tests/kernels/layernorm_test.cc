// Tests for layernorm.h: plain LayerNorm and the fused DeepNorm residual + LayerNorm, against a
// naive double reference, finite differences and the unfused sequence. Letters: N rows, C channels.
#include "kernels/cpu/layernorm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <functional>
#include <vector>

#include "tests/kernels/gradcheck.h"

namespace deepnet::cpu {
namespace {

using testing::Dot;
using testing::ExpectGradientMatches;
using testing::MaxRelativeError;
using testing::RandomVector;
using testing::ToFloat;

constexpr double kEps = 1e-5;

std::vector<double> ToDouble(const std::vector<float>& v) {
  return std::vector<double>(v.begin(), v.end());
}

// Runs `body` with `threads` OpenMP threads, then restores the previous count.
void WithThreads(int threads, const std::function<void()>& body) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(threads);
  body();
  omp_set_num_threads(saved);
}

struct LayerNormResult {
  std::vector<double> y, mean, rstd;
};

LayerNormResult NaiveLayerNorm(const std::vector<double>& x, const std::vector<double>& gamma,
                               const std::vector<double>& beta, int N, int C) {
  LayerNormResult r{std::vector<double>(N * C), std::vector<double>(N), std::vector<double>(N)};
  for (int n = 0; n < N; ++n) {
    double mean = 0, var = 0;
    for (int c = 0; c < C; ++c) mean += x[n * C + c] / C;
    for (int c = 0; c < C; ++c) var += (x[n * C + c] - mean) * (x[n * C + c] - mean) / C;
    r.mean[n] = mean;
    r.rstd[n] = 1 / std::sqrt(var + kEps);
    for (int c = 0; c < C; ++c)
      r.y[n * C + c] = (x[n * C + c] - mean) * r.rstd[n] * gamma[c] + beta[c];
  }
  return r;
}

struct Shape {
  int N, C;
};

// Shapes with N = 1, C = 1 (y = beta), odd sizes, and enough rows for several reduction blocks.
const Shape kShapes[] = {{1, 8}, {4, 1}, {7, 13}, {70, 64}};

TEST(LayerNormTest, ForwardMatchesNaiveReference) {
  for (const Shape s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    // An offset of 3 checks that the variance does not cancel against a large mean.
    const auto x = ToFloat(RandomVector(s.N * s.C, 1, 2.0, 4.0));
    const auto gamma = ToFloat(RandomVector(s.C, 2));
    const auto beta = ToFloat(RandomVector(s.C, 3));
    std::vector<float> y(s.N * s.C), mean(s.N), rstd(s.N);
    layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), gamma.data(), beta.data(), s.N,
                      s.C, static_cast<float>(kEps));
    const auto expected = NaiveLayerNorm(ToDouble(x), ToDouble(gamma), ToDouble(beta), s.N, s.C);
    EXPECT_LE(MaxRelativeError(y, expected.y), 1e-5);
    EXPECT_LE(MaxRelativeError(mean, expected.mean), 1e-6);
    // rstd = 1/√eps ≈ 316 when C = 1: compare relative to its size.
    for (int n = 0; n < s.N; ++n) EXPECT_NEAR(rstd[n] / expected.rstd[n], 1.0, 1e-5);
  }
}

TEST(LayerNormTest, GradientsMatchFiniteDifferences) {
  for (const Shape s : {Shape{3, 5}, Shape{1, 7}, Shape{2, 1}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    auto x = RandomVector(s.N * s.C, 4);
    auto gamma = RandomVector(s.C, 5);
    auto beta = RandomVector(s.C, 6);
    const auto dy = RandomVector(s.N * s.C, 7);
    std::vector<double> y(s.N * s.C), mean(s.N), rstd(s.N);
    auto loss = [&] {
      layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), gamma.data(), beta.data(),
                        s.N, s.C, kEps);
      return Dot(dy, y);
    };
    loss();
    std::vector<double> dx(x.size()), dgamma(s.C, 0.0), dbeta(s.C, 0.0);
    layernorm_backward(dx.data(), dgamma.data(), dbeta.data(), dy.data(), x.data(), gamma.data(),
                       mean.data(), rstd.data(), s.N, s.C);
    ExpectGradientMatches("dx", x, dx, loss);
    ExpectGradientMatches("dgamma", gamma, dgamma, loss);
    ExpectGradientMatches("dbeta", beta, dbeta, loss);
  }
}

TEST(LayerNormTest, ParameterGradientsAccumulateInputGradientOverwrites) {
  const int N = 5, C = 6;
  const auto x = RandomVector(N * C, 8);
  const auto gamma = RandomVector(C, 9);
  const auto beta = RandomVector(C, 10);
  const auto dy = RandomVector(N * C, 11);
  std::vector<double> y(N * C), mean(N), rstd(N);
  layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), gamma.data(), beta.data(), N, C,
                    kEps);
  std::vector<double> dx(N * C, 42.0), dgamma(C, 0.0), dbeta(C, 0.0);
  auto backward = [&] {
    layernorm_backward(dx.data(), dgamma.data(), dbeta.data(), dy.data(), x.data(), gamma.data(),
                       mean.data(), rstd.data(), N, C);
  };
  backward();
  const auto dx_once = dx, dgamma_once = dgamma, dbeta_once = dbeta;
  backward();
  EXPECT_EQ(dx, dx_once);
  for (int c = 0; c < C; ++c) {
    EXPECT_DOUBLE_EQ(dgamma[c], 2 * dgamma_once[c]);
    EXPECT_DOUBLE_EQ(dbeta[c], 2 * dbeta_once[c]);
  }
}

// Inputs of one DeepNorm problem in float.
struct DeepNormInputs {
  DeepNormInputs(int N, int C)
      : x(ToFloat(RandomVector(N * C, 12))),
        g(ToFloat(RandomVector(N * C, 13))),
        gamma(ToFloat(RandomVector(C, 14))),
        beta(ToFloat(RandomVector(C, 15))),
        dy(ToFloat(RandomVector(N * C, 16))) {}
  std::vector<float> x, g, gamma, beta, dy;
};

constexpr float kAlpha = 2.3f;  // (2·14)^(1/4) ≈ 2.3: a 14-layer encoder's DeepNorm α

TEST(DeepNormTest, ForwardEqualsLayerNormOfScaledSum) {
  for (const Shape s : kShapes) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    const DeepNormInputs in(s.N, s.C);
    std::vector<float> z(s.N * s.C);
    for (size_t i = 0; i < z.size(); ++i) z[i] = kAlpha * in.x[i] + in.g[i];
    std::vector<float> expected(z.size()), expected_mean(s.N), expected_rstd(s.N);
    layernorm_forward(expected.data(), expected_mean.data(), expected_rstd.data(), z.data(),
                      in.gamma.data(), in.beta.data(), s.N, s.C, static_cast<float>(kEps));
    std::vector<float> y(z.size()), mean(s.N), rstd(s.N);
    deepnorm_forward(y.data(), mean.data(), rstd.data(), in.x.data(), in.g.data(), in.gamma.data(),
                     in.beta.data(), kAlpha, s.N, s.C, static_cast<float>(kEps));
    EXPECT_LE(MaxRelativeError(y, expected), 1e-6);
    EXPECT_LE(MaxRelativeError(mean, expected_mean), 1e-6);
    for (int n = 0; n < s.N; ++n) EXPECT_NEAR(rstd[n] / expected_rstd[n], 1.0, 1e-6);
  }
}

TEST(DeepNormTest, ForwardMayOverwriteXOrG) {
  const int N = 7, C = 13;
  const DeepNormInputs in(N, C);
  std::vector<float> y(N * C), mean(N), rstd(N);
  deepnorm_forward(y.data(), mean.data(), rstd.data(), in.x.data(), in.g.data(), in.gamma.data(),
                   in.beta.data(), kAlpha, N, C, static_cast<float>(kEps));
  auto x_out = in.x;
  deepnorm_forward(x_out.data(), mean.data(), rstd.data(), x_out.data(), in.g.data(),
                   in.gamma.data(), in.beta.data(), kAlpha, N, C, static_cast<float>(kEps));
  EXPECT_EQ(x_out, y);
  auto g_out = in.g;
  deepnorm_forward(g_out.data(), mean.data(), rstd.data(), in.x.data(), g_out.data(),
                   in.gamma.data(), in.beta.data(), kAlpha, N, C, static_cast<float>(kEps));
  EXPECT_EQ(g_out, y);
}

TEST(DeepNormTest, GradientsMatchFiniteDifferences) {
  for (const Shape s : {Shape{3, 5}, Shape{1, 7}, Shape{2, 1}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    const double alpha = 1.7;
    auto x = RandomVector(s.N * s.C, 17);
    auto g = RandomVector(s.N * s.C, 18);
    auto gamma = RandomVector(s.C, 19);
    auto beta = RandomVector(s.C, 20);
    const auto dy = RandomVector(s.N * s.C, 21);
    std::vector<double> y(s.N * s.C), mean(s.N), rstd(s.N);
    auto loss = [&] {
      deepnorm_forward(y.data(), mean.data(), rstd.data(), x.data(), g.data(), gamma.data(),
                       beta.data(), alpha, s.N, s.C, kEps);
      return Dot(dy, y);
    };
    loss();
    std::vector<double> dx(x.size()), dg(g.size()), dgamma(s.C, 0.0), dbeta(s.C, 0.0);
    deepnorm_backward(dx.data(), dg.data(), dgamma.data(), dbeta.data(), dy.data(), x.data(),
                      g.data(), gamma.data(), mean.data(), rstd.data(), alpha, s.N, s.C);
    ExpectGradientMatches("dx", x, dx, loss);
    ExpectGradientMatches("dg", g, dg, loss);
    ExpectGradientMatches("dgamma", gamma, dgamma, loss);
    ExpectGradientMatches("dbeta", beta, dbeta, loss);
  }
}

// dz from layernorm_backward on z = α·x + g gives dx = α·dz and dg = dz.
TEST(DeepNormTest, BackwardMatchesLayerNormBackwardOfScaledSum) {
  const int N = 70, C = 64;
  const DeepNormInputs in(N, C);
  std::vector<float> z(N * C), y(N * C), mean(N), rstd(N);
  for (size_t i = 0; i < z.size(); ++i) z[i] = kAlpha * in.x[i] + in.g[i];
  layernorm_forward(y.data(), mean.data(), rstd.data(), z.data(), in.gamma.data(), in.beta.data(),
                    N, C, static_cast<float>(kEps));
  std::vector<float> dz(N * C), dgamma_ln(C, 0.0f), dbeta_ln(C, 0.0f);
  layernorm_backward(dz.data(), dgamma_ln.data(), dbeta_ln.data(), in.dy.data(), z.data(),
                     in.gamma.data(), mean.data(), rstd.data(), N, C);
  std::vector<float> dx(N * C), dg(N * C), dgamma(C, 0.0f), dbeta(C, 0.0f);
  deepnorm_backward(dx.data(), dg.data(), dgamma.data(), dbeta.data(), in.dy.data(), in.x.data(),
                    in.g.data(), in.gamma.data(), mean.data(), rstd.data(), kAlpha, N, C);
  std::vector<double> alpha_dz(dz.size());
  for (size_t i = 0; i < dz.size(); ++i) alpha_dz[i] = double{kAlpha} * dz[i];
  EXPECT_LE(MaxRelativeError(dx, alpha_dz), 1e-5);
  EXPECT_LE(MaxRelativeError(dg, dz), 1e-5);
  EXPECT_LE(MaxRelativeError(dgamma, dgamma_ln), 1e-5);
  EXPECT_LE(MaxRelativeError(dbeta, dbeta_ln), 1e-6);
}

TEST(DeepNormTest, BackwardOutputsMayAliasDyOrBeNull) {
  const int N = 7, C = 13;
  const DeepNormInputs in(N, C);
  std::vector<float> y(N * C), mean(N), rstd(N);
  deepnorm_forward(y.data(), mean.data(), rstd.data(), in.x.data(), in.g.data(), in.gamma.data(),
                   in.beta.data(), kAlpha, N, C, static_cast<float>(kEps));
  std::vector<float> dx(N * C), dg(N * C), dgamma(C, 0.0f), dbeta(C, 0.0f);
  deepnorm_backward(dx.data(), dg.data(), dgamma.data(), dbeta.data(), in.dy.data(), in.x.data(),
                    in.g.data(), in.gamma.data(), mean.data(), rstd.data(), kAlpha, N, C);
  auto backward_into = [&](float* dx_out, float* dg_out, const float* dy) {
    std::vector<float> dgamma_unused(C, 0.0f), dbeta_unused(C, 0.0f);
    deepnorm_backward(dx_out, dg_out, dgamma_unused.data(), dbeta_unused.data(), dy, in.x.data(),
                      in.g.data(), in.gamma.data(), mean.data(), rstd.data(), kAlpha, N, C);
  };
  auto dx_in_dy = in.dy;
  std::vector<float> dg_separate(N * C);
  backward_into(dx_in_dy.data(), dg_separate.data(), dx_in_dy.data());
  EXPECT_EQ(dx_in_dy, dx);
  EXPECT_EQ(dg_separate, dg);
  auto dg_in_dy = in.dy;
  backward_into(nullptr, dg_in_dy.data(), dg_in_dy.data());
  EXPECT_EQ(dg_in_dy, dg);
  auto dx_only = std::vector<float>(N * C);
  backward_into(dx_only.data(), nullptr, in.dy.data());
  EXPECT_EQ(dx_only, dx);
}

TEST(DeepNormTest, ParameterGradientsAccumulateInputGradientsOverwrite) {
  const int N = 5, C = 6;
  const DeepNormInputs in(N, C);
  std::vector<float> y(N * C), mean(N), rstd(N);
  deepnorm_forward(y.data(), mean.data(), rstd.data(), in.x.data(), in.g.data(), in.gamma.data(),
                   in.beta.data(), kAlpha, N, C, static_cast<float>(kEps));
  std::vector<float> dx(N * C, 42.0f), dg(N * C, -42.0f), dgamma(C, 0.0f), dbeta(C, 0.0f);
  auto backward = [&] {
    deepnorm_backward(dx.data(), dg.data(), dgamma.data(), dbeta.data(), in.dy.data(), in.x.data(),
                      in.g.data(), in.gamma.data(), mean.data(), rstd.data(), kAlpha, N, C);
  };
  backward();
  const auto dx_once = dx, dg_once = dg, dgamma_once = dgamma, dbeta_once = dbeta;
  backward();
  EXPECT_EQ(dx, dx_once);
  EXPECT_EQ(dg, dg_once);
  for (int c = 0; c < C; ++c) {
    EXPECT_FLOAT_EQ(dgamma[c], 2 * dgamma_once[c]);
    EXPECT_FLOAT_EQ(dbeta[c], 2 * dbeta_once[c]);
  }
}

// Large enough for the parallel path and several reduction blocks, with a ragged last block.
TEST(LayerNormTest, ResultsAreIndependentOfThreadCount) {
  const int N = 1001, C = 48;
  const DeepNormInputs in(N, C);
  struct Outputs {
    std::vector<float> y, mean, rstd, dx, dg, dgamma, dbeta, ln_dx, ln_dgamma, ln_dbeta;
  };
  auto run = [&] {
    Outputs o{std::vector<float>(N * C),   std::vector<float>(N),     std::vector<float>(N),
              std::vector<float>(N * C),   std::vector<float>(N * C), std::vector<float>(C, 0.0f),
              std::vector<float>(C, 0.0f), std::vector<float>(N * C), std::vector<float>(C, 0.0f),
              std::vector<float>(C, 0.0f)};
    deepnorm_forward(o.y.data(), o.mean.data(), o.rstd.data(), in.x.data(), in.g.data(),
                     in.gamma.data(), in.beta.data(), kAlpha, N, C, static_cast<float>(kEps));
    deepnorm_backward(o.dx.data(), o.dg.data(), o.dgamma.data(), o.dbeta.data(), in.dy.data(),
                      in.x.data(), in.g.data(), in.gamma.data(), o.mean.data(), o.rstd.data(),
                      kAlpha, N, C);
    layernorm_backward(o.ln_dx.data(), o.ln_dgamma.data(), o.ln_dbeta.data(), in.dy.data(),
                       in.x.data(), in.gamma.data(), o.mean.data(), o.rstd.data(), N, C);
    return o;
  };
  Outputs single, dual;
  WithThreads(1, [&] { single = run(); });
  WithThreads(2, [&] { dual = run(); });
  EXPECT_EQ(single.y, dual.y);
  EXPECT_EQ(single.dx, dual.dx);
  EXPECT_EQ(single.dg, dual.dg);
  EXPECT_EQ(single.dgamma, dual.dgamma);
  EXPECT_EQ(single.dbeta, dual.dbeta);
  EXPECT_EQ(single.ln_dx, dual.ln_dx);
  EXPECT_EQ(single.ln_dgamma, dual.ln_dgamma);
  EXPECT_EQ(single.ln_dbeta, dual.ln_dbeta);
}

}  // namespace
}  // namespace deepnet::cpu
