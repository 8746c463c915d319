// Philox4x32-10: Random123 known-answer vectors, the element layout of a stream, and uniformity.
#include "runtime/philox.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace deepnet {
namespace {

void ExpectWords(const Philox4x32& got, uint32_t w0, uint32_t w1, uint32_t w2, uint32_t w3) {
  EXPECT_EQ(got.v[0], w0);
  EXPECT_EQ(got.v[1], w1);
  EXPECT_EQ(got.v[2], w2);
  EXPECT_EQ(got.v[3], w3);
}

// Known-answer vectors from Random123 (kat_vectors, philox4x32 10 rounds).
TEST(PhiloxTest, KnownAnswerZeroCounterZeroKey) {
  ExpectWords(Philox4x32_10({{0, 0, 0, 0}}, 0, 0), 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8);
}

TEST(PhiloxTest, KnownAnswerAllOnes) {
  constexpr uint32_t kOnes = 0xffffffffu;
  ExpectWords(Philox4x32_10({{kOnes, kOnes, kOnes, kOnes}}, kOnes, kOnes), 0x408f276d, 0x41c83b0e,
              0xa20bc7c6, 0x6d5451fd);
}

TEST(PhiloxTest, KnownAnswerPiDigits) {
  ExpectWords(
      Philox4x32_10({{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0),
      0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);
}

TEST(PhiloxTest, StreamLaysOutCounterAndKey) {
  const RngStream stream{.seed = 0x299f31d0a4093822ull,
                         .step = 0x03707344,
                         .micro_batch = 0x13198a2e,
                         .site = 0x85a308d3};
  ExpectWords(PhiloxBlock(stream, 0x243f6a88), 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1);
}

TEST(PhiloxTest, UniformUsesFourWordsPerGroup) {
  const RngStream stream{.seed = 42, .step = 3, .micro_batch = 1, .site = 7};
  for (uint64_t index = 0; index < 64; ++index) {
    const Philox4x32 block = PhiloxBlock(stream, static_cast<uint32_t>(index / 4));
    EXPECT_EQ(PhiloxUniform(stream, index), UniformFromBits(block.v[index % 4])) << index;
  }
}

TEST(PhiloxTest, UniformFromBitsCoversZeroToOneExclusive) {
  EXPECT_EQ(UniformFromBits(0u), 0.0f);
  EXPECT_EQ(UniformFromBits(0xffu), 0.0f);  // only the top 24 bits count
  EXPECT_EQ(UniformFromBits(0x80000000u), 0.5f);
  EXPECT_EQ(UniformFromBits(0xffffffffu), 1.0f - 1.0f / 16777216.0f);
  EXPECT_LT(UniformFromBits(0xffffffffu), 1.0f);
}

TEST(PhiloxTest, UniformIsUniform) {
  const RngStream stream{.seed = 0x1234567890abcdefull, .step = 11, .micro_batch = 2, .site = 5};
  constexpr int kSamples = 1 << 18;
  constexpr int kBins = 16;
  std::vector<int> counts(kBins, 0);
  double sum = 0.0, sum_sq = 0.0;
  for (int i = 0; i < kSamples; ++i) {
    const double u = PhiloxUniform(stream, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
    sum_sq += u * u;
    ++counts[static_cast<int>(u * kBins)];
  }
  const double mean = sum / kSamples;
  const double variance = sum_sq / kSamples - mean * mean;
  // Standard error of the mean is sqrt(1/12 / 2^18) ≈ 5.6e-4: allow about 5 of them.
  EXPECT_NEAR(mean, 0.5, 3e-3);
  EXPECT_NEAR(variance, 1.0 / 12.0, 2e-3);
  double chi_square = 0.0;
  const double expected = static_cast<double>(kSamples) / kBins;
  for (int count : counts) chi_square += (count - expected) * (count - expected) / expected;
  EXPECT_LT(chi_square, 37.7);  // 99.9% quantile of χ² with 15 degrees of freedom
}

TEST(PhiloxTest, StreamsDiffer) {
  const RngStream base{.seed = 1, .step = 1, .micro_batch = 1, .site = 1};
  auto first_words = [](const RngStream& s) { return PhiloxBlock(s, 0).v[0]; };
  RngStream other = base;
  other.seed = 2;
  EXPECT_NE(first_words(base), first_words(other));
  other = base;
  other.seed = base.seed | (1ull << 40);  // the high half of the seed is the second key word
  EXPECT_NE(first_words(base), first_words(other));
  other = base;
  other.step = 2;
  EXPECT_NE(first_words(base), first_words(other));
  other = base;
  other.micro_batch = 2;
  EXPECT_NE(first_words(base), first_words(other));
  other = base;
  other.site = 2;
  EXPECT_NE(first_words(base), first_words(other));
}

}  // namespace
}  // namespace deepnet
