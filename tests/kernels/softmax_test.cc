// Tests for softmax.h: row softmax forward and backward against a naive double reference and
// finite differences. Letters: N rows, C entries per row.
#include "kernels/cpu/softmax.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "tests/kernels/gradcheck.h"

namespace deepnet::cpu {
namespace {

using testing::Dot;
using testing::ExpectGradientMatches;
using testing::MaxRelativeError;
using testing::RandomVector;
using testing::ToFloat;

std::vector<double> NaiveSoftmax(const std::vector<float>& x, int N, int C) {
  std::vector<double> y(N * C);
  for (int n = 0; n < N; ++n) {
    double max = -std::numeric_limits<double>::infinity(), sum = 0;
    for (int c = 0; c < C; ++c) max = std::max(max, double{x[n * C + c]});
    for (int c = 0; c < C; ++c) sum += std::exp(x[n * C + c] - max);
    for (int c = 0; c < C; ++c) y[n * C + c] = std::exp(x[n * C + c] - max) / sum;
  }
  return y;
}

struct Shape {
  int N, C;
};

TEST(SoftmaxTest, ForwardMatchesNaiveRowsSumToOneAndMayAliasInput) {
  for (const Shape s : {Shape{1, 1}, Shape{7, 13}, Shape{3, 100}, Shape{1, 5}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    const auto x = ToFloat(RandomVector(s.N * s.C, 1, -5.0, 5.0));
    std::vector<float> y(s.N * s.C);
    softmax_forward(y.data(), x.data(), s.N, s.C);
    EXPECT_LE(MaxRelativeError(y, NaiveSoftmax(x, s.N, s.C)), 1e-6);
    auto in_place = x;
    softmax_forward(in_place.data(), in_place.data(), s.N, s.C);
    EXPECT_EQ(in_place, y);
    for (int n = 0; n < s.N; ++n) {
      double sum = 0;
      for (int c = 0; c < s.C; ++c) sum += y[n * s.C + c];
      EXPECT_NEAR(sum, 1.0, 1e-5);
    }
  }
}

TEST(SoftmaxTest, LargeInputsDoNotOverflow) {
  const int N = 2, C = 9;
  auto x = ToFloat(RandomVector(N * C, 2, 1000.0, 1010.0));
  x[3] = -1000.0f;
  std::vector<float> y(N * C);
  softmax_forward(y.data(), x.data(), N, C);
  for (float v : y) EXPECT_TRUE(std::isfinite(v));
  EXPECT_LE(MaxRelativeError(y, NaiveSoftmax(x, N, C)), 1e-6);
}

TEST(SoftmaxTest, MaskedEntriesGetZeroAndFullyMaskedRowsGiveZeros) {
  const float inf = std::numeric_limits<float>::infinity();
  const int N = 2, C = 4;
  const std::vector<float> x = {0.5f, -inf, 1.5f, -inf, -inf, -inf, -inf, -inf};
  std::vector<float> y(N * C, 7.0f);
  softmax_forward(y.data(), x.data(), N, C);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[3], 0.0f);
  EXPECT_NEAR(y[0] + y[2], 1.0f, 1e-6);
  for (int c = 0; c < C; ++c) EXPECT_EQ(y[C + c], 0.0f);
}

TEST(SoftmaxTest, GradientMatchesFiniteDifferences) {
  for (const Shape s : {Shape{3, 5}, Shape{1, 1}, Shape{2, 7}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C);
    auto x = RandomVector(s.N * s.C, 3, -2.0, 2.0);
    const auto dy = RandomVector(s.N * s.C, 4);
    std::vector<double> y(s.N * s.C);
    auto loss = [&] {
      softmax_forward(y.data(), x.data(), s.N, s.C);
      return Dot(dy, y);
    };
    loss();
    std::vector<double> dx(x.size(), 99.0);  // overwritten
    softmax_backward(dx.data(), dy.data(), y.data(), s.N, s.C);
    ExpectGradientMatches("dx", x, dx, loss);
  }
}

TEST(SoftmaxTest, BackwardMatchesNaiveAndMayAliasDy) {
  const int N = 7, C = 13;
  const auto x = ToFloat(RandomVector(N * C, 5, -3.0, 3.0));
  const auto dy = ToFloat(RandomVector(N * C, 6));
  std::vector<float> y(N * C), dx(N * C);
  softmax_forward(y.data(), x.data(), N, C);
  softmax_backward(dx.data(), dy.data(), y.data(), N, C);
  std::vector<double> expected(N * C);
  for (int n = 0; n < N; ++n) {
    double dot = 0;
    for (int c = 0; c < C; ++c) dot += double{dy[n * C + c]} * y[n * C + c];
    for (int c = 0; c < C; ++c) expected[n * C + c] = y[n * C + c] * (dy[n * C + c] - dot);
  }
  EXPECT_LE(MaxRelativeError(dx, expected), 1e-6);
  auto in_place = dy;
  softmax_backward(in_place.data(), in_place.data(), y.data(), N, C);
  EXPECT_EQ(in_place, dx);
}

TEST(SoftmaxTest, ResultsAreIndependentOfThreadCount) {
  const int N = 300, C = 129;  // above the parallel threshold
  const auto x = ToFloat(RandomVector(N * C, 7, -4.0, 4.0));
  const auto dy = ToFloat(RandomVector(N * C, 8));
  auto run = [&](int threads) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(threads);
    std::vector<float> y(N * C), dx(N * C);
    softmax_forward(y.data(), x.data(), N, C);
    softmax_backward(dx.data(), dy.data(), y.data(), N, C);
    omp_set_num_threads(saved);
    y.insert(y.end(), dx.begin(), dx.end());
    return y;
  };
  EXPECT_EQ(run(1), run(2));
}

}  // namespace
}  // namespace deepnet::cpu
