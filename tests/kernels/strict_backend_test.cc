// Tests for the strict test device (kernels/strict): every op equals the CPU backend bit for bit
// in f32, 16-bit outputs are rounded to their dtype, the host cannot read its memory, host
// tensors passed to its ops are caught, and its memory is accounted.
#include "kernels/strict/strict_backend.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/strict/strict_allocator.h"
#include "runtime/half.h"

namespace deepnet {
namespace {

constexpr MemoryCategory kAct = MemoryCategory::kActivations;
constexpr RngStream kStream{.seed = 1234, .step = 7, .micro_batch = 1, .site = 9};
// Small shapes: N rows, C channels, OC output channels, V vocabulary, B batch, T time.
constexpr int N = 6, C = 8, OC = 5, V = 11, B = 2, T = 3;

const Backend& Dev() { return StrictBackend(); }

// Host f32 tensor, uniform in [lo, hi).
Tensor Random(const Shape& shape, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  Tensor t = Tensor::Empty(shape, DType::kF32, kAct);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(static_cast<float>(lo), static_cast<float>(hi));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

// Host i32 tensor of ids in [0, limit).
Tensor RandomIds(const Shape& shape, uint32_t seed, int limit) {
  Tensor t = Tensor::Empty(shape, DType::kI32, kAct);
  std::mt19937 gen(seed);
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<int32_t>()[i] = static_cast<int32_t>(gen() % limit);
  return t;
}

// `host` rounded to `dtype`, still f32 (the values a 16-bit tensor can hold).
Tensor Rounded(const Tensor& host, DType dtype) {
  Tensor t = host.Clone();
  for (int64_t i = 0; i < t.numel(); ++i) {
    t.data<float>()[i] = static_cast<float>(RoundToDType(dtype, t.data<float>()[i]));
  }
  return t;
}

Tensor ToStrict(const Tensor& host) {
  Tensor t = Dev().Empty(host.shape(), host.dtype(), kAct);
  Dev().Copy(t, host);
  return t;
}
Tensor ToHost(const Tensor& t) {
  Tensor host = Tensor::Empty(t.shape(), t.dtype(), kAct);
  Dev().Copy(host, t);
  return host;
}
// An f32 host tensor's values on the strict device as `dtype`.
Tensor ToStrictAs(const Tensor& host, DType dtype) {
  Tensor t = Dev().Empty(host.shape(), dtype, kAct);
  Dev().Convert(t, ToStrict(host));
  return t;
}
// A strict float tensor's values on the host as f32.
Tensor ToHostF32(const Tensor& t) {
  Tensor f32 = Dev().Empty(t.shape(), DType::kF32, kAct);
  Dev().Convert(f32, t);
  return ToHost(f32);
}

void ExpectBitEqual(const Tensor& expected, const Tensor& actual, const std::string& what) {
  ASSERT_EQ(expected.shape(), actual.shape()) << what;
  ASSERT_TRUE(expected.dtype() == actual.dtype()) << what;
  ASSERT_TRUE(expected.device().is_cpu() && actual.device().is_cpu()) << what;
  const auto* e = static_cast<const unsigned char*>(expected.raw_data());
  const auto* a = static_cast<const unsigned char*>(actual.raw_data());
  const size_t size = DTypeSize(expected.dtype());
  for (int64_t i = 0; i < expected.numel(); ++i) {
    if (std::memcmp(e + i * size, a + i * size, size) != 0) {
      ADD_FAILURE() << what << ": element " << i << " differs"
                    << (expected.dtype() == DType::kF32
                            ? ": " + std::to_string(expected.data<float>()[i]) + " vs " +
                                  std::to_string(actual.data<float>()[i])
                            : std::string());
      return;
    }
  }
}

using Op = std::function<void(const Backend&, const std::vector<Tensor>&)>;

// Runs `op` on the CPU backend over copies of the host tensors `args` and on the strict backend
// over device copies of them; every argument (outputs included) must end bit-identical.
void ExpectMatchesCpu(const std::vector<Tensor>& args, const Op& op) {
  std::vector<Tensor> cpu_args, dev_args;
  for (const Tensor& a : args) {
    cpu_args.push_back(a.Clone());
    dev_args.push_back(ToStrict(a));
  }
  op(CpuBackend(), cpu_args);
  op(Dev(), dev_args);
  bool changed = false;
  for (size_t i = 0; i < args.size(); ++i) {
    ExpectBitEqual(cpu_args[i], ToHost(dev_args[i]), "argument " + std::to_string(i));
    changed =
        changed || std::memcmp(cpu_args[i].raw_data(), args[i].raw_data(), args[i].nbytes()) != 0;
  }
  EXPECT_TRUE(changed) << "the op wrote nothing";
}

TEST(StrictBackendTest, IsItsOwnDevice) {
  EXPECT_EQ(Dev().name(), "strict");
  EXPECT_TRUE(Dev().device() == Device::Strict());
  Tensor t = Dev().Empty({2, 3}, DType::kF32, kAct);
  EXPECT_TRUE(t.device() == Device::Strict());
  EXPECT_TRUE(IsStrictDevicePointer(t.raw_data()));
  EXPECT_TRUE(IsStrictDevicePointer(t.Slice(1, 2).raw_data()));
  Tensor host = Tensor::Empty({2}, DType::kF32, kAct);
  EXPECT_FALSE(IsStrictDevicePointer(host.raw_data()));
}

// --- every op, f32: bit for bit the CPU backend ---

TEST(StrictBackendTest, LinearForwardMatchesCpu) {
  ExpectMatchesCpu({Random({N, OC}, 1), Random({N, C}, 2), Random({OC, C}, 3), Random({OC}, 4)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.LinearForward(a[0], a[1], a[2], &a[3]);
                   });
  ExpectMatchesCpu({Random({N, OC}, 1), Random({N, C}, 2), Random({OC, C}, 3)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.LinearForward(a[0], a[1], a[2], nullptr);
                   });
}

TEST(StrictBackendTest, LinearBackwardMatchesCpu) {
  for (GradWrite write : {GradWrite::kOverwrite, GradWrite::kAdd}) {
    SCOPED_TRACE(write == GradWrite::kAdd ? "kAdd" : "kOverwrite");
    ExpectMatchesCpu({Random({N, C}, 5), Random({OC, C}, 6), Random({OC}, 7), Random({N, OC}, 8),
                      Random({N, C}, 9), Random({OC, C}, 10)},
                     [write](const Backend& be, const std::vector<Tensor>& a) {
                       be.LinearBackward(&a[0], write, &a[1], &a[2], a[3], a[4], a[5]);
                     });
  }
  // Input gradient only, then parameter gradients only.
  ExpectMatchesCpu({Random({N, C}, 5), Random({N, OC}, 8), Random({N, C}, 9), Random({OC, C}, 10)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.LinearBackward(&a[0], GradWrite::kOverwrite, nullptr, nullptr, a[1], a[2],
                                       a[3]);
                   });
  ExpectMatchesCpu({Random({OC, C}, 6), Random({OC}, 7), Random({N, OC}, 8), Random({N, C}, 9),
                    Random({OC, C}, 10)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.LinearBackward(nullptr, GradWrite::kOverwrite, &a[0], &a[1], a[2], a[3],
                                       a[4]);
                   });
}

TEST(StrictBackendTest, LayerNormMatchesCpu) {
  ExpectMatchesCpu({Random({N, C}, 11), Random({N}, 12), Random({N}, 13), Random({N, C}, 14, -3, 3),
                    Random({C}, 15), Random({C}, 16)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.LayerNormForward(a[0], a[1], a[2], a[3], a[4], a[5], 1e-5);
                   });
  ExpectMatchesCpu({Random({N, C}, 17), Random({C}, 18), Random({C}, 19), Random({N, C}, 20),
                    Random({N, C}, 21), Random({C}, 22), Random({N}, 23), Random({N}, 24, 0.5, 2)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.LayerNormBackward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
                   });
}

TEST(StrictBackendTest, DeepNormMatchesCpu) {
  ExpectMatchesCpu({Random({N, C}, 25), Random({N}, 26), Random({N}, 27), Random({N, C}, 28),
                    Random({N, C}, 29), Random({C}, 30), Random({C}, 31)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.DeepNormForward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], 1.7, 1e-5);
                   });
  // dx and dg both, then each alone.
  for (int which = 0; which < 3; ++which) {
    SCOPED_TRACE(which);
    ExpectMatchesCpu({Random({N, C}, 32), Random({N, C}, 33), Random({C}, 34), Random({C}, 35),
                      Random({N, C}, 36), Random({N, C}, 37), Random({N, C}, 38), Random({C}, 39),
                      Random({N}, 40), Random({N}, 41, 0.5, 2)},
                     [which](const Backend& be, const std::vector<Tensor>& a) {
                       be.DeepNormBackward(which != 2 ? &a[0] : nullptr,
                                           which != 1 ? &a[1] : nullptr, a[2], a[3], a[4], a[5],
                                           a[6], a[7], a[8], a[9], 1.7);
                     });
  }
}

// Attention with a key padding mask and dropout (Tq < Tk), and causal self-attention.
TEST(StrictBackendTest, AttentionMatchesCpu) {
  for (bool causal : {false, true}) {
    SCOPED_TRACE(causal ? "causal" : "padded");
    const AttentionShape s{.B = B, .Tq = causal ? 4 : 3, .Tk = 4, .H = 2, .D = 4, .causal = causal};
    const int c = s.H * s.D;
    Tensor mask = Tensor::Zeros({s.B, s.Tk}, DType::kU8, kAct);
    mask.data<uint8_t>()[s.Tk - 1] = 1;  // batch 0 pads its last key
    const float dropout = causal ? 0.0f : 0.25f;
    ExpectMatchesCpu({Random({s.B, s.Tq, c}, 42), Random({s.B, s.H, s.Tq, s.Tk}, 43),
                      Random({s.B, s.Tq, c}, 44, -2, 2), Random({s.B, s.Tk, c}, 45, -2, 2),
                      Random({s.B, s.Tk, c}, 46), mask},
                     [&](const Backend& be, const std::vector<Tensor>& a) {
                       be.AttentionForward(a[0], a[1], a[2], a[3], a[4], causal ? nullptr : &a[5],
                                           s, dropout, kStream);
                     });
    // Backward from the forward's probabilities, computed on the CPU.
    Tensor q = Random({s.B, s.Tq, c}, 47, -2, 2), k = Random({s.B, s.Tk, c}, 48, -2, 2),
           v = Random({s.B, s.Tk, c}, 49);
    Tensor out = Tensor::Empty({s.B, s.Tq, c}, DType::kF32, kAct);
    Tensor probs = Tensor::Empty({s.B, s.H, s.Tq, s.Tk}, DType::kF32, kAct);
    CpuBackend().AttentionForward(out, probs, q, k, v, causal ? nullptr : &mask, s, dropout,
                                  kStream);
    ExpectMatchesCpu({Random({s.B, s.Tq, c}, 50), Random({s.B, s.Tk, c}, 51),
                      Random({s.B, s.Tk, c}, 52), Random({s.B, s.Tq, c}, 53), q, k, v, probs},
                     [&](const Backend& be, const std::vector<Tensor>& a) {
                       be.AttentionBackward(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], s,
                                            dropout, kStream);
                     });
  }
}

TEST(StrictBackendTest, PointwiseMatchesCpu) {
  for (ActivationKind kind : {ActivationKind::kRelu, ActivationKind::kGelu}) {
    ExpectMatchesCpu({Random({N, C}, 54), Random({N, C}, 55, -3, 3)},
                     [kind](const Backend& be, const std::vector<Tensor>& a) {
                       be.ActivationForward(kind, a[0], a[1]);
                     });
    ExpectMatchesCpu({Random({N, C}, 56), Random({N, C}, 57), Random({N, C}, 58, -3, 3)},
                     [kind](const Backend& be, const std::vector<Tensor>& a) {
                       be.ActivationBackward(kind, a[0], a[1], a[2]);
                     });
  }
  ExpectMatchesCpu({Random({N, C}, 59), Random({N, C}, 60)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.DropoutForward(a[0], a[1], 0.3f, kStream);
                   });
  ExpectMatchesCpu({Random({N, C}, 61), Random({N, C}, 62)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.DropoutBackward(a[0], a[1], 0.3f, kStream);
                   });
  ExpectMatchesCpu(
      {Random({N, C}, 63), Random({N, C}, 64), Random({N, C}, 65)},
      [](const Backend& be, const std::vector<Tensor>& a) { be.Add(a[0], a[1], a[2]); });
  ExpectMatchesCpu(
      {Random({N, C}, 66), Random({N, C}, 67)},
      [](const Backend& be, const std::vector<Tensor>& a) { be.Axpy(a[0], a[1], -0.7); });
  ExpectMatchesCpu(
      {Random({N, C}, 68), Random({N, C}, 69)},
      [](const Backend& be, const std::vector<Tensor>& a) { be.Scale(a[0], a[1], 0.3); });
}

// In place (the output is also an input), and views: a Reshape of the same storage and a Slice.
TEST(StrictBackendTest, InPlaceAndViewsMatchCpu) {
  ExpectMatchesCpu(
      {Random({N, C}, 70), Random({N, C}, 71)},
      [](const Backend& be, const std::vector<Tensor>& a) { be.Add(a[0], a[0], a[1]); });
  ExpectMatchesCpu({Random({N, C}, 72), Random({N, C}, 73)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.Add(a[0], a[1], a[0].Reshape({-1}));
                   });
  ExpectMatchesCpu({Random({N, C}, 74)}, [](const Backend& be, const std::vector<Tensor>& a) {
    be.Scale(a[0], a[0], 3.0);
  });
  ExpectMatchesCpu({Random({N, C}, 75)}, [](const Backend& be, const std::vector<Tensor>& a) {
    be.Axpy(a[0], a[0], 0.5);
  });
  ExpectMatchesCpu({Random({N, C}, 76), Random({N, C}, 77)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.Add(a[0].Slice(2, 4), a[0].Slice(4, 6), a[1].Slice(0, 2));
                   });
  ExpectMatchesCpu({Random({N, C}, 78)}, [](const Backend& be, const std::vector<Tensor>& a) {
    be.ActivationForward(ActivationKind::kGelu, a[0], a[0]);
  });
}

TEST(StrictBackendTest, EmbeddingMatchesCpu) {
  ExpectMatchesCpu({Random({N, C}, 79), RandomIds({N}, 80, V), Random({V, C}, 81)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.EmbeddingForward(a[0], a[1], a[2], 2.5);
                   });
  ExpectMatchesCpu({Random({V, C}, 82), RandomIds({N}, 83, V), Random({N, C}, 84)},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.EmbeddingBackward(a[0], a[1], a[2], 2.5);
                   });
  ExpectMatchesCpu({Random({B, T, C}, 85)}, [](const Backend& be, const std::vector<Tensor>& a) {
    be.PositionsAdd(a[0], 5);
  });
}

TEST(StrictBackendTest, CrossEntropyMatchesCpu) {
  constexpr int kIgnore = -100;
  Tensor targets = RandomIds({N}, 86, V);
  targets.data<int32_t>()[2] = kIgnore;
  ExpectMatchesCpu({Random({N}, 87), Random({N}, 88), Random({N, V}, 89, -4, 4), targets},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.CrossEntropyForward(a[0], a[1], a[2], a[3], 0.1, kIgnore);
                   });
  Tensor logits = Random({N, V}, 90, -4, 4);
  Tensor losses = Tensor::Empty({N}, DType::kF32, kAct),
         lse = Tensor::Empty({N}, DType::kF32, kAct);
  CpuBackend().CrossEntropyForward(losses, lse, logits, targets, 0.1, kIgnore);
  ExpectMatchesCpu({Random({N, V}, 91), logits, lse, targets},
                   [](const Backend& be, const std::vector<Tensor>& a) {
                     be.CrossEntropyBackward(a[0], a[1], a[2], a[3], 0.25, 0.1, kIgnore);
                   });
}

TEST(StrictBackendTest, OptimizerMatchesCpu) {
  const AdamWConfig config{
      .lr = 0.01, .beta1 = 0.9, .beta2 = 0.98, .eps = 1e-8, .weight_decay = 0.1};
  ExpectMatchesCpu({Random({OC, C}, 92), Random({OC, C}, 93, -0.1, 0.1),
                    Random({OC, C}, 94, 0, 0.1), Random({OC, C}, 95)},
                   [&](const Backend& be, const std::vector<Tensor>& a) {
                     be.AdamW(a[0], a[1], a[2], a[3], config, 3, 0.5);
                   });
  Tensor x = Random({N, C}, 96);
  EXPECT_EQ(Dev().SumOfSquares(ToStrict(x)), CpuBackend().SumOfSquares(x));
}

// --- 16-bit tensors: computed in f32, outputs rounded to their dtype ---

TEST(StrictBackendTest, LinearForwardRounds16BitOutputs) {
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(std::string(DTypeName(dtype)));
    // Inputs the 16-bit dtype holds exactly, so only the output is rounded.
    Tensor inp = Rounded(Random({N, C}, 97), dtype), weight = Rounded(Random({OC, C}, 98), dtype),
           bias = Rounded(Random({OC}, 99), dtype);
    Tensor expected = Tensor::Empty({N, OC}, DType::kF32, kAct);
    CpuBackend().LinearForward(expected, inp, weight, &bias);

    Tensor out = Dev().Empty({N, OC}, dtype, kAct);
    const Tensor dev_bias = ToStrictAs(bias, dtype);
    Dev().LinearForward(out, ToStrictAs(inp, dtype), ToStrictAs(weight, dtype), &dev_bias);
    const Tensor actual = ToHostF32(out);
    int rounded = 0;
    for (int64_t i = 0; i < expected.numel(); ++i) {
      const float e = expected.data<float>()[i];
      EXPECT_EQ(actual.data<float>()[i], static_cast<float>(RoundToDType(dtype, e))) << i;
      rounded += actual.data<float>()[i] != e;
    }
    EXPECT_GT(rounded, 0) << "no output element was rounded";
  }
}

// f32 parameter gradients beside bf16 activations accumulate in f32, exactly as on the CPU.
TEST(StrictBackendTest, F32GradientsBeside16BitActivationsAccumulateInF32) {
  const DType bf16 = DType::kBF16;
  Tensor dout = Rounded(Random({N, OC}, 100), bf16), inp = Rounded(Random({N, C}, 101), bf16),
         weight = Rounded(Random({OC, C}, 102), bf16);
  Tensor dweight = Random({OC, C}, 103), dbias = Random({OC}, 104);  // not bf16-representable
  Tensor cpu_dinp = Tensor::Empty({N, C}, DType::kF32, kAct);
  Tensor cpu_dweight = dweight.Clone(), cpu_dbias = dbias.Clone();
  CpuBackend().LinearBackward(&cpu_dinp, GradWrite::kOverwrite, &cpu_dweight, &cpu_dbias, dout, inp,
                              weight);

  Tensor dinp = Dev().Empty({N, C}, bf16, kAct);
  const Tensor dev_dweight = ToStrict(dweight), dev_dbias = ToStrict(dbias);
  Dev().LinearBackward(&dinp, GradWrite::kOverwrite, &dev_dweight, &dev_dbias,
                       ToStrictAs(dout, bf16), ToStrictAs(inp, bf16), ToStrictAs(weight, bf16));
  ExpectBitEqual(cpu_dweight, ToHost(dev_dweight), "dweight");
  ExpectBitEqual(cpu_dbias, ToHost(dev_dbias), "dbias");
  ExpectBitEqual(Rounded(cpu_dinp, bf16), ToHostF32(dinp), "dinp");
  int not_bf16 = 0;
  for (int64_t i = 0; i < cpu_dweight.numel(); ++i) {
    const float w = cpu_dweight.data<float>()[i];
    not_bf16 += static_cast<float>(RoundToDType(bf16, w)) != w;
  }
  EXPECT_GT(not_bf16, 0) << "dweight holds only bf16 values: accumulated in 16 bits?";
}

// AdamW on a bf16 parameter: the f32 update rounded to bf16; the f32 moments are not rounded.
TEST(StrictBackendTest, AdamWRoundsA16BitParameter) {
  const AdamWConfig config{.lr = 0.01};
  Tensor param = Rounded(Random({OC, C}, 105), DType::kBF16), grad = Random({OC, C}, 106);
  Tensor m = Random({OC, C}, 107, -0.1, 0.1), v = Random({OC, C}, 108, 0, 0.1);
  // The CPU in f32 from the same values: the bf16 gradient's, the bf16 parameter's.
  Tensor p = param.Clone(), cpu_m = m.Clone(), cpu_v = v.Clone();
  CpuBackend().AdamW(p, cpu_m, cpu_v, Rounded(grad, DType::kBF16), config, 1, 1.0);

  const Tensor dev_param = ToStrictAs(param, DType::kBF16), dev_m = ToStrict(m),
               dev_v = ToStrict(v);
  Dev().AdamW(dev_param, dev_m, dev_v, ToStrictAs(grad, DType::kBF16), config, 1, 1.0);
  ExpectBitEqual(Rounded(p, DType::kBF16), ToHostF32(dev_param), "param");
  ExpectBitEqual(cpu_m, ToHost(dev_m), "m");
  ExpectBitEqual(cpu_v, ToHost(dev_v), "v");
}

// --- memory ---

TEST(StrictBackendTest, CopyRoundTrip) {
  const Tensor host = Random({N, C}, 109);
  const Tensor a = ToStrict(host);
  Tensor b = Dev().Empty({N * C}, DType::kF32, kAct);
  Dev().Copy(b, a);  // strict -> strict, another shape of the same numel
  ExpectBitEqual(host, ToHost(b).Reshape({N, C}), "host -> strict -> strict -> host");

  // Into a slice: only those rows change.
  Dev().Copy(b.Reshape({N, C}).Slice(1, 2), host.Slice(4, 5));
  const Tensor back = ToHost(b).Reshape({N, C});
  ExpectBitEqual(host.Slice(4, 5), back.Slice(1, 2), "row 1");
  ExpectBitEqual(host.Slice(0, 1), back.Slice(0, 1), "row 0");
  ExpectBitEqual(host.Slice(2, N), back.Slice(2, N), "rows 2..");

  // Empty tensors and host -> host.
  Dev().Copy(Dev().Empty({0, C}, DType::kF32, kAct), Tensor::Empty({0, C}, DType::kF32, kAct));
  Tensor host_copy = Tensor::Empty({N, C}, DType::kF32, kAct);
  Dev().Copy(host_copy, host);
  ExpectBitEqual(host, host_copy, "host -> host");
}

TEST(StrictBackendTest, ConvertRoundsToDType) {
  const Tensor host = Random({N, C}, 110, -100, 100);
  for (DType dtype : {DType::kBF16, DType::kF16}) {
    SCOPED_TRACE(std::string(DTypeName(dtype)));
    const Tensor actual = ToHostF32(ToStrictAs(host, dtype));
    ExpectBitEqual(Rounded(host, dtype), actual, "f32 -> 16-bit -> f32");
  }
}

TEST(StrictBackendTest, ZeroAndZeros) {
  const Tensor t = ToStrict(Random({N, C}, 111));
  Dev().Zero(t.Slice(1, 3));
  const Tensor host = ToHost(t);
  for (int64_t i = 0; i < host.numel(); ++i) {
    EXPECT_EQ(host.data<float>()[i] == 0.0f, i >= C && i < 3 * C) << i;
  }
  const Tensor zeros = ToHost(Dev().Zeros({3, 4}, DType::kI32, kAct));
  for (int64_t i = 0; i < zeros.numel(); ++i) EXPECT_EQ(zeros.data<int32_t>()[i], 0);
}

TEST(StrictBackendTest, CountsItsMemory) {
  Dev();  // registers the allocator
  Allocator& allocator = GetAllocator(Device::Strict());
  const MemoryStats before = allocator.stats();
  const int64_t host_before = GetAllocator(Device::Cpu()).stats().total_current;
  {
    Tensor t = Dev().Empty({10, 7}, DType::kBF16, MemoryCategory::kGradients);
    const MemoryStats during = allocator.stats();
    EXPECT_EQ(during.total_current - before.total_current, 140);
    EXPECT_EQ(during.current_of(MemoryCategory::kGradients) -
                  before.current_of(MemoryCategory::kGradients),
              140);
    EXPECT_EQ(GetAllocator(Device::Cpu()).stats().total_current, host_before)
        << "a strict tensor was charged to the host";
  }
  EXPECT_EQ(allocator.stats().total_current, before.total_current);
}

// --- what the strict device catches ---

TEST(StrictBackendDeathTest, HostDereferenceCrashes) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Tensor t = ToStrict(Random({4}, 112));
  EXPECT_DEATH(
      {
        volatile float x = *t.data<float>();
        (void)x;
      },
      "");
  const Tensor view = t.Slice(2, 4);
  EXPECT_DEATH(
      {
        volatile float x = *view.data<float>();
        (void)x;
      },
      "");
}

TEST(StrictBackendDeathTest, HostTensorPassedToAnOpDies) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Tensor dev = ToStrict(Random({N, C}, 113));
  const Tensor host = Random({N, C}, 114);
  EXPECT_DEATH(Dev().Add(host, dev, dev), "strict Add: .* is not on the strict device");
  EXPECT_DEATH(Dev().Scale(dev, host, 2.0), "strict Scale: .* is not on the strict device");
  EXPECT_DEATH(Dev().SumOfSquares(host), "strict SumOfSquares");
  EXPECT_DEATH(Dev().Zero(host), "strict Zero");
  EXPECT_DEATH(Dev().Convert(dev, host), "strict Convert");
  const Tensor bias = Random({OC}, 115);
  EXPECT_DEATH(Dev().LinearForward(ToStrict(Random({N, OC}, 116)), dev,
                                   ToStrict(Random({OC, C}, 117)), &bias),
               "strict LinearForward");
  EXPECT_DEATH(StrictHostAddress(host.raw_data()), "not strict device memory");
}

TEST(StrictBackendDeathTest, RejectsWhatCudaRejects) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Tensor f64 = Dev().Zeros({N, C}, DType::kF64, kAct);
  EXPECT_DEATH(Dev().Scale(f64, f64, 2.0), "f32, bf16 or f16");
  const Tensor table = ToStrict(Random({V, C}, 118));
  const Tensor float_tokens = ToStrict(Random({N}, 119));
  EXPECT_DEATH(Dev().EmbeddingForward(ToStrict(Random({N, C}, 120)), float_tokens, table, 1.0),
               "want i32");
  const Tensor bf16 = Dev().Zeros({OC, C}, DType::kBF16, kAct);
  EXPECT_DEATH(Dev().AdamW(bf16, bf16, bf16, bf16, {}, 1, 1.0), "moments must be f32");
}

TEST(StrictBackendDeathTest, OutputPartiallyOverlappingAnArgumentDies) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const Tensor t = ToStrict(Random({N, C}, 121));
  EXPECT_DEATH(Dev().Scale(t.Slice(0, 3), t.Slice(1, 4), 2.0), "partially overlaps");
}

}  // namespace
}  // namespace deepnet
