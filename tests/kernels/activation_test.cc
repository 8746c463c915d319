// Tests for activation.h (ReLU, GELU) and elementwise.h (add, axpy, scale): known values, naive
// double references, finite differences, overwrite and aliasing.
#include "kernels/cpu/activation.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <vector>

#include "kernels/cpu/elementwise.h"
#include "tests/kernels/gradcheck.h"

namespace deepnet::cpu {
namespace {

using testing::Dot;
using testing::ExpectGradientMatches;
using testing::MaxRelativeError;
using testing::RandomVector;
using testing::ToFloat;

// Random values with none in (−0.05, 0.05): ReLU's kink stays out of finite-difference reach.
std::vector<double> AwayFromZero(size_t n, uint32_t seed) {
  auto v = RandomVector(n, seed, -2.0, 2.0);
  for (double& x : v) x += x >= 0 ? 0.05 : -0.05;
  return v;
}

double NaiveGelu(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

TEST(GeluTest, ForwardMatchesKnownValues) {
  // 0.5·x·(1 + erf(x/√2)) evaluated independently.
  const std::vector<double> x = {1.0, -1.0, 2.0, -3.0, 0.5, 0.0};
  const std::vector<double> expected = {0.8413447460685429,  -0.15865525393145707,
                                        1.9544997361036416,  -0.00404969409489031,
                                        0.34573123063700656, 0.0};
  std::vector<double> y(x.size());
  gelu_forward(y.data(), x.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], expected[i], 1e-15) << "x=" << x[i];
  const std::vector<double> expected_slope = {1.0833154705876864, -0.08331547058768629,
                                              1.085231801078197,  -0.011945647204183918,
                                              0.8674951246561629, 0.5};
  const std::vector<double> ones(x.size(), 1.0);
  std::vector<double> slope(x.size());
  gelu_backward(slope.data(), ones.data(), x.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(slope[i], expected_slope[i], 1e-15);
}

TEST(ActivationTest, FloatForwardMatchesNaive) {
  for (const int64_t n : {int64_t{1}, int64_t{91}, int64_t{1} << 16}) {  // 2^16 runs in parallel
    const auto x = ToFloat(RandomVector(n, 1, -4.0, 4.0));
    std::vector<float> relu(n), gelu(n);
    relu_forward(relu.data(), x.data(), n);
    gelu_forward(gelu.data(), x.data(), n);
    std::vector<double> relu_expected(n), gelu_expected(n);
    for (int64_t i = 0; i < n; ++i) {
      relu_expected[i] = x[i] > 0 ? x[i] : 0.0;
      gelu_expected[i] = NaiveGelu(x[i]);
    }
    EXPECT_EQ(MaxRelativeError(relu, relu_expected), 0.0) << "n=" << n;
    EXPECT_LE(MaxRelativeError(gelu, gelu_expected), 1e-6) << "n=" << n;
  }
}

TEST(ActivationTest, GradientsMatchFiniteDifferences) {
  const int64_t n = 17;
  auto x = AwayFromZero(n, 2);
  const auto dy = RandomVector(n, 3);
  std::vector<double> y(n), dx(n, 99.0);
  auto relu_loss = [&] {
    relu_forward(y.data(), x.data(), n);
    return Dot(dy, y);
  };
  relu_backward(dx.data(), dy.data(), x.data(), n);
  ExpectGradientMatches("relu dx", x, dx, relu_loss);
  auto gelu_loss = [&] {
    gelu_forward(y.data(), x.data(), n);
    return Dot(dy, y);
  };
  std::fill(dx.begin(), dx.end(), 99.0);
  gelu_backward(dx.data(), dy.data(), x.data(), n);
  ExpectGradientMatches("gelu dx", x, dx, gelu_loss);
}

TEST(ActivationTest, BackwardOverwritesAndMayAliasDy) {
  const int64_t n = 50;
  const auto x = ToFloat(AwayFromZero(n, 4));
  const auto dy = ToFloat(RandomVector(n, 5));
  for (const bool gelu : {false, true}) {
    auto backward = gelu ? gelu_backward<float> : relu_backward<float>;
    std::vector<float> dx(n, 123.0f);
    backward(dx.data(), dy.data(), x.data(), n);
    std::vector<float> again = dx;
    backward(again.data(), dy.data(), x.data(), n);
    EXPECT_EQ(again, dx) << "gelu=" << gelu;  // overwrite, not accumulate
    auto in_place = dy;
    backward(in_place.data(), in_place.data(), x.data(), n);
    EXPECT_EQ(in_place, dx) << "gelu=" << gelu;
  }
}

TEST(ElementwiseTest, AddAxpyScaleMatchNaiveAndAlias) {
  for (const int64_t n : {int64_t{1}, int64_t{37}, int64_t{1} << 16}) {
    const auto a = ToFloat(RandomVector(n, 6));
    const auto b = ToFloat(RandomVector(n, 7));
    std::vector<float> sum(n), scaled(n);
    add(sum.data(), a.data(), b.data(), n);
    scale(scaled.data(), a.data(), 2.5f, n);
    auto accumulated = b;
    axpy(accumulated.data(), a.data(), -0.75f, n);
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(sum[i], a[i] + b[i]);
      ASSERT_EQ(scaled[i], 2.5f * a[i]);
      ASSERT_EQ(accumulated[i], b[i] + -0.75f * a[i]);
    }
    auto into_a = a, into_b = b, in_place = a;
    add(into_a.data(), into_a.data(), b.data(), n);
    add(into_b.data(), a.data(), into_b.data(), n);
    scale(in_place.data(), in_place.data(), 2.5f, n);
    EXPECT_EQ(into_a, sum);
    EXPECT_EQ(into_b, sum);
    EXPECT_EQ(in_place, scaled);
  }
}

TEST(ElementwiseTest, DoublePrecisionAxpyAccumulates) {
  const int64_t n = 9;
  const auto x = RandomVector(n, 8);
  std::vector<double> y(n, 0.0);
  axpy(y.data(), x.data(), 1.0, n);
  axpy(y.data(), x.data(), 1.0, n);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(y[i], 2 * x[i]);
}

// Zeroing touches exactly the bytes asked for, in the serial and the parallel size range.
TEST(ElementwiseTest, ZeroBytesClearsExactlyTheRange) {
  for (const size_t bytes : {size_t{0}, size_t{5}, size_t{65536}, (size_t{1} << 21) + 3}) {
    std::vector<unsigned char> buffer(bytes + 2, 0xAB);
    zero_bytes(buffer.data() + 1, bytes);
    EXPECT_EQ(buffer.front(), 0xAB);
    EXPECT_EQ(buffer.back(), 0xAB);
    for (size_t i = 1; i <= bytes; ++i) ASSERT_EQ(buffer[i], 0) << "byte " << i << " of " << bytes;
  }
}

}  // namespace
}  // namespace deepnet::cpu
