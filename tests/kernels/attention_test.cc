// Multi-head attention against a naive double reference, finite-difference gradients, fully
// masked rows and thread-count independence. B batch, Tq/Tk time, H heads, D head dim, C = H·D.
#include "kernels/cpu/attention.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/dropout.h"
#include "tests/kernels/gradcheck.h"

namespace deepnet::cpu {
namespace {

using deepnet::testing::RandomVector;
using deepnet::testing::ToFloat;

constexpr RngStream kStream{.seed = 77, .step = 5, .micro_batch = 2, .site = 3};

struct Case {
  std::string name;
  AttentionShape shape;
  bool padding = false;         // batch b pads its last b keys
  bool pad_last_batch = false;  // ... and the last batch pads all of them
  float dropout = 0.0f;
};

std::vector<uint8_t> PaddingMask(const Case& c) {
  const AttentionShape& s = c.shape;
  std::vector<uint8_t> mask(static_cast<size_t>(s.B) * s.Tk, 0);
  for (int b = 0; b < s.B; ++b) {
    for (int j = 0; j < s.Tk; ++j) {
      const bool all = c.pad_last_batch && b == s.B - 1;
      mask[b * s.Tk + j] = all || (c.padding && j >= s.Tk - b);
    }
  }
  return mask;
}

int Channels(const AttentionShape& s) { return s.H * s.D; }

// Inputs of one case, in double; float copies are made where needed.
struct Inputs {
  std::vector<double> q, k, v, dout;
  std::vector<uint8_t> mask;
};

Inputs MakeInputs(const Case& c, uint32_t seed) {
  const AttentionShape& s = c.shape;
  const size_t nq = static_cast<size_t>(s.B) * s.Tq * Channels(s);
  const size_t nk = static_cast<size_t>(s.B) * s.Tk * Channels(s);
  return {RandomVector(nq, seed, -2, 2), RandomVector(nk, seed + 1, -2, 2),
          RandomVector(nk, seed + 2), RandomVector(nq, seed + 3), PaddingMask(c)};
}

// Naive double reference: out (B, Tq, C) and probs (B, H, Tq, Tk), one score at a time.
void ReferenceForward(std::vector<double>& out, std::vector<double>& probs, const Inputs& in,
                      const Case& c) {
  const AttentionShape& s = c.shape;
  const int C = Channels(s);
  const double scale = c.dropout > 0 ? static_cast<double>(1.0f / (1.0f - c.dropout)) : 1.0;
  out.assign(static_cast<size_t>(s.B) * s.Tq * C, 0.0);
  probs.assign(static_cast<size_t>(s.B) * s.H * s.Tq * s.Tk, 0.0);
  for (int b = 0; b < s.B; ++b) {
    for (int h = 0; h < s.H; ++h) {
      for (int i = 0; i < s.Tq; ++i) {
        std::vector<double> score(s.Tk, 0.0);
        std::vector<bool> visible(s.Tk);
        double max = -INFINITY;
        for (int j = 0; j < s.Tk; ++j) {
          visible[j] = !in.mask[b * s.Tk + j] && (!s.causal || j <= i + s.Tk - s.Tq);
          for (int d = 0; d < s.D; ++d) {
            score[j] += in.q[(b * s.Tq + i) * C + h * s.D + d] *
                        in.k[(b * s.Tk + j) * C + h * s.D + d] / std::sqrt(s.D);
          }
          if (visible[j]) max = std::max(max, score[j]);
        }
        double sum = 0.0;
        for (int j = 0; j < s.Tk; ++j) sum += visible[j] ? std::exp(score[j] - max) : 0.0;
        const size_t row = ((static_cast<size_t>(b) * s.H + h) * s.Tq + i) * s.Tk;
        for (int j = 0; j < s.Tk; ++j) {
          const double p = visible[j] ? std::exp(score[j] - max) / sum : 0.0;
          probs[row + j] = p;
          const bool keep = c.dropout == 0 || dropout_keep(kStream, row + j, c.dropout);
          const double weight = keep ? p * scale : 0.0;
          for (int d = 0; d < s.D; ++d) {
            out[(b * s.Tq + i) * C + h * s.D + d] +=
                weight * in.v[(b * s.Tk + j) * C + h * s.D + d];
          }
        }
      }
    }
  }
}

template <typename T>
struct Result {
  std::vector<T> out, probs, dq, dk, dv;
};

template <typename T>
Result<T> RunKernel(const Inputs& in, const Case& c) {
  const std::vector<T> q(in.q.begin(), in.q.end()), k(in.k.begin(), in.k.end()),
      v(in.v.begin(), in.v.end()), dout(in.dout.begin(), in.dout.end());
  const AttentionShape& s = c.shape;
  Result<T> r{std::vector<T>(q.size()),
              std::vector<T>(static_cast<size_t>(s.B) * s.H * s.Tq * s.Tk),
              std::vector<T>(q.size()), std::vector<T>(k.size()), std::vector<T>(k.size())};
  const uint8_t* mask = c.padding || c.pad_last_batch ? in.mask.data() : nullptr;
  attention_forward(r.out.data(), r.probs.data(), q.data(), k.data(), v.data(), mask, s, c.dropout,
                    kStream);
  attention_backward(r.dq.data(), r.dk.data(), r.dv.data(), dout.data(), q.data(), k.data(),
                     v.data(), r.probs.data(), s, c.dropout, kStream);
  return r;
}

std::vector<Case> Cases() {
  return {
      {"plain", {.B = 2, .Tq = 5, .Tk = 5, .H = 2, .D = 3}},
      {"causal", {.B = 2, .Tq = 5, .Tk = 5, .H = 2, .D = 3, .causal = true}},
      {"padding", {.B = 3, .Tq = 4, .Tk = 4, .H = 2, .D = 2}, true},
      {"padding_all_keys_of_a_batch", {.B = 2, .Tq = 3, .Tk = 4, .H = 1, .D = 3}, true, true},
      {"cross_attention", {.B = 2, .Tq = 3, .Tk = 6, .H = 2, .D = 2}, true},
      {"causal_fewer_queries", {.B = 2, .Tq = 2, .Tk = 5, .H = 1, .D = 4, .causal = true}, true},
      {"causal_more_queries", {.B = 1, .Tq = 5, .Tk = 3, .H = 3, .D = 1, .causal = true}},
      {"single_token", {.B = 1, .Tq = 1, .Tk = 1, .H = 1, .D = 1}},
      {"odd_sizes", {.B = 3, .Tq = 7, .Tk = 5, .H = 3, .D = 5}, true},
      {"dropout", {.B = 2, .Tq = 4, .Tk = 4, .H = 2, .D = 3}, false, false, 0.3f},
      {"dropout_causal_padding",
       {.B = 3, .Tq = 5, .Tk = 5, .H = 2, .D = 2, .causal = true},
       true,
       true,
       0.5f},
  };
}

TEST(AttentionTest, FloatForwardMatchesReference) {
  uint32_t seed = 100;
  for (const Case& c : Cases()) {
    const Inputs in = MakeInputs(c, seed += 10);
    std::vector<double> out, probs;
    ReferenceForward(out, probs, in, c);
    const Result<float> r = RunKernel<float>(in, c);
    EXPECT_LT(deepnet::testing::MaxRelativeError(r.out, out), 2e-6) << c.name;
    EXPECT_LT(deepnet::testing::MaxRelativeError(r.probs, probs), 2e-6) << c.name;
  }
}

// Gradients of Σ dout·out: the double kernel against central differences of the double kernel.
TEST(AttentionTest, DoubleGradientsMatchFiniteDifferences) {
  uint32_t seed = 200;
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    Inputs in = MakeInputs(c, seed += 10);
    const Result<double> r = RunKernel<double>(in, c);
    auto loss = [&] { return deepnet::testing::Dot(in.dout, RunKernel<double>(in, c).out); };
    deepnet::testing::ExpectGradientMatches("dq", in.q, r.dq, loss);
    deepnet::testing::ExpectGradientMatches("dk", in.k, r.dk, loss);
    deepnet::testing::ExpectGradientMatches("dv", in.v, r.dv, loss);
  }
}

// Float gradients against central differences of the naive double reference.
TEST(AttentionTest, FloatGradientsMatchReference) {
  uint32_t seed = 300;
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    Inputs in = MakeInputs(c, seed += 10);
    const Result<float> r = RunKernel<float>(in, c);
    auto loss = [&] {
      std::vector<double> out, probs;
      ReferenceForward(out, probs, in, c);
      return deepnet::testing::Dot(in.dout, out);
    };
    const double h = 1e-6, tolerance = 2e-5;
    deepnet::testing::ExpectGradientMatches(
        "dq", in.q, std::vector<double>(r.dq.begin(), r.dq.end()), loss, h, tolerance);
    deepnet::testing::ExpectGradientMatches(
        "dk", in.k, std::vector<double>(r.dk.begin(), r.dk.end()), loss, h, tolerance);
    deepnet::testing::ExpectGradientMatches(
        "dv", in.v, std::vector<double>(r.dv.begin(), r.dv.end()), loss, h, tolerance);
  }
}

bool AllFinite(const std::vector<float>& x) {
  for (float value : x) {
    if (!std::isfinite(value)) return false;
  }
  return true;
}

// Causal with Tq > Tk leaves query 0 nothing to see; the last batch pads every key.
TEST(AttentionTest, FullyMaskedRowsGiveZerosNotNaN) {
  const Case c{
      "masked", {.B = 2, .Tq = 4, .Tk = 3, .H = 2, .D = 3, .causal = true}, true, true, 0.2f};
  const AttentionShape& s = c.shape;
  const int C = Channels(s);
  const Result<float> r = RunKernel<float>(MakeInputs(c, 400), c);
  for (const auto* x : {&r.out, &r.probs, &r.dq, &r.dk, &r.dv}) EXPECT_TRUE(AllFinite(*x));
  for (int b = 0; b < s.B; ++b) {
    for (int i = 0; i < s.Tq; ++i) {
      const bool masked_row = b == s.B - 1 || i == 0;
      if (!masked_row) continue;
      for (int h = 0; h < s.H; ++h) {
        for (int j = 0; j < s.Tk; ++j) EXPECT_EQ(r.probs[((b * s.H + h) * s.Tq + i) * s.Tk + j], 0);
      }
      for (int ch = 0; ch < C; ++ch) {
        EXPECT_EQ(r.out[(b * s.Tq + i) * C + ch], 0) << b << "," << i;
        EXPECT_EQ(r.dq[(b * s.Tq + i) * C + ch], 0) << b << "," << i;
      }
    }
  }
  // Padded keys receive no gradient.
  for (int j = 0; j < s.Tk; ++j) {
    for (int ch = 0; ch < C; ++ch) {
      EXPECT_EQ(r.dk[((s.B - 1) * s.Tk + j) * C + ch], 0);
      EXPECT_EQ(r.dv[((s.B - 1) * s.Tk + j) * C + ch], 0);
    }
  }
}

TEST(AttentionTest, DropoutZeroesSomeWeights) {
  const Case with{"dropout", {.B = 1, .Tq = 8, .Tk = 8, .H = 2, .D = 4}, false, false, 0.5f};
  Case without = with;
  without.dropout = 0.0f;
  const Inputs in = MakeInputs(with, 500);
  const Result<double> dropped = RunKernel<double>(in, with);
  const Result<double> plain = RunKernel<double>(in, without);
  EXPECT_EQ(dropped.probs, plain.probs);  // probs are saved before dropout
  EXPECT_GT(deepnet::testing::MaxRelativeError(dropped.out, plain.out), 1e-3);
}

TEST(AttentionTest, IndependentOfThreadCount) {
  const Case c{
      "big", {.B = 2, .Tq = 33, .Tk = 33, .H = 4, .D = 16, .causal = true}, true, false, 0.1f};
  const Inputs in = MakeInputs(c, 600);
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  const Result<float> one = RunKernel<float>(in, c);
  omp_set_num_threads(2);
  const Result<float> two = RunKernel<float>(in, c);
  omp_set_num_threads(saved);
  auto same = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  EXPECT_TRUE(same(one.out, two.out));
  EXPECT_TRUE(same(one.probs, two.probs));
  EXPECT_TRUE(same(one.dq, two.dq));
  EXPECT_TRUE(same(one.dk, two.dk));
  EXPECT_TRUE(same(one.dv, two.dv));
}

}  // namespace
}  // namespace deepnet::cpu
