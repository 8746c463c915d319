// CudaBackend against the CPU oracle, op by op, for f32, bf16 and f16.
//
// Every case builds random inputs rounded to the tested dtype, runs the CPU backend in f64 on those
// exact values and the CUDA backend in the dtype, and checks every element of every output:
// |gpu − cpu| ≤ atol + rtol·|cpu| (AllClose, cuda_test_util.h). rtol comes from the dtype the GPU
// stores the output in (an f32 gradient or statistic of a bf16 case is held to the f32 bound: the
// inputs are the same numbers and the math is f32); atol = 1e-5·scale, where each case names the
// magnitude of the terms its outputs are made of, so an element that cancels to near zero may
// carry the f32 rounding of its terms and no more. Attention rounds its probabilities to the
// 16-bit dtype before the products, so its atol adds three 16-bit roundings (AttentionTol).
// GPU outputs start as NaN, so an element a kernel never writes fails. Accumulated outputs
// (parameter gradients) start from the same random values on both sides. Each case skips with the
// reason where no GPU can be used.
// Letters: N rows, C channels, OC output channels, V vocab, B, Tq, Tk, H, D.
#include "kernels/backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "tests/cuda/cuda_test_util.h"

namespace deepnet::cuda {
namespace {

using testing::AllClose;
using testing::DefaultTol;
using testing::DTypeLabel;
using testing::MakeTensor;
using testing::RandomValues;
using testing::ToDoubles;
using testing::Tol;

constexpr RngStream kRng{.seed = 0x5eed1234abcdull, .step = 7, .micro_batch = 3, .site = 5};

enum Side { kCpu, kGpu };

// One tensor of a case on both backends: f64 on the CPU, the tested dtype (or another one the
// case picks) on the GPU.
struct Both {
  Tensor cpu, gpu;
  const Tensor& operator[](Side side) const { return side == kCpu ? cpu : gpu; }
};

class OpRun {
 public:
  OpRun(CudaBackend& gpu, DType dtype) : gpu_(gpu), dtype_(dtype) {}

  DType dtype() const { return dtype_; }
  CudaBackend& gpu() { return gpu_; }

  // Random values in [lo, hi), rounded to the GPU dtype (default: the tested one).
  Both In(const Shape& shape, double lo = -1.0, double hi = 1.0, DType gpu_dtype = DType::kF64) {
    const DType dtype = gpu_dtype == DType::kF64 ? dtype_ : gpu_dtype;
    const std::vector<double> values =
        RandomValues(static_cast<size_t>(NumElements(shape)), ++seed_, lo, hi, dtype);
    return {MakeTensor(CpuBackend(), values, shape, DType::kF64),
            MakeTensor(gpu_, values, shape, dtype)};
  }
  // An output: zeros on the CPU, NaN on the GPU.
  Both Out(const Shape& shape, DType gpu_dtype = DType::kF64) {
    const DType dtype = gpu_dtype == DType::kF64 ? dtype_ : gpu_dtype;
    const size_t n = static_cast<size_t>(NumElements(shape));
    return {MakeTensor(CpuBackend(), std::vector<double>(n, 0.0), shape, DType::kF64),
            MakeTensor(gpu_, std::vector<double>(n, std::nan("")), shape, dtype)};
  }
  // Integer or byte tensors with the same values on both sides.
  Both Exact(const std::vector<double>& values, const Shape& shape, DType dtype) {
    return {MakeTensor(CpuBackend(), values, shape, dtype), MakeTensor(gpu_, values, shape, dtype)};
  }

  // Runs fn(backend, side) on the CPU, then on the GPU.
  template <typename Fn>
  void Run(Fn&& fn) {
    fn(CpuBackend(), kCpu);
    fn(static_cast<const Backend&>(gpu_), kGpu);
  }

  // Every element of `t` within the default bound of the dtype the GPU stores it in, for terms of
  // magnitude `scale` (DefaultTol).
  void Expect(const Both& t, const std::string& what, double scale) {
    Expect(t, what, DefaultTol(t.gpu.dtype(), scale));
  }
  void Expect(const Both& t, const std::string& what, Tol tol) {
    EXPECT_TRUE(AllClose(ToDoubles(gpu_, t.gpu), ToDoubles(CpuBackend(), t.cpu), tol))
        << what << " (" << DTypeLabel(dtype_) << " case, " << t.gpu.ToString() << ")";
  }

 private:
  CudaBackend& gpu_;
  DType dtype_;
  uint32_t seed_ = 100;
};

struct OpCase {
  std::string name;
  std::function<void(OpRun&)> run;
};

// The dtype the GPU keeps parameter gradients in: f32 for the mixed-precision policy.
constexpr DType kGradDType = DType::kF32;

void LinearCase(OpRun& r) {
  const int N = 37, C = 72, OC = 40;
  // Sums of at most C products of values in [-1, 1]: partial sums of about √C.
  const double scale = std::sqrt(static_cast<double>(std::max({N, C, OC})));
  Both inp = r.In({N, C}), weight = r.In({OC, C}), bias = r.In({OC});
  Both out = r.Out({N, OC}), out_no_bias = r.Out({N, OC});
  r.Run([&](const Backend& b, Side s) {
    b.LinearForward(out[s], inp[s], weight[s], &bias[s]);
    b.LinearForward(out_no_bias[s], inp[s], weight[s], nullptr);
  });
  r.Expect(out, "LinearForward with bias", scale);
  r.Expect(out_no_bias, "LinearForward", scale);

  Both dout = r.In({N, OC}), dinp = r.Out({N, C});
  // Gradients in the activation dtype and, as the policy keeps them, in f32.
  for (DType grad_dtype : {r.dtype(), kGradDType}) {
    Both dweight = r.In({OC, C}, -1, 1, grad_dtype), dbias = r.In({OC}, -1, 1, grad_dtype);
    r.Run([&](const Backend& b, Side s) {
      b.LinearBackward(&dinp[s], GradWrite::kOverwrite, &dweight[s], &dbias[s], dout[s], inp[s],
                       weight[s]);
    });
    r.Expect(dinp, "LinearBackward dinp", scale);
    r.Expect(dweight, "LinearBackward dweight (accumulated)", scale);
    r.Expect(dbias, "LinearBackward dbias (accumulated)", scale);
  }
  // The input-only pass of a split backward: dinp added to, no parameter gradients.
  Both dinp_sum = r.In({N, C});
  r.Run([&](const Backend& b, Side s) {
    b.LinearBackward(&dinp_sum[s], GradWrite::kAdd, nullptr, nullptr, dout[s], inp[s], weight[s]);
  });
  r.Expect(dinp_sum, "LinearBackward dinp (added to)", scale);
}

// LayerNorm and DeepNorm at channel counts that take the vectorized path (96, 2048) and the
// one-element path (1000 is no multiple of 8 for 16-bit types; 1001 for any).
void NormCase(OpRun& r, bool deepnorm) {
  const double alpha = deepnorm ? 1.7 : 1.0;
  // z = α·x + g is at most 2α + 1 ≤ 4.4; y, dx and the statistics are made of terms below 4.
  const double scale = 4.0;
  for (int C : {96, 1001, 2048}) {
    const int N = 33;
    // dgamma, dbeta: a start value in [-1, 1] plus sums over N rows of terms below ~1.7.
    const double column_scale = std::sqrt(static_cast<double>(N));
    Both x = r.In({N, C}, -2, 2), g = r.In({N, C}), gamma = r.In({C}, 0.5, 1.5), beta = r.In({C});
    Both y = r.Out({N, C}), mean = r.Out({N}, DType::kF32), rstd = r.Out({N}, DType::kF32);
    r.Run([&](const Backend& b, Side s) {
      if (deepnorm) {
        b.DeepNormForward(y[s], mean[s], rstd[s], x[s], g[s], gamma[s], beta[s], alpha, 1e-5);
      } else {
        b.LayerNormForward(y[s], mean[s], rstd[s], x[s], gamma[s], beta[s], 1e-5);
      }
    });
    const std::string at = " C=" + std::to_string(C);
    r.Expect(y, "y" + at, scale);
    r.Expect(mean, "mean" + at, scale);
    r.Expect(rstd, "rstd" + at, scale);

    Both dy = r.In({N, C}), dx = r.Out({N, C}), dg = r.Out({N, C});
    // dgamma/dbeta in f32 at one size, in the activation dtype at the others.
    const DType grad_dtype = C == 2048 ? kGradDType : r.dtype();
    Both dgamma = r.In({C}, -1, 1, grad_dtype), dbeta = r.In({C}, -1, 1, grad_dtype);
    r.Run([&](const Backend& b, Side s) {
      if (deepnorm) {
        b.DeepNormBackward(&dx[s], &dg[s], dgamma[s], dbeta[s], dy[s], x[s], g[s], gamma[s],
                           mean[s], rstd[s], alpha);
      } else {
        b.LayerNormBackward(dx[s], dgamma[s], dbeta[s], dy[s], x[s], gamma[s], mean[s], rstd[s]);
      }
    });
    r.Expect(dx, "dx" + at, scale);
    if (deepnorm) r.Expect(dg, "dg" + at, scale);
    r.Expect(dgamma, "dgamma" + at, column_scale);
    r.Expect(dbeta, "dbeta" + at, column_scale);
  }
}

struct AttentionCase {
  AttentionShape shape;
  bool padding;  // batch b pads its last 5·b keys; the last batch pads all of them
  float dropout;
};

std::vector<double> PaddingMask(const AttentionShape& s, bool padding) {
  std::vector<double> mask(static_cast<size_t>(s.B) * s.Tk, 0.0);
  for (int b = 0; padding && b < s.B; ++b) {
    for (int j = 0; j < s.Tk; ++j) {
      mask[b * s.Tk + j] = (b == s.B - 1 || j >= s.Tk - 5 * b) ? 1.0 : 0.0;
    }
  }
  return mask;
}

// The attention kernels round the probabilities P (and dS = P ⊙ (dP − D)) to the 16-bit dtype
// before multiplying them with V, dO, K or Q, so an output element carries an absolute error of
// about u·Σ_j P_j·|v_j| (u the dtype's unit roundoff) even where it cancels to near zero. With v
// and dO in [-1, 1] that sum is about 1; a model of those roundings over these shapes (30 seeds)
// needs at most 0.73u (dV, where a key's column of P sums to more than 1), so 3u leaves a 4×
// margin. f32 keeps P in f32: the default bound.
Tol AttentionTol(DType dtype) {
  if (dtype == DType::kF32) return DefaultTol(dtype, 1.0);
  Tol tol = DefaultTol(dtype, 1.0);
  tol.atol += 3 * testing::UnitRoundoff(dtype);
  return tol;
}

void AttentionOpCase(OpRun& r) {
  const std::vector<AttentionCase> cases = {
      {{.B = 2, .Tq = 19, .Tk = 19, .H = 2, .D = 16, .causal = true}, false, 0.0f},
      {{.B = 3, .Tq = 21, .Tk = 70, .H = 2, .D = 64, .causal = false}, true, 0.0f},
      {{.B = 1, .Tq = 65, .Tk = 130, .H = 1, .D = 128, .causal = true}, false, 0.2f},
      {{.B = 2, .Tq = 33, .Tk = 40, .H = 3, .D = 36, .causal = false}, true, 0.1f},
  };
  for (const AttentionCase& c : cases) {
    const AttentionShape& s = c.shape;
    const int C = s.H * s.D;
    const std::string at = " B=" + std::to_string(s.B) + " Tq=" + std::to_string(s.Tq) +
                           " Tk=" + std::to_string(s.Tk) + " D=" + std::to_string(s.D);
    Both q = r.In({s.B, s.Tq, C}, -2, 2), k = r.In({s.B, s.Tk, C}, -2, 2), v = r.In({s.B, s.Tk, C});
    Both mask = r.Exact(PaddingMask(s, c.padding), {s.B, s.Tk}, DType::kU8);
    Both out = r.Out({s.B, s.Tq, C});
    Both probs{CpuBackend().Zeros({s.B, s.H, s.Tq, s.Tk}, DType::kF64, MemoryCategory::kOther),
               r.gpu().Empty({static_cast<int64_t>(CudaBackend::AttentionStatsBytes(s))},
                             DType::kU8, MemoryCategory::kOther)};
    r.Run([&](const Backend& b, Side side) {
      b.AttentionForward(out[side], probs[side], q[side], k[side], v[side],
                         c.padding ? &mask[side] : nullptr, s, c.dropout, kRng);
    });
    const Tol tol = AttentionTol(r.dtype());
    r.Expect(out, "attention out" + at, tol);

    Both dout = r.In({s.B, s.Tq, C}), dq = r.Out({s.B, s.Tq, C}), dk = r.Out({s.B, s.Tk, C}),
         dv = r.Out({s.B, s.Tk, C});
    r.Run([&](const Backend& b, Side side) {
      b.AttentionBackward(dq[side], dk[side], dv[side], dout[side], q[side], k[side], v[side],
                          probs[side], s, c.dropout, kRng);
    });
    r.Expect(dq, "attention dq" + at, tol);
    r.Expect(dk, "attention dk" + at, tol);
    r.Expect(dv, "attention dv" + at, tol);
  }
}

void ActivationCase(OpRun& r) {
  const int n = 1003;  // no multiple of a vector width: the tail path runs too
  for (ActivationKind kind : {ActivationKind::kRelu, ActivationKind::kGelu}) {
    Both x = r.In({n}, -3, 3), dy = r.In({n}), y = r.Out({n}), dx = r.Out({n});
    r.Run([&](const Backend& b, Side s) {
      b.ActivationForward(kind, y[s], x[s]);
      b.ActivationBackward(kind, dx[s], dy[s], x[s]);
    });
    const char* name = kind == ActivationKind::kRelu ? "relu" : "gelu";
    // x·Φ(x) and dy·(Φ(x) + x·φ(x)): terms of about 1 (Φ in [0, 1], |x| ≤ 3).
    r.Expect(y, std::string(name) + " forward", 1.0);
    r.Expect(dx, std::string(name) + " backward", 1.0);
  }
}

void ElementwiseCase(OpRun& r) {
  const int n = 4099;
  Both a = r.In({n}), b_in = r.In({n}), sum = r.Out({n}), scaled = r.Out({n});
  Both y = r.In({n});
  r.Run([&](const Backend& b, Side s) {
    b.Add(sum[s], a[s], b_in[s]);
    b.Axpy(y[s], a[s], -0.75);
    b.Scale(scaled[s], a[s], 3.0);
  });
  // Values in [-1, 1]: a + b and y − 0.75·a may cancel; terms of 1.
  r.Expect(sum, "Add", 1.0);
  r.Expect(y, "Axpy", 1.0);
  r.Expect(scaled, "Scale", 1.0);
}

void EmbeddingCase(OpRun& r) {
  const int N = 300, V = 50, C = 72;
  std::vector<double> ids(N);
  for (int n = 0; n < N; ++n) ids[n] = (n * 7 + n / 13) % V;  // repeats, some rows unused
  Both tokens = r.Exact(ids, {N}, DType::kI32);
  Both table = r.In({V, C}), out = r.Out({N, C});
  r.Run([&](const Backend& b, Side s) { b.EmbeddingForward(out[s], tokens[s], table[s], 32.0); });
  r.Expect(out, "EmbeddingForward", 32.0);  // rows times 32: exact

  Both dout = r.In({N, C});
  for (DType grad_dtype : {r.dtype(), kGradDType}) {
    Both dtable = r.In({V, C}, -1, 1, grad_dtype);
    r.Run([&](const Backend& b, Side s) {
      b.EmbeddingBackward(dtable[s], tokens[s], dout[s], 32.0);
    });
    // A start value plus 32 × the sum of a token's ~6 rows of dout in [-1, 1].
    r.Expect(dtable, "EmbeddingBackward (accumulated)", 32.0);
  }

  Both x = r.In({3, 17, 64});
  r.Run([&](const Backend& b, Side s) { b.PositionsAdd(x[s], 5); });
  r.Expect(x, "PositionsAdd", 1.0);  // x and sin/cos in [-1, 1]
}

void CrossEntropyCase(OpRun& r) {
  const int N = 29, V = 1000, kIgnore = 3;
  std::vector<double> ids(N);
  for (int n = 0; n < N; ++n) ids[n] = n % 5 == 0 ? kIgnore : (n * 37) % V;
  Both targets = r.Exact(ids, {N}, DType::kI32);
  Both logits = r.In({N, V}, -4, 4);
  Both losses = r.Out({N}, DType::kF32), lse = r.Out({N}, DType::kF32);
  Both dlogits = r.Out({N, V});
  r.Run([&](const Backend& b, Side s) {
    b.CrossEntropyForward(losses[s], lse[s], logits[s], targets[s], 0.1, kIgnore);
    b.CrossEntropyBackward(dlogits[s], logits[s], lse[s], targets[s], 1.0 / 24, 0.1, kIgnore);
  });
  // lse ≈ 9 and the losses ≈ 5 to 13 are sums of logits in [-4, 4] without cancellation.
  r.Expect(losses, "cross-entropy losses", 1.0);
  r.Expect(lse, "cross-entropy lse", 1.0);
  // dlogits = (p_v − 0.1/V)/24 − [v = t]·0.9/24: most are tiny (p ≈ e^x/6800, under 0.01) and
  // cancel where p_v ≈ 1e-4, so atol is set by terms of 0.01/24; a targeted element is −0.0375.
  r.Expect(dlogits, "cross-entropy dlogits", 0.01 / 24);
}

void AdamWCase(OpRun& r) {
  const int n = 20000;  // spans several blocks
  const AdamWConfig config{
      .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-8, .weight_decay = 0.01};
  Both param = r.In({n}, -1, 1, DType::kF32), m = r.In({n}, -0.1, 0.1, DType::kF32),
       v = r.In({n}, 0, 0.01, DType::kF32), grad = r.In({n});
  r.Run([&](const Backend& b, Side s) {
    b.AdamW(param[s], m[s], v[s], grad[s], config, /*step=*/3, /*grad_scale=*/0.5);
  });
  // The master weights and moments are f32 whatever the gradient dtype, computed by the same
  // formula as the CPU's: a few f32 roundings (≤ 3e-7 relative) apart. rtol 2e-6 is tight enough
  // that a missing weight decay (a relative change of lr·wd = 1e-5) fails; atol covers the f32
  // rounding of the update where the new value is near zero (update ≤ ~0.1 here) and of m's terms
  // (≤ 0.1), and is far below one step (lr = 1e-3).
  r.Expect(param, "AdamW param", Tol{.atol = 1e-6, .rtol = 2e-6});
  r.Expect(m, "AdamW m", Tol{.atol = 2e-7, .rtol = 2e-6});
  r.Expect(v, "AdamW v", Tol{.atol = 1e-10, .rtol = 2e-6});  // no cancellation: v, g² ≥ 0
}

void SumOfSquaresCase(OpRun& r) {
  Both x = r.In({70001});
  const double want = CpuBackend().SumOfSquares(x.cpu);
  EXPECT_NEAR(r.gpu().SumOfSquares(x.gpu), want, 1e-9 * want);  // double sums of exact squares
}

// The comparison itself (runs without a GPU).
TEST(CudaAllCloseTest, BoundsEveryElementByItsOwnSize) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(AllClose({1.0, -2.0, 0.0}, {1.0, -2.0, 0.0}, 0.0, 0.0));
  EXPECT_TRUE(AllClose({100.1, 1e-6}, {100.0, 0.0}, 1e-5, 1e-3));
  // 1e-3 off on an element of 0.01 fails, although the largest element is 100.
  EXPECT_FALSE(AllClose({100.0, 0.011}, {100.0, 0.01}, 1e-5, 1e-3));
  EXPECT_FALSE(AllClose({1.0}, {1.0, 2.0}, 1.0, 1.0));
  EXPECT_FALSE(AllClose({std::nan("")}, {std::nan("")}, 1.0, 1.0));
  EXPECT_FALSE(AllClose({0.0}, {std::nan("")}, 1.0, 1.0));
  EXPECT_TRUE(AllClose({inf, -inf}, {inf, -inf}, 0.0, 0.0));
  EXPECT_FALSE(AllClose({1e300}, {inf}, 1.0, 1.0));
  EXPECT_FALSE(AllClose({inf}, {1.0}, 1.0, 1.0));

  std::vector<double> want(100, 1.0), got = want;
  got[3] = 1.5;
  got[90] = 3.0;  // the worst, after the five listed first
  for (int i = 80; i < 86; ++i) got[i] = 1.1;
  const ::testing::AssertionResult result = AllClose(got, want, 0.0, 1e-3);
  ASSERT_FALSE(result);
  const std::string message = result.message();
  EXPECT_NE(message.find("8 of 100 elements"), std::string::npos) << message;
  EXPECT_NE(message.find("[3] got 1.5, want 1"), std::string::npos) << message;
  EXPECT_NE(message.find("worst:\n  [90] got 3"), std::string::npos) << message;
}

TEST(CudaAllCloseTest, DefaultBounds) {
  EXPECT_EQ(DefaultTol(DType::kF32, 3.0).rtol, 2e-5);
  EXPECT_DOUBLE_EQ(DefaultTol(DType::kF32, 3.0).atol, 3e-5);
  EXPECT_EQ(DefaultTol(DType::kBF16).rtol, 2e-2);
  EXPECT_EQ(DefaultTol(DType::kF16).rtol, 4e-3);
  // An f16 subnormal (below 2^-14) is rounded to a multiple of 2^-24.
  const double subnormal = 1e-6;
  EXPECT_TRUE(AllClose({testing::RoundTo(DType::kF16, subnormal)}, {subnormal},
                       DefaultTol(DType::kF16, 1e-6)));
  EXPECT_EQ(DefaultTol(DType::kI32).atol, 0.0);
  EXPECT_EQ(DefaultTol(DType::kI32).rtol, 0.0);
}

std::vector<OpCase> Cases() {
  return {{"Linear", LinearCase},
          {"LayerNorm", [](OpRun& r) { NormCase(r, false); }},
          {"DeepNorm", [](OpRun& r) { NormCase(r, true); }},
          {"Attention", AttentionOpCase},
          {"Activation", ActivationCase},
          {"Elementwise", ElementwiseCase},
          {"Embedding", EmbeddingCase},
          {"CrossEntropy", CrossEntropyCase},
          {"AdamW", AdamWCase},
          {"SumOfSquares", SumOfSquaresCase}};
}

class CudaOpTest : public ::testing::TestWithParam<std::tuple<int, DType>> {};

TEST_P(CudaOpTest, MatchesCpuBackend) {
  DEEPNET_GPU_OR_SKIP(gpu);
  const auto [index, dtype] = GetParam();
  OpRun run(*gpu, dtype);
  Cases()[index].run(run);
}

INSTANTIATE_TEST_SUITE_P(AllOps, CudaOpTest,
                         ::testing::Combine(::testing::Range(0, static_cast<int>(Cases().size())),
                                            ::testing::Values(DType::kF32, DType::kBF16,
                                                              DType::kF16)),
                         [](const ::testing::TestParamInfo<std::tuple<int, DType>>& info) {
                           return Cases()[std::get<0>(info.param)].name + "_" +
                                  DTypeLabel(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace deepnet::cuda
