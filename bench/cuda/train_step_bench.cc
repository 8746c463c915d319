// One training step of a decoder-only DeepNet on the CUDA backend: tokens/s and MFU.
//
// The model (default 24 layers, d = 1024, 16 heads, FFN 4096, vocab 32000, tied embedding) is
// written here directly against CudaBackend ops in the mixed-precision policy of
// kernels/cuda/mixed_precision.h: bf16 weights and activations, fp32 parameter gradients (from
// the GEMMs directly), fp32 master weights and Adam moments, a multi-tensor AdamW that writes the
// bf16 copies. A step: embedding + positions, per layer x ← LN(α·x + drop(attn(x))) and
// x ← LN(α·x + drop(ffn(x))) (causal flash attention, GELU), tied output projection, label-smoothed
// cross-entropy, the whole backward, the global gradient norm (one host sync), AdamW.
// Everything is allocated once; the step time is the host wall time of a synchronised step.
// (B, T, C) tensors go straight into the row ops: the backend takes rows = numel / last dim.
//
// MFU = 6 · parameters · tokens/s / peak dense bf16 FLOP/s (the usual 6·N·D count: attention's
// own FLOPs are not included). The peak comes from a table by device name (H100 SXM and H200:
// 989 TFLOP/s) or --peak_tflops.
// Letters: B batch, T time, N = B·T tokens, C d_model, F ffn dim, V vocab, H heads.
// Without a GPU it prints "no usable GPU: <reason>" and exits 0.
#include <cuda_runtime_api.h>
#include <gflags/gflags.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/device.h"

DEFINE_int32(layers, 24, "decoder layers");
DEFINE_int32(d_model, 1024, "model width C");
DEFINE_int32(heads, 16, "attention heads");
DEFINE_int32(ffn, 4096, "feed-forward width F");
DEFINE_int32(vocab, 32000, "vocabulary V");
DEFINE_int32(batch, 8, "sequences per step B");
DEFINE_int32(seq, 1024, "tokens per sequence T");
DEFINE_int32(steps, 10, "timed steps (median reported)");
DEFINE_int32(warmup, 3, "untimed steps first");
DEFINE_double(dropout, 0.1, "residual and attention dropout");
DEFINE_double(peak_tflops, 0.0, "peak dense bf16 TFLOP/s (0: from the device-name table)");

namespace deepnet::cuda {
namespace {

// Peak dense bf16 tensor-core TFLOP/s by device name; the first entry contained in the name wins.
struct PeakEntry {
  const char* name_part;
  double tflops;
};
constexpr PeakEntry kPeaks[] = {
    {"H100 PCIe", 756.0}, {"H100 NVL", 835.0}, {"GH200", 989.0}, {"H200", 989.0},
    {"H100", 989.0},      {"H800", 989.0},     {"A100", 312.0},  {"A800", 312.0},
};

double PeakTflops(const std::string& device_name) {
  if (FLAGS_peak_tflops > 0) return FLAGS_peak_tflops;
  for (const PeakEntry& entry : kPeaks) {
    if (device_name.find(entry.name_part) != std::string::npos) return entry.tflops;
  }
  return 0.0;
}

struct Sizes {
  int L, C, H, F, V, B, T;
  int N() const { return B * T; }
};

// Parameters live in flat buffers: f32 master, moments and gradients, bf16 compute copy. Each
// parameter is a view (the same offset in every buffer).
class ParameterStore {
 public:
  ParameterStore(const CudaBackend& gpu, int64_t total) : gpu_(gpu) {
    master_ = gpu.Empty({total}, DType::kF32, MemoryCategory::kParameters);
    m_ = gpu.Zeros({total}, DType::kF32, MemoryCategory::kOptimizerState);
    v_ = gpu.Zeros({total}, DType::kF32, MemoryCategory::kOptimizerState);
    grad_ = gpu.Zeros({total}, DType::kF32, MemoryCategory::kGradients);
    compute_ = gpu.Empty({total}, DType::kBF16, MemoryCategory::kParameters);
  }

  struct View {
    Tensor weight;  // bf16
    Tensor grad;    // f32
  };
  View Add(const Shape& shape) {
    const int64_t n = NumElements(shape), begin = used_;
    used_ += n;
    CHECK_LE(used_, master_.numel());
    params_.push_back({master_.Slice(begin, used_), m_.Slice(begin, used_), v_.Slice(begin, used_),
                       grad_.Slice(begin, used_), compute_.Slice(begin, used_)});
    return {compute_.Slice(begin, used_).Reshape(shape), grad_.Slice(begin, used_).Reshape(shape)};
  }

  // Small random weights (a tiled pattern: values only need to be finite and not degenerate).
  void Initialize() {
    constexpr int64_t kPattern = 1 << 20;
    Tensor host = Tensor::Empty({kPattern}, DType::kF32, MemoryCategory::kOther);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    for (int64_t i = 0; i < kPattern; ++i) host.data<float>()[i] = normal(rng);
    for (int64_t begin = 0; begin < master_.numel(); begin += kPattern) {
      const int64_t end = std::min(master_.numel(), begin + kPattern);
      gpu_.Copy(master_.Slice(begin, end), host.Slice(0, end - begin));
    }
    gpu_.Convert(compute_, master_);
  }

  void ZeroGrads() const { gpu_.Zero(grad_); }
  const Tensor& grads() const { return grad_; }
  const std::vector<AdamWParam>& params() const { return params_; }
  int64_t count() const { return used_; }

 private:
  const CudaBackend& gpu_;
  Tensor master_, m_, v_, grad_, compute_;
  std::vector<AdamWParam> params_;
  int64_t used_ = 0;
};

int64_t ParameterCount(const Sizes& s) {
  const int64_t per_layer = 4LL * s.C * s.C + 4LL * s.C + 2LL * s.C * s.F + s.F + s.C + 4LL * s.C;
  return s.L * per_layer + int64_t{s.V} * s.C;
}

struct Layer {
  ParameterStore::View wq, bq, wk, bk, wv, bv, wo, bo, ln1_g, ln1_b, w1, b1, w2, b2, ln2_g, ln2_b;
  // Saved activations of one step.
  Tensor x, q, k, v, stats, ctx, attn_dropped, attn_mean, attn_rstd, x_mid, hidden, act,
      ffn_dropped, ffn_mean, ffn_rstd;
};

class Model {
 public:
  Model(const CudaBackend& gpu, const Sizes& s)
      : gpu_(gpu), s_(s), store_(gpu, ParameterCount(s)), alpha_(std::pow(2.0 * s.L, 0.25)) {
    shape_ = {.B = s.B, .Tq = s.T, .Tk = s.T, .H = s.H, .D = s.C / s.H, .causal = true};
    embedding_ = store_.Add({s.V, s.C});
    const int64_t N = s.N();
    auto act = [&](const Shape& shape, DType dtype = DType::kBF16) {
      return gpu.Empty(shape, dtype, MemoryCategory::kActivations);
    };
    for (int l = 0; l < s.L; ++l) {
      Layer layer;
      for (auto [w, b] : {std::pair{&layer.wq, &layer.bq}, std::pair{&layer.wk, &layer.bk},
                          std::pair{&layer.wv, &layer.bv}, std::pair{&layer.wo, &layer.bo}}) {
        *w = store_.Add({s.C, s.C});
        *b = store_.Add({s.C});
      }
      layer.w1 = store_.Add({s.F, s.C});
      layer.b1 = store_.Add({s.F});
      layer.w2 = store_.Add({s.C, s.F});
      layer.b2 = store_.Add({s.C});
      for (auto* norm : {&layer.ln1_g, &layer.ln1_b, &layer.ln2_g, &layer.ln2_b}) {
        *norm = store_.Add({s.C});
      }
      for (Tensor* t : {&layer.x, &layer.q, &layer.k, &layer.v, &layer.ctx, &layer.attn_dropped,
                        &layer.x_mid, &layer.ffn_dropped}) {
        *t = act({s.B, s.T, s.C});
      }
      layer.stats =
          act({static_cast<int64_t>(CudaBackend::AttentionStatsBytes(shape_))}, DType::kU8);
      layer.hidden = act({N, s.F});
      layer.act = act({N, s.F});
      for (Tensor* t : {&layer.attn_mean, &layer.attn_rstd, &layer.ffn_mean, &layer.ffn_rstd}) {
        *t = act({N}, DType::kF32);
      }
      layers_.push_back(std::move(layer));
    }
    CHECK_EQ(store_.count(), ParameterCount(s));
    x_final_ = act({s.B, s.T, s.C});
    for (Tensor* t : {&tmp_c_, &tmp_c2_, &grad_x_, &grad_mid_, &grad_q_, &grad_k_, &grad_v_}) {
      *t = act({s.B, s.T, s.C});
    }
    tmp_f_ = act({N, s.F});
    tmp_f2_ = act({N, s.F});
    logits_ = act({N, s.V});
    losses_ = act({N}, DType::kF32);
    lse_ = act({N}, DType::kF32);
    Tensor host_tokens = Tensor::Empty({N}, DType::kI32, MemoryCategory::kOther);
    std::mt19937 rng(2);
    for (int64_t n = 0; n < N; ++n) host_tokens.data<int32_t>()[n] = rng() % s.V;
    tokens_ = act({N}, DType::kI32);
    targets_ = act({N}, DType::kI32);
    gpu.Copy(tokens_, host_tokens);
    gpu.Copy(targets_, host_tokens);
    store_.Initialize();
  }

  int64_t parameters() const { return store_.count(); }

  // One full step; returns the loss-independent gradient norm (forces the one host sync).
  double Step(uint32_t step) {
    store_.ZeroGrads();
    Forward(step);
    Backward(step);
    const double norm = std::sqrt(gpu_.SumOfSquares(store_.grads()));
    const double clip = std::isfinite(norm) && norm > 1.0 ? 1.0 / norm : 1.0;
    gpu_.MultiTensorAdamW(store_.params(), AdamWConfig{.lr = 1e-4, .weight_decay = 0.01}, step + 1,
                          clip);
    return norm;
  }

 private:
  RngStream Rng(uint32_t step, int layer, int site) const {
    return {.seed = 42,
            .step = step,
            .micro_batch = 0,
            .site = static_cast<uint32_t>(layer * 8 + site)};
  }
  float dropout() const { return static_cast<float>(FLAGS_dropout); }

  void Forward(uint32_t step) {
    gpu_.EmbeddingForward(layers_[0].x, tokens_, embedding_.weight, std::sqrt(s_.C));
    gpu_.PositionsAdd(layers_[0].x, 0);
    for (int l = 0; l < s_.L; ++l) {
      Layer& y = layers_[l];
      const Tensor& out = l + 1 < s_.L ? layers_[l + 1].x : x_final_;
      gpu_.LinearForward(y.q, y.x, y.wq.weight, &y.bq.weight);
      gpu_.LinearForward(y.k, y.x, y.wk.weight, &y.bk.weight);
      gpu_.LinearForward(y.v, y.x, y.wv.weight, &y.bv.weight);
      gpu_.AttentionForward(y.ctx, y.stats, y.q, y.k, y.v, nullptr, shape_, dropout(),
                            Rng(step, l, 0));
      gpu_.LinearForward(tmp_c_, y.ctx, y.wo.weight, &y.bo.weight);
      gpu_.DropoutForward(y.attn_dropped, tmp_c_, dropout(), Rng(step, l, 1));
      gpu_.DeepNormForward(y.x_mid, y.attn_mean, y.attn_rstd, y.x, y.attn_dropped, y.ln1_g.weight,
                           y.ln1_b.weight, alpha_, 1e-5);
      gpu_.LinearForward(y.hidden, y.x_mid, y.w1.weight, &y.b1.weight);
      gpu_.ActivationForward(ActivationKind::kGelu, y.act, y.hidden);
      gpu_.LinearForward(tmp_c_, y.act, y.w2.weight, &y.b2.weight);
      gpu_.DropoutForward(y.ffn_dropped, tmp_c_, dropout(), Rng(step, l, 2));
      gpu_.DeepNormForward(out, y.ffn_mean, y.ffn_rstd, y.x_mid, y.ffn_dropped, y.ln2_g.weight,
                           y.ln2_b.weight, alpha_, 1e-5);
    }
    gpu_.LinearForward(logits_, x_final_, embedding_.weight, nullptr);
    gpu_.CrossEntropyForward(losses_, lse_, logits_, targets_, 0.1, -1);
  }

  void Backward(uint32_t step) {
    // dlogits overwrite the logits (the CE backward reads each element before writing it).
    gpu_.CrossEntropyBackward(logits_, logits_, lse_, targets_, 1.0 / s_.N(), 0.1, -1);
    gpu_.LinearBackward(&grad_x_, GradWrite::kOverwrite, &embedding_.grad, nullptr, logits_,
                        x_final_, embedding_.weight);
    for (int l = s_.L - 1; l >= 0; --l) {
      Layer& y = layers_[l];
      // Feed-forward sublayer: grad_x_ holds the gradient at its output.
      gpu_.DeepNormBackward(&grad_mid_, &tmp_c_, y.ln2_g.grad, y.ln2_b.grad, grad_x_, y.x_mid,
                            y.ffn_dropped, y.ln2_g.weight, y.ffn_mean, y.ffn_rstd, alpha_);
      gpu_.DropoutBackward(tmp_c_, tmp_c_, dropout(), Rng(step, l, 2));
      gpu_.LinearBackward(&tmp_f_, GradWrite::kOverwrite, &y.w2.grad, &y.b2.grad, tmp_c_, y.act,
                          y.w2.weight);
      gpu_.ActivationBackward(ActivationKind::kGelu, tmp_f2_, tmp_f_, y.hidden);
      gpu_.LinearBackward(&grad_mid_, GradWrite::kAdd, &y.w1.grad, &y.b1.grad, tmp_f2_, y.x_mid,
                          y.w1.weight);
      // Attention sublayer.
      gpu_.DeepNormBackward(&grad_x_, &tmp_c_, y.ln1_g.grad, y.ln1_b.grad, grad_mid_, y.x,
                            y.attn_dropped, y.ln1_g.weight, y.attn_mean, y.attn_rstd, alpha_);
      gpu_.DropoutBackward(tmp_c_, tmp_c_, dropout(), Rng(step, l, 1));
      gpu_.LinearBackward(&tmp_c2_, GradWrite::kOverwrite, &y.wo.grad, &y.bo.grad, tmp_c_, y.ctx,
                          y.wo.weight);
      gpu_.AttentionBackward(grad_q_, grad_k_, grad_v_, tmp_c2_, y.q, y.k, y.v, y.stats, shape_,
                             dropout(), Rng(step, l, 0));
      for (auto [g, w, b] : {std::tuple{&grad_q_, &y.wq, &y.bq}, std::tuple{&grad_k_, &y.wk, &y.bk},
                             std::tuple{&grad_v_, &y.wv, &y.bv}}) {
        gpu_.LinearBackward(&grad_x_, GradWrite::kAdd, &w->grad, &b->grad, *g, y.x, w->weight);
      }
    }
    gpu_.EmbeddingBackward(embedding_.grad, tokens_, grad_x_, std::sqrt(s_.C));
  }

  const CudaBackend& gpu_;
  Sizes s_;
  ParameterStore store_;
  double alpha_;  // DeepNorm α of a decoder-only model, (2M)^(1/4)
  AttentionShape shape_;
  ParameterStore::View embedding_;
  std::vector<Layer> layers_;
  Tensor x_final_, tmp_c_, tmp_c2_, grad_x_, grad_mid_, grad_q_, grad_k_, grad_v_, tmp_f_, tmp_f2_,
      logits_, losses_, lse_, tokens_, targets_;
};

int Main() {
  StatusOr<std::unique_ptr<CudaBackend>> created = CudaBackend::Create();
  if (!created.ok()) {
    std::printf("no usable GPU: %s\n", created.status().ToString().c_str());
    return 0;
  }
  const CudaBackend& gpu = **created;
  const DeviceInfo info = *GetDeviceInfo(0);
  const Sizes s{FLAGS_layers, FLAGS_d_model, FLAGS_heads, FLAGS_ffn,
                FLAGS_vocab,  FLAGS_batch,   FLAGS_seq};
  CHECK_EQ(s.C % s.H, 0) << "heads must divide d_model";
  Model model(gpu, s);
  std::printf("%s: %d layers, d=%d, %d heads, FFN %d, V=%d, %d tokens/step, %.1fM parameters\n",
              info.name.c_str(), s.L, s.C, s.H, s.F, s.V, s.N(), model.parameters() / 1e6);

  using Clock = std::chrono::steady_clock;
  std::vector<double> seconds;
  double norm = 0.0;
  for (int step = 0; step < FLAGS_warmup + FLAGS_steps; ++step) {
    const auto start = Clock::now();
    norm = model.Step(static_cast<uint32_t>(step));
    gpu.Synchronize();
    if (step >= FLAGS_warmup) {
      seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
    }
  }
  std::sort(seconds.begin(), seconds.end());
  const double step_seconds = seconds[seconds.size() / 2];
  const double tokens_per_second = s.N() / step_seconds;
  const double peak = PeakTflops(info.name) * 1e12;
  std::printf("step %.1f ms (median of %d), %.0f tokens/s, gradient norm %.3g\n",
              step_seconds * 1e3, FLAGS_steps, tokens_per_second, norm);
  if (peak > 0) {
    const double flops = 6.0 * static_cast<double>(model.parameters()) * tokens_per_second;
    std::printf("MFU %.1f%% (6·params·tokens/s = %.0f TFLOP/s of %.0f peak dense bf16)\n",
                100.0 * flops / peak, flops / 1e12, peak / 1e12);
  } else {
    std::printf("MFU n/a: unknown device; pass --peak_tflops\n");
  }
  return 0;
}

}  // namespace
}  // namespace deepnet::cuda

int main(int argc, char** argv) {
  gflags::ParseCommandLineFlags(&argc, &argv, true);
  return deepnet::cuda::Main();
}
