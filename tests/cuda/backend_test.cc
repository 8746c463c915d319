// CudaBackend against the CPU oracle, op by op, for f32, bf16 and f16.
//
// Every case builds random inputs rounded to the tested dtype, runs the CPU backend in f64 on those
// exact values and the CUDA backend in the dtype, and bounds ‖gpu − cpu‖∞ / ‖cpu‖∞ by the dtype's
// tolerance (cuda_test_util.h). GPU outputs start as NaN, so an element a kernel never writes
// fails. Accumulated outputs (parameter gradients) start from the same random values on both
// sides. Each case skips with the reason where no GPU can be used.
// Letters: N rows, C channels, OC output channels, V vocab, B, Tq, Tk, H, D.
#include "kernels/backend.h"

#include <gtest/gtest.h>

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

using testing::DTypeLabel;
using testing::MakeTensor;
using testing::RandomValues;
using testing::RelativeError;
using testing::ToDoubles;
using testing::Tolerance;

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

  void Expect(const Both& t, const std::string& what, double tolerance_factor = 1.0) {
    const double error = RelativeError(ToDoubles(gpu_, t.gpu), ToDoubles(CpuBackend(), t.cpu));
    EXPECT_LE(error, Tolerance(dtype_) * tolerance_factor)
        << what << " (" << DTypeLabel(dtype_) << ", " << t.gpu.ToString() << ")";
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
  Both inp = r.In({N, C}), weight = r.In({OC, C}), bias = r.In({OC});
  Both out = r.Out({N, OC}), out_no_bias = r.Out({N, OC});
  r.Run([&](const Backend& b, Side s) {
    b.LinearForward(out[s], inp[s], weight[s], &bias[s]);
    b.LinearForward(out_no_bias[s], inp[s], weight[s], nullptr);
  });
  r.Expect(out, "LinearForward with bias");
  r.Expect(out_no_bias, "LinearForward");

  Both dout = r.In({N, OC}), dinp = r.Out({N, C});
  // Gradients in the activation dtype and, as the policy keeps them, in f32.
  for (DType grad_dtype : {r.dtype(), kGradDType}) {
    Both dweight = r.In({OC, C}, -1, 1, grad_dtype), dbias = r.In({OC}, -1, 1, grad_dtype);
    r.Run([&](const Backend& b, Side s) {
      b.LinearBackward(&dinp[s], GradWrite::kOverwrite, &dweight[s], &dbias[s], dout[s], inp[s],
                       weight[s]);
    });
    r.Expect(dinp, "LinearBackward dinp");
    r.Expect(dweight, "LinearBackward dweight (accumulated)");
    r.Expect(dbias, "LinearBackward dbias (accumulated)");
  }
  // The input-only pass of a split backward: dinp added to, no parameter gradients.
  Both dinp_sum = r.In({N, C});
  r.Run([&](const Backend& b, Side s) {
    b.LinearBackward(&dinp_sum[s], GradWrite::kAdd, nullptr, nullptr, dout[s], inp[s], weight[s]);
  });
  r.Expect(dinp_sum, "LinearBackward dinp (added to)");
}

// LayerNorm and DeepNorm at channel counts that take the vectorized path (96, 2048) and the
// one-element path (1000 is no multiple of 8 for 16-bit types; 1001 for any).
void NormCase(OpRun& r, bool deepnorm) {
  const double alpha = deepnorm ? 1.7 : 1.0;
  for (int C : {96, 1001, 2048}) {
    const int N = 33;
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
    r.Expect(y, "y" + at);
    r.Expect(mean, "mean" + at);
    r.Expect(rstd, "rstd" + at);

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
    r.Expect(dx, "dx" + at);
    if (deepnorm) r.Expect(dg, "dg" + at);
    r.Expect(dgamma, "dgamma" + at, 2.0);
    r.Expect(dbeta, "dbeta" + at, 2.0);
  }
}

struct AttentionCase {
  cpu::AttentionShape shape;
  bool padding;  // batch b pads its last 5·b keys; the last batch pads all of them
  float dropout;
};

std::vector<double> PaddingMask(const cpu::AttentionShape& s, bool padding) {
  std::vector<double> mask(static_cast<size_t>(s.B) * s.Tk, 0.0);
  for (int b = 0; padding && b < s.B; ++b) {
    for (int j = 0; j < s.Tk; ++j) {
      mask[b * s.Tk + j] = (b == s.B - 1 || j >= s.Tk - 5 * b) ? 1.0 : 0.0;
    }
  }
  return mask;
}

void AttentionOpCase(OpRun& r) {
  const std::vector<AttentionCase> cases = {
      {{.B = 2, .Tq = 19, .Tk = 19, .H = 2, .D = 16, .causal = true}, false, 0.0f},
      {{.B = 3, .Tq = 21, .Tk = 70, .H = 2, .D = 64, .causal = false}, true, 0.0f},
      {{.B = 1, .Tq = 65, .Tk = 130, .H = 1, .D = 128, .causal = true}, false, 0.2f},
      {{.B = 2, .Tq = 33, .Tk = 40, .H = 3, .D = 36, .causal = false}, true, 0.1f},
  };
  for (const AttentionCase& c : cases) {
    const cpu::AttentionShape& s = c.shape;
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
    r.Expect(out, "attention out" + at);

    Both dout = r.In({s.B, s.Tq, C}), dq = r.Out({s.B, s.Tq, C}), dk = r.Out({s.B, s.Tk, C}),
         dv = r.Out({s.B, s.Tk, C});
    r.Run([&](const Backend& b, Side side) {
      b.AttentionBackward(dq[side], dk[side], dv[side], dout[side], q[side], k[side], v[side],
                          probs[side], s, c.dropout, kRng);
    });
    r.Expect(dq, "attention dq" + at, 2.0);
    r.Expect(dk, "attention dk" + at, 2.0);
    r.Expect(dv, "attention dv" + at, 2.0);
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
    r.Expect(y, std::string(name) + " forward");
    r.Expect(dx, std::string(name) + " backward");
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
  r.Expect(sum, "Add");
  r.Expect(y, "Axpy");
  r.Expect(scaled, "Scale");
}

void EmbeddingCase(OpRun& r) {
  const int N = 300, V = 50, C = 72;
  std::vector<double> ids(N);
  for (int n = 0; n < N; ++n) ids[n] = (n * 7 + n / 13) % V;  // repeats, some rows unused
  Both tokens = r.Exact(ids, {N}, DType::kI32);
  Both table = r.In({V, C}), out = r.Out({N, C});
  r.Run([&](const Backend& b, Side s) { b.EmbeddingForward(out[s], tokens[s], table[s], 32.0); });
  r.Expect(out, "EmbeddingForward");

  Both dout = r.In({N, C});
  for (DType grad_dtype : {r.dtype(), kGradDType}) {
    Both dtable = r.In({V, C}, -1, 1, grad_dtype);
    r.Run([&](const Backend& b, Side s) {
      b.EmbeddingBackward(dtable[s], tokens[s], dout[s], 32.0);
    });
    r.Expect(dtable, "EmbeddingBackward (accumulated)", 2.0);
  }

  Both x = r.In({3, 17, 64});
  r.Run([&](const Backend& b, Side s) { b.PositionsAdd(x[s], 5); });
  r.Expect(x, "PositionsAdd");
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
  r.Expect(losses, "cross-entropy losses");
  r.Expect(lse, "cross-entropy lse");
  r.Expect(dlogits, "cross-entropy dlogits");
}

void AdamWCase(OpRun& r) {
  const int n = 20000;  // spans several blocks
  const cpu::AdamWConfig config{
      .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-8, .weight_decay = 0.01};
  Both param = r.In({n}, -1, 1, DType::kF32), m = r.In({n}, -0.1, 0.1, DType::kF32),
       v = r.In({n}, 0, 0.01, DType::kF32), grad = r.In({n});
  r.Run([&](const Backend& b, Side s) {
    b.AdamW(param[s], m[s], v[s], grad[s], config, /*step=*/3, /*grad_scale=*/0.5);
  });
  // The master weights are f32 whatever the gradient dtype: hold them to the f32 bound.
  EXPECT_LE(RelativeError(ToDoubles(r.gpu(), param.gpu), ToDoubles(CpuBackend(), param.cpu)), 1e-5);
  EXPECT_LE(RelativeError(ToDoubles(r.gpu(), v.gpu), ToDoubles(CpuBackend(), v.cpu)), 1e-5);
}

void SumOfSquaresCase(OpRun& r) {
  Both x = r.In({70001});
  const double want = CpuBackend().SumOfSquares(x.cpu);
  EXPECT_NEAR(r.gpu().SumOfSquares(x.gpu), want, 1e-9 * want);  // double sums of exact squares
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
