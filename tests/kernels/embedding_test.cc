// Embedding lookup and scatter-add gradient (repeated tokens, determinism), sinusoidal positions.
// N tokens, V vocab, C channels, B batch, T time.
#include "kernels/cpu/embedding.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "tests/kernels/gradcheck.h"

namespace deepnet::cpu {
namespace {

using deepnet::testing::RandomVector;
using deepnet::testing::ToFloat;

std::vector<int32_t> RandomTokens(int n, int vocab, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> dist(0, vocab - 1);
  std::vector<int32_t> tokens(n);
  for (int32_t& t : tokens) t = dist(gen);
  return tokens;
}

TEST(EmbeddingTest, ForwardLooksUpAndScales) {
  const int N = 7, V = 5, C = 3;
  const std::vector<int32_t> tokens = {4, 0, 2, 2, 1, 4, 3};
  const std::vector<double> table = RandomVector(V * C, 1);
  std::vector<double> out(N * C);
  embedding_forward(out.data(), tokens.data(), table.data(), N, V, C, 2.5);
  for (int n = 0; n < N; ++n) {
    for (int c = 0; c < C; ++c) EXPECT_EQ(out[n * C + c], table[tokens[n] * C + c] * 2.5);
  }
}

// The float scatter-add equals a sequential loop over n exactly: repeated tokens add in order.
TEST(EmbeddingTest, BackwardAccumulatesInTokenOrder) {
  const int N = 300, V = 11, C = 131;  // many repeats, channels not a multiple of the chunk
  const std::vector<int32_t> tokens = RandomTokens(N, V, 2);
  const std::vector<float> dout = ToFloat(RandomVector(N * C, 3));
  const std::vector<float> initial = ToFloat(RandomVector(V * C, 4));
  const float scale = 1.7f;
  std::vector<float> expected = initial;
  for (int n = 0; n < N; ++n) {
    for (int c = 0; c < C; ++c) expected[tokens[n] * C + c] += scale * dout[n * C + c];
  }
  std::vector<float> dtable = initial;
  embedding_backward(dtable.data(), tokens.data(), dout.data(), N, V, C, scale);
  EXPECT_EQ(0, std::memcmp(dtable.data(), expected.data(), expected.size() * sizeof(float)));
}

TEST(EmbeddingTest, GradientMatchesFiniteDifferencesWithRepeatedTokens) {
  const int N = 6, V = 4, C = 5;
  const std::vector<int32_t> tokens = {1, 3, 1, 1, 0, 3};  // token 2 unused: zero gradient
  std::vector<double> table = RandomVector(V * C, 5);
  const std::vector<double> w = RandomVector(N * C, 6);
  const double scale = std::sqrt(static_cast<double>(C));
  std::vector<double> dtable(V * C, 0.0);
  embedding_backward(dtable.data(), tokens.data(), w.data(), N, V, C, scale);
  for (int c = 0; c < C; ++c) EXPECT_EQ(dtable[2 * C + c], 0.0);
  std::vector<double> out(N * C);
  deepnet::testing::ExpectGradientMatches("dtable", table, dtable, [&] {
    embedding_forward(out.data(), tokens.data(), table.data(), N, V, C, scale);
    return deepnet::testing::Dot(w, out);
  });
}

TEST(EmbeddingTest, BackwardAddsToExistingGradient) {
  const int N = 2, V = 3, C = 2;
  const std::vector<int32_t> tokens = {2, 2};
  const std::vector<double> dout = {1, 2, 3, 4};
  std::vector<double> dtable = {10, 10, 10, 10, 10, 10};
  embedding_backward(dtable.data(), tokens.data(), dout.data(), N, V, C, 0.5);
  EXPECT_EQ(dtable, (std::vector<double>{10, 10, 10, 10, 12, 13}));
}

TEST(EmbeddingTest, IndependentOfThreadCount) {
  const int N = 513, V = 17, C = 200;
  const std::vector<int32_t> tokens = RandomTokens(N, V, 7);
  const std::vector<float> dout = ToFloat(RandomVector(N * C, 8));
  std::vector<float> one(V * C, 0.0f), two(V * C, 0.0f);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  embedding_backward(one.data(), tokens.data(), dout.data(), N, V, C, 3.0f);
  omp_set_num_threads(2);
  embedding_backward(two.data(), tokens.data(), dout.data(), N, V, C, 3.0f);
  omp_set_num_threads(saved);
  EXPECT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float)));
}

TEST(EmbeddingTest, SinusoidalKnownValues) {
  const int C = 4;
  std::vector<double> x(3 * C, 0.0);  // B = 1, T = 3
  sinusoidal_positions_add(x.data(), 1, 3, C, 0);
  // Position 0: sin 0 = 0, cos 0 = 1 in every pair.
  EXPECT_EQ(x[0], 0.0);
  EXPECT_EQ(x[1], 1.0);
  EXPECT_EQ(x[2], 0.0);
  EXPECT_EQ(x[3], 1.0);
  // Position 2: pair 0 has frequency 1, pair 1 has frequency 10000^(−2/4) = 0.01.
  EXPECT_NEAR(x[2 * C + 0], std::sin(2.0), 1e-15);
  EXPECT_NEAR(x[2 * C + 1], std::cos(2.0), 1e-15);
  EXPECT_NEAR(x[2 * C + 2], std::sin(0.02), 1e-15);
  EXPECT_NEAR(x[2 * C + 3], std::cos(0.02), 1e-15);
}

TEST(EmbeddingTest, SinusoidalAddsWithOffsetOddChannelsAndBatches) {
  const int B = 2, T = 3, C = 7, offset = 5;
  const std::vector<float> initial = ToFloat(RandomVector(B * T * C, 9));
  std::vector<float> x = initial;
  sinusoidal_positions_add(x.data(), B, T, C, offset);
  double worst = 0.0;
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < T; ++t) {
      for (int c = 0; c < C; ++c) {
        const double angle = (offset + t) / std::pow(10000.0, (c - c % 2) / static_cast<double>(C));
        const double pe = c % 2 == 0 ? std::sin(angle) : std::cos(angle);
        const int i = (b * T + t) * C + c;
        worst = std::max(worst, std::abs(x[i] - (initial[i] + pe)));
      }
    }
  }
  EXPECT_LT(worst, 1e-6);
}

}  // namespace
}  // namespace deepnet::cpu
