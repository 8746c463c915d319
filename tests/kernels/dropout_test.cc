// Dropout: keep rate, values, mask reproducibility per stream, backward against forward.
#include "kernels/cpu/dropout.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/kernels/gradcheck.h"

namespace deepnet::cpu {
namespace {

using deepnet::testing::RandomVector;
using deepnet::testing::ToFloat;

constexpr RngStream kStream{.seed = 0xdeadbeef12345ull, .step = 4, .micro_batch = 1, .site = 9};

// Which of n elements survive: forward on a vector of ones.
std::vector<bool> KeptMask(int64_t n, float p, const RngStream& stream) {
  std::vector<float> ones(n, 1.0f), y(n);
  dropout_forward(y.data(), ones.data(), n, p, stream);
  std::vector<bool> kept(n);
  for (int64_t i = 0; i < n; ++i) kept[i] = y[i] != 0.0f;
  return kept;
}

TEST(DropoutTest, EmpiricalKeepRate) {
  constexpr int64_t kN = 1 << 20;
  for (float p : {0.1f, 0.3f, 0.5f, 0.9f}) {
    const std::vector<bool> kept = KeptMask(kN, p, kStream);
    int64_t count = 0;
    for (bool k : kept) count += k;
    // Standard deviation of the rate is at most 0.5/√n ≈ 4.9e-4: allow about 6 of them.
    EXPECT_NEAR(static_cast<double>(count) / kN, 1.0 - p, 3e-3) << "p=" << p;
  }
}

TEST(DropoutTest, KeptValuesAreScaledDroppedAreZero) {
  constexpr int64_t kN = 1001;  // not a multiple of four
  const std::vector<float> x = ToFloat(RandomVector(kN, 1));
  // Rates that are not binary fractions too: the kernel's integer threshold must agree with the
  // float test of dropout_keep on every element.
  for (const float p : {0.1f, 0.25f, 0.3f, 0.999f, 1.0f}) {
    std::vector<float> y(kN);
    dropout_forward(y.data(), x.data(), kN, p, kStream);
    for (int64_t i = 0; i < kN; ++i) {
      const float expected = dropout_keep(kStream, i, p) ? x[i] * (1.0f / (1.0f - p)) : 0.0f;
      EXPECT_EQ(y[i], expected) << "p=" << p << " element " << i;
    }
  }
}

TEST(DropoutTest, ZeroRateCopies) {
  const std::vector<double> x = RandomVector(37, 2);
  std::vector<double> y(37);
  dropout_forward(y.data(), x.data(), 37, 0.0f, kStream);
  EXPECT_EQ(y, x);
  dropout_backward(y.data(), x.data(), 37, 0.0f, kStream);
  EXPECT_EQ(y, x);
}

TEST(DropoutTest, SameStreamSameMask) {
  EXPECT_EQ(KeptMask(4099, 0.5f, kStream), KeptMask(4099, 0.5f, kStream));
}

TEST(DropoutTest, DifferentStreamsGiveDifferentMasks) {
  constexpr int64_t kN = 1 << 14;
  const float p = 0.5f;
  const std::vector<bool> base = KeptMask(kN, p, kStream);
  auto fraction_differing = [&](const RngStream& other) {
    const std::vector<bool> mask = KeptMask(kN, p, other);
    int64_t differing = 0;
    for (int64_t i = 0; i < kN; ++i) differing += mask[i] != base[i];
    return static_cast<double>(differing) / kN;
  };
  // Independent masks differ in 2·p·(1 − p) = 1/2 of the elements.
  RngStream other = kStream;
  other.site += 1;
  EXPECT_NEAR(fraction_differing(other), 0.5, 0.03) << "site";
  other = kStream;
  other.micro_batch += 1;
  EXPECT_NEAR(fraction_differing(other), 0.5, 0.03) << "micro_batch";
  other = kStream;
  other.step += 1;
  EXPECT_NEAR(fraction_differing(other), 0.5, 0.03) << "step";
  other = kStream;
  other.seed += 1;
  EXPECT_NEAR(fraction_differing(other), 0.5, 0.03) << "seed";
}

TEST(DropoutTest, BackwardUsesTheForwardMask) {
  constexpr int64_t kN = 2050;
  const float p = 0.4f;
  const std::vector<float> x = ToFloat(RandomVector(kN, 3));
  std::vector<float> y(kN), dx(kN);
  dropout_forward(y.data(), x.data(), kN, p, kStream);
  dropout_backward(dx.data(), x.data(), kN, p, kStream);
  EXPECT_EQ(0, std::memcmp(y.data(), dx.data(), kN * sizeof(float)));
}

TEST(DropoutTest, InPlaceMatchesOutOfPlace) {
  constexpr int64_t kN = 515;
  const std::vector<double> x = RandomVector(kN, 4);
  std::vector<double> y(kN), in_place = x;
  dropout_forward(y.data(), x.data(), kN, 0.3f, kStream);
  dropout_forward(in_place.data(), in_place.data(), kN, 0.3f, kStream);
  EXPECT_EQ(y, in_place);
  std::vector<double> dx(kN), grad_in_place = x;
  dropout_backward(dx.data(), x.data(), kN, 0.3f, kStream);
  dropout_backward(grad_in_place.data(), grad_in_place.data(), kN, 0.3f, kStream);
  EXPECT_EQ(dx, grad_in_place);
}

TEST(DropoutTest, RangeIsTheSliceOfTheWholeMask) {
  constexpr int64_t kN = 1000;
  const std::vector<float> x = ToFloat(RandomVector(kN, 8));
  std::vector<float> whole(kN);
  dropout_forward(whole.data(), x.data(), kN, 0.3f, kStream);
  // Slices that start and end inside chunks of 64, span several, or are empty.
  for (const auto& [first, n] : {std::pair<int64_t, int64_t>{0, kN},
                                 {5, 1},
                                 {37, 200},
                                 {64, 64},
                                 {100, 0},
                                 {999, 1},
                                 {130, 870}}) {
    std::vector<float> slice(x.begin() + first, x.begin() + first + n);
    dropout_range(slice.data(), slice.data(), n, static_cast<uint64_t>(first), 0.3f, kStream);
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_EQ(slice[i], whole[first + i]) << "first " << first << " element " << i;
    }
  }
}

TEST(DropoutTest, GradientMatchesFiniteDifferences) {
  constexpr int64_t kN = 23;
  const float p = 0.3f;
  std::vector<double> x = RandomVector(kN, 5);
  const std::vector<double> w = RandomVector(kN, 6);
  std::vector<double> dx(kN);
  dropout_backward(dx.data(), w.data(), kN, p, kStream);
  std::vector<double> y(kN);
  deepnet::testing::ExpectGradientMatches("dx", x, dx, [&] {
    dropout_forward(y.data(), x.data(), kN, p, kStream);
    return deepnet::testing::Dot(w, y);
  });
}

TEST(DropoutTest, IndependentOfThreadCount) {
  constexpr int64_t kN = 100003;
  const std::vector<float> x = ToFloat(RandomVector(kN, 7));
  std::vector<float> one(kN), two(kN);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  dropout_forward(one.data(), x.data(), kN, 0.2f, kStream);
  omp_set_num_threads(2);
  dropout_forward(two.data(), x.data(), kN, 0.2f, kStream);
  omp_set_num_threads(saved);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), kN * sizeof(float)));
}

}  // namespace
}  // namespace deepnet::cpu
