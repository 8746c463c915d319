// Tests for gemm.h (gemm, strided-batched gemm, linear layer) and bias.h: float kernels against
// naive double references, double kernels against finite differences, and thread-count
// independence. Letters: m, n, k of a GEMM; N rows, C input channels, OC output channels.
#include "kernels/cpu/gemm.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <functional>
#include <tuple>
#include <vector>

#include "kernels/cpu/bias.h"
#include "tests/kernels/gradcheck.h"

namespace deepnet::cpu {
namespace {

using testing::Dot;
using testing::ExpectGradientMatches;
using testing::MaxRelativeError;
using testing::RandomVector;
using testing::ToFloat;

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

// c = alpha·op(a)·op(b) + beta·c with explicit row strides; entries outside (m, n) are untouched.
void NaiveGemm(std::vector<double>& c, const std::vector<double>& a, const std::vector<double>& b,
               int m, int n, int k, bool trans_a, bool trans_b, double alpha, double beta, int lda,
               int ldb, int ldc) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double sum = 0;
      for (int p = 0; p < k; ++p) {
        const double a_ip = trans_a ? a[p * lda + i] : a[i * lda + p];
        const double b_pj = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        sum += a_ip * b_pj;
      }
      c[i * ldc + j] = alpha * sum + beta * c[i * ldc + j];
    }
  }
}

// out (N, OC) = inp (N, C) · weight (OC, C)ᵀ + bias (OC).
std::vector<double> NaiveLinear(const std::vector<double>& inp, const std::vector<double>& weight,
                                const double* bias, int N, int C, int OC) {
  std::vector<double> out(N * OC, 0.0);
  NaiveGemm(out, inp, weight, N, OC, C, false, true, 1.0, 0.0, C, C, OC);
  if (bias != nullptr) {
    for (int n = 0; n < N; ++n)
      for (int o = 0; o < OC; ++o) out[n * OC + o] += bias[o];
  }
  return out;
}

struct GemmShape {
  int m, n, k;
};

// All four transpose combinations with padded strides: computed entries match the reference and
// the padding of C is left alone (the reference does not touch it either).
TEST(GemmTest, AllTransposeCombosWithPaddedStridesMatchNaive) {
  for (const GemmShape shape : {GemmShape{7, 13, 5}, GemmShape{1, 9, 4}, GemmShape{6, 1, 3},
                                GemmShape{5, 4, 1}, GemmShape{1, 1, 1}}) {
    for (const bool trans_a : {false, true}) {
      for (const bool trans_b : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "m=" << shape.m << " n=" << shape.n << " k=" << shape.k
                                          << " ta=" << trans_a << " tb=" << trans_b);
        const int a_rows = trans_a ? shape.k : shape.m;
        const int b_rows = trans_b ? shape.n : shape.k;
        const int lda = (trans_a ? shape.m : shape.k) + 3;
        const int ldb = (trans_b ? shape.k : shape.n) + 2;
        const int ldc = shape.n + 4;
        const auto a = ToFloat(RandomVector(a_rows * lda, 1));
        const auto b = ToFloat(RandomVector(b_rows * ldb, 2));
        auto c = ToFloat(RandomVector(shape.m * ldc, 3));
        auto expected = ToDouble(c);
        NaiveGemm(expected, ToDouble(a), ToDouble(b), shape.m, shape.n, shape.k, trans_a, trans_b,
                  1.5, 0.5, lda, ldb, ldc);
        gemm(c.data(), a.data(), b.data(), shape.m, shape.n, shape.k, trans_a, trans_b, 1.5f, 0.5f,
             lda, ldb, ldc);
        EXPECT_LE(MaxRelativeError(c, expected), 1e-5);
      }
    }
  }
}

TEST(GemmTest, PackedDefaultsInDoublePrecision) {
  const int m = 9, n = 11, k = 17;
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      const auto a = RandomVector(m * k, 4);
      const auto b = RandomVector(k * n, 5);
      std::vector<double> c(m * n, 7.0);  // beta = 0 must ignore what C held
      std::vector<double> expected(m * n, 0.0);
      NaiveGemm(expected, a, b, m, n, k, trans_a, trans_b, 1.0, 0.0, trans_a ? m : k,
                trans_b ? k : n, n);
      gemm(c.data(), a.data(), b.data(), m, n, k, trans_a, trans_b);
      EXPECT_LE(MaxRelativeError(c, expected), 1e-13) << "ta=" << trans_a << " tb=" << trans_b;
    }
  }
}

TEST(GemmTest, StridedBatchedMatchesPerMatrixReference) {
  const int batch = 5, m = 4, n = 6, k = 3;
  const int64_t stride_a = m * k + 2, stride_b = k * n + 1, stride_c = m * n + 3;  // gaps
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      const auto a = ToFloat(RandomVector(batch * stride_a, 6));
      const auto b = ToFloat(RandomVector(batch * stride_b, 7));
      auto c = ToFloat(RandomVector(batch * stride_c, 8));
      auto expected = ToDouble(c);
      for (int i = 0; i < batch; ++i) {
        std::vector<double> a_i(a.begin() + i * stride_a, a.begin() + i * stride_a + m * k);
        std::vector<double> b_i(b.begin() + i * stride_b, b.begin() + i * stride_b + k * n);
        std::vector<double> c_i(expected.begin() + i * stride_c,
                                expected.begin() + i * stride_c + m * n);
        NaiveGemm(c_i, a_i, b_i, m, n, k, trans_a, trans_b, 0.5, 2.0, trans_a ? m : k,
                  trans_b ? k : n, n);
        std::copy(c_i.begin(), c_i.end(), expected.begin() + i * stride_c);
      }
      gemm_strided_batched(c.data(), a.data(), b.data(), batch, m, n, k, trans_a, trans_b, 0.5f,
                           2.0f, stride_a, stride_b, stride_c);
      EXPECT_LE(MaxRelativeError(c, expected), 1e-5) << "ta=" << trans_a << " tb=" << trans_b;
    }
  }
}

// Multi-threaded OpenBLAS calls change bits with the thread count (k = 700, 1000 block differently;
// m = 150, n = 130 put edge kernels at the thread cuts); gemm must hide that. The last two shapes
// are cut into several panels (2 along rows, then 4 along columns).
// Small C, long k (weight gradients): these are cut along k into 2 and 8 parts, the second with a
// shorter last part; alpha and beta apply once.
TEST(GemmTest, DeepProductsCutAlongKMatchNaive) {
  for (const GemmShape shape : {GemmShape{48, 96, 4001}, GemmShape{64, 64, 16384}}) {
    for (const auto& [trans_a, trans_b] : {std::pair{true, false}, std::pair{false, true}}) {
      const int m = shape.m, n = shape.n, k = shape.k;
      const auto a = RandomVector(m * k, 31), b = RandomVector(k * n, 32);
      const auto c0 = RandomVector(m * n, 33);
      std::vector<double> expected = c0;
      NaiveGemm(expected, a, b, m, n, k, trans_a, trans_b, 0.5, 2.0, trans_a ? m : k,
                trans_b ? k : n, n);
      std::vector<float> c = ToFloat(c0);
      gemm(c.data(), ToFloat(a).data(), ToFloat(b).data(), m, n, k, trans_a, trans_b, 0.5f, 2.0f);
      EXPECT_LT(MaxRelativeError(ToDouble(c), expected), 1e-4) << "m=" << m << " k=" << k;
    }
  }
}

TEST(GemmTest, ResultsAreIndependentOfThreadCount) {
  for (const GemmShape shape :
       {GemmShape{150, 130, 700}, GemmShape{64, 96, 1000}, GemmShape{520, 70, 50},
        GemmShape{40, 2100, 20}, GemmShape{64, 64, 16384},
        // Large panels: 2 of rows, and 4 of columns (3 threads get 1, 1 and 2; merging a
        // thread's panels into one call changes bits on the Haswell/Zen kernels).
        GemmShape{1024, 512, 256}, GemmShape{512, 2176, 128}}) {
    for (const bool trans_a : {false, true}) {
      const int m = shape.m, n = shape.n, k = shape.k, batch = 3;
      const auto a = ToFloat(RandomVector(batch * m * k, 9));
      const auto b = ToFloat(RandomVector(batch * k * n, 10));
      const auto a_double = RandomVector(m * k, 11);
      const auto b_double = RandomVector(k * n, 12);
      auto run = [&] {
        std::vector<float> c(m * n), batched(batch * m * n);
        std::vector<double> c_double(m * n);
        gemm(c.data(), a.data(), b.data(), m, n, k, trans_a, false);
        gemm(c_double.data(), a_double.data(), b_double.data(), m, n, k, trans_a, true);
        gemm_strided_batched(batched.data(), a.data(), b.data(), batch, m, n, k, trans_a, true,
                             1.0f, 0.0f, int64_t{m} * k, int64_t{k} * n, int64_t{m} * n);
        return std::make_tuple(c, c_double, batched);
      };
      decltype(run()) single, dual, triple;
      WithThreads(1, [&] { single = run(); });
      WithThreads(2, [&] { dual = run(); });
      WithThreads(3, [&] { triple = run(); });
      EXPECT_TRUE(single == dual) << "m=" << m << " n=" << n << " k=" << k << " ta=" << trans_a;
      EXPECT_TRUE(single == triple) << "m=" << m << " n=" << n << " k=" << k << " ta=" << trans_a;
    }
  }
}

struct LinearShape {
  int N, C, OC;
};

TEST(LinearTest, ForwardMatchesNaive) {
  for (const LinearShape s : {LinearShape{7, 13, 5}, LinearShape{1, 4, 3}, LinearShape{5, 1, 1},
                              LinearShape{64, 32, 96}}) {
    for (const bool with_bias : {false, true}) {
      const auto inp = ToFloat(RandomVector(s.N * s.C, 11));
      const auto weight = ToFloat(RandomVector(s.OC * s.C, 12));
      const auto bias = ToFloat(RandomVector(s.OC, 13));
      std::vector<float> out(s.N * s.OC, 99.0f);
      linear_forward(out.data(), inp.data(), weight.data(), with_bias ? bias.data() : nullptr, s.N,
                     s.C, s.OC);
      const auto bias_d = ToDouble(bias);
      const auto expected = NaiveLinear(ToDouble(inp), ToDouble(weight),
                                        with_bias ? bias_d.data() : nullptr, s.N, s.C, s.OC);
      EXPECT_LE(MaxRelativeError(out, expected), 1e-5)
          << "N=" << s.N << " C=" << s.C << " OC=" << s.OC << " bias=" << with_bias;
    }
  }
}

TEST(LinearTest, GradientsMatchFiniteDifferences) {
  for (const LinearShape s : {LinearShape{3, 4, 5}, LinearShape{1, 1, 1}, LinearShape{7, 2, 3}}) {
    SCOPED_TRACE(::testing::Message() << "N=" << s.N << " C=" << s.C << " OC=" << s.OC);
    auto inp = RandomVector(s.N * s.C, 14);
    auto weight = RandomVector(s.OC * s.C, 15);
    auto bias = RandomVector(s.OC, 16);
    const auto dout = RandomVector(s.N * s.OC, 17);
    std::vector<double> out(s.N * s.OC);
    auto loss = [&] {
      linear_forward(out.data(), inp.data(), weight.data(), bias.data(), s.N, s.C, s.OC);
      return Dot(dout, out);
    };
    std::vector<double> dinp(inp.size()), dweight(weight.size(), 0.0), dbias(bias.size(), 0.0);
    linear_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(),
                    weight.data(), s.N, s.C, s.OC);
    ExpectGradientMatches("dinp", inp, dinp, loss);
    ExpectGradientMatches("dweight", weight, dweight, loss);
    ExpectGradientMatches("dbias", bias, dbias, loss);
  }
}

TEST(LinearTest, ParameterGradientsAccumulateInputGradientOverwritesOrAdds) {
  const int N = 6, C = 5, OC = 4;
  const auto inp = RandomVector(N * C, 18);
  const auto weight = RandomVector(OC * C, 19);
  const auto dout = RandomVector(N * OC, 20);
  std::vector<double> dinp(N * C, 123.0), dweight(OC * C, 0.0), dbias(OC, 0.0);
  linear_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                  N, C, OC);
  const auto dinp_once = dinp, dweight_once = dweight, dbias_once = dbias;
  linear_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(), weight.data(),
                  N, C, OC);
  EXPECT_EQ(dinp, dinp_once);
  for (size_t i = 0; i < dweight.size(); ++i) EXPECT_NEAR(dweight[i], 2 * dweight_once[i], 1e-14);
  for (size_t i = 0; i < dbias.size(); ++i) EXPECT_NEAR(dbias[i], 2 * dbias_once[i], 1e-14);

  // Null dinp and dbias are skipped; dweight still accumulates.
  std::vector<double> dweight_only(OC * C, 0.0);
  linear_backward<double>(nullptr, dweight_only.data(), nullptr, dout.data(), inp.data(),
                          weight.data(), N, C, OC);
  EXPECT_EQ(dweight_only, dweight_once);

  // add_to_dinp sums into dinp; a null dweight is skipped (the input-only pass).
  std::vector<double> dinp_sum(N * C, 0.5);
  linear_backward<double>(dinp_sum.data(), nullptr, nullptr, dout.data(), inp.data(), weight.data(),
                          N, C, OC, /*add_to_dinp=*/true);
  for (size_t i = 0; i < dinp_sum.size(); ++i) EXPECT_NEAR(dinp_sum[i], 0.5 + dinp_once[i], 1e-14);
}

TEST(LinearTest, BackwardIsIndependentOfThreadCount) {
  const int N = 300, C = 70, OC = 50;
  const auto inp = ToFloat(RandomVector(N * C, 21));
  const auto weight = ToFloat(RandomVector(OC * C, 22));
  const auto dout = ToFloat(RandomVector(N * OC, 23));
  struct Grads {
    std::vector<float> dinp, dweight, dbias;
  };
  auto run = [&] {
    Grads g{std::vector<float>(N * C), std::vector<float>(OC * C, 0.0f),
            std::vector<float>(OC, 0.0f)};
    linear_backward(g.dinp.data(), g.dweight.data(), g.dbias.data(), dout.data(), inp.data(),
                    weight.data(), N, C, OC);
    return g;
  };
  Grads single, dual;
  WithThreads(1, [&] { single = run(); });
  WithThreads(2, [&] { dual = run(); });
  EXPECT_EQ(single.dinp, dual.dinp);
  EXPECT_EQ(single.dweight, dual.dweight);
  EXPECT_EQ(single.dbias, dual.dbias);
}

TEST(BiasTest, ForwardMatchesNaiveAndMayAliasInput) {
  const int N = 7, C = 13;
  const auto x = ToFloat(RandomVector(N * C, 24));
  const auto bias = ToFloat(RandomVector(C, 25));
  std::vector<float> y(N * C);
  bias_add_forward(y.data(), x.data(), bias.data(), N, C);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) ASSERT_EQ(y[n * C + c], x[n * C + c] + bias[c]);
  auto in_place = x;
  bias_add_forward(in_place.data(), in_place.data(), bias.data(), N, C);
  EXPECT_EQ(in_place, y);
}

TEST(BiasTest, BackwardMatchesFiniteDifferencesAndAccumulates) {
  const int N = 5, C = 3;
  const auto x = RandomVector(N * C, 26);
  auto bias = RandomVector(C, 27);
  const auto dy = RandomVector(N * C, 28);
  std::vector<double> y(N * C);
  auto loss = [&] {
    bias_add_forward(y.data(), x.data(), bias.data(), N, C);
    return Dot(dy, y);
  };
  std::vector<double> dbias(C, 0.0);
  bias_add_backward(dbias.data(), dy.data(), N, C);
  ExpectGradientMatches("dbias", bias, dbias, loss);
  const auto once = dbias;
  bias_add_backward(dbias.data(), dy.data(), N, C);
  for (int c = 0; c < C; ++c) EXPECT_DOUBLE_EQ(dbias[c], 2 * once[c]);
}

TEST(BiasTest, BackwardIsIndependentOfThreadCountAndMatchesNaive) {
  const int N = 1001, C = 77;  // many row blocks, a ragged last one, and ragged column tiles
  const auto dy = ToFloat(RandomVector(N * C, 29));
  std::vector<float> single(C, 0.0f), dual(C, 0.0f);
  WithThreads(1, [&] { bias_add_backward(single.data(), dy.data(), N, C); });
  WithThreads(2, [&] { bias_add_backward(dual.data(), dy.data(), N, C); });
  EXPECT_EQ(single, dual);
  std::vector<double> expected(C, 0.0);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c) expected[c] += dy[n * C + c];
  EXPECT_LE(MaxRelativeError(single, expected), 1e-5);
}

}  // namespace
}  // namespace deepnet::cpu
