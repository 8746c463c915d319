// The forward pass against a naive fp64 re-implementation of docs/design.md (DeepNorm, model
// conventions) written from the formulas (loops over std::vector): embeddings·√C + sinusoidal
// positions, DeepNorm / Post-LN / Pre-LN sublayers with α, attention with 1/√D scale, key padding
// and causal masks, FFN, final LN, output projection. Also: padded source tokens and future target
// tokens change nothing.
// Letters: B batch, S source length, T target length, C d_model, H heads, D head dim, F ffn_dim.
#include <cmath>
#include <functional>

#include "model/units.h"
#include "tests/model/model_test_util.h"

namespace deepnet {
namespace {

using config::ModelConfig;
using testing::BuildModel;
using testing::MakeBatch;
using testing::TinyConfig;
using testing::TinyOptions;
using Mat = std::vector<double>;  // row-major (rows, cols)

const double* Values(const Unit& unit, const std::string& name) {
  for (const Parameter& p : unit.parameters()) {
    if (p.name == name) return p.value.data<double>();
  }
  ADD_FAILURE() << "no parameter " << name;
  return nullptr;
}

Mat FromTensor(const Tensor& t) { return Mat(t.data<double>(), t.data<double>() + t.numel()); }

// out (rows, OC) = x (rows, C) · Wᵀ + b, W (OC, C).
Mat Linear(const Mat& x, int C, const double* w, const double* b, int OC) {
  const int rows = static_cast<int>(x.size()) / C;
  Mat out(static_cast<size_t>(rows) * OC);
  for (int r = 0; r < rows; ++r) {
    for (int o = 0; o < OC; ++o) {
      double sum = b != nullptr ? b[o] : 0.0;
      for (int i = 0; i < C; ++i) sum += x[r * C + i] * w[o * C + i];
      out[r * OC + o] = sum;
    }
  }
  return out;
}

Mat LayerNorm(const Mat& x, int C, const double* gamma, const double* beta) {
  Mat y(x.size());
  for (size_t r = 0; r < x.size() / C; ++r) {
    double mean = 0, var = 0;
    for (int c = 0; c < C; ++c) mean += x[r * C + c] / C;
    for (int c = 0; c < C; ++c) var += (x[r * C + c] - mean) * (x[r * C + c] - mean) / C;
    for (int c = 0; c < C; ++c) {
      y[r * C + c] = (x[r * C + c] - mean) / std::sqrt(var + 1e-5) * gamma[c] + beta[c];
    }
  }
  return y;
}

// Multi-head attention of unit parameters `prefix`: xq (B, Tq, C), xkv (B, Tk, C).
Mat Attention(const Unit& u, const std::string& prefix, const Mat& xq, const Mat& xkv, int B, int C,
              int H, const uint8_t* key_padding, bool causal) {
  auto proj = [&](const Mat& x, const char* name) {
    return Linear(x, C, Values(u, prefix + name + ".weight"), Values(u, prefix + name + ".bias"),
                  C);
  };
  const Mat q = proj(xq, ".q_proj"), k = proj(xkv, ".k_proj"), v = proj(xkv, ".v_proj");
  const int Tq = static_cast<int>(xq.size()) / (B * C), Tk = static_cast<int>(xkv.size()) / (B * C);
  const int D = C / H;
  Mat context(xq.size(), 0.0);
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < H; ++h) {
      for (int i = 0; i < Tq; ++i) {
        std::vector<double> p(Tk, 0.0);
        double max = -1e300, sum = 0;
        auto visible = [&](int j) {
          return !(causal && j > i) && !(key_padding != nullptr && key_padding[b * Tk + j]);
        };
        for (int j = 0; j < Tk; ++j) {
          if (!visible(j)) continue;
          for (int d = 0; d < D; ++d) {
            p[j] += q[(b * Tq + i) * C + h * D + d] * k[(b * Tk + j) * C + h * D + d];
          }
          p[j] /= std::sqrt(static_cast<double>(D));
          max = std::max(max, p[j]);
        }
        for (int j = 0; j < Tk; ++j) sum += visible(j) ? std::exp(p[j] - max) : 0.0;
        for (int j = 0; j < Tk; ++j) {
          const double weight = visible(j) ? std::exp(p[j] - max) / sum : 0.0;
          for (int d = 0; d < D; ++d) {
            context[(b * Tq + i) * C + h * D + d] += weight * v[(b * Tk + j) * C + h * D + d];
          }
        }
      }
    }
  }
  return proj(context, ".out_proj");
}

Mat Ffn(const Unit& u, const std::string& prefix, const Mat& x, int C, int F, bool gelu) {
  Mat hidden = Linear(x, C, Values(u, prefix + ".fc1.weight"), Values(u, prefix + ".fc1.bias"), F);
  for (double& h : hidden)
    h = gelu ? 0.5 * h * (1 + std::erf(h / std::sqrt(2.0))) : std::max(h, 0.0);
  return Linear(hidden, F, Values(u, prefix + ".fc2.weight"), Values(u, prefix + ".fc2.bias"), C);
}

// LN(α·x + G(x)), or x + G(LN(x)) for Pre-LN, with the LayerNorm `norm`.
Mat Sublayer(const Unit& u, const std::string& norm, bool pre_norm, double alpha, const Mat& x,
             int C, const std::function<Mat(const Mat&)>& g) {
  const double* gamma = Values(u, norm + ".weight");
  const double* beta = Values(u, norm + ".bias");
  if (pre_norm) {
    const Mat out = g(LayerNorm(x, C, gamma, beta));
    Mat y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] + out[i];
    return y;
  }
  const Mat out = g(x);
  Mat z(x.size());
  for (size_t i = 0; i < x.size(); ++i) z[i] = alpha * x[i] + out[i];
  return LayerNorm(z, C, gamma, beta);
}

void ExpectClose(const Tensor& actual, const Mat& expected, const std::string& what) {
  ASSERT_EQ(actual.numel(), static_cast<int64_t>(expected.size())) << what;
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_NEAR(actual.data<double>()[i], expected[i], 1e-10 * (1 + std::abs(expected[i])))
        << what << " [" << i << "]";
  }
}

void CheckAgainstReference(ModelConfig::Norm norm, ModelConfig::Activation activation) {
  testing::SingleThreaded single_thread;
  TinyOptions o;
  o.norm = norm;
  o.activation = activation;
  o.dropout = 0.3;  // off in evaluation
  const ModelConfig c = TinyConfig(o);
  const bool pre = norm == ModelConfig::PRELN, gelu = activation == ModelConfig::GELU;
  const int B = 3, S = 6, T = 5, C = 8, H = 2, F = 16, V = 13;
  auto model = BuildModel(c, DType::kF64);
  const MicroBatch mb = MakeBatch(c, B, S, T, 31);
  StepContext ctx;
  ctx.training = false;
  const double enc_alpha = EncoderConstants(c).alpha, dec_alpha = DecoderConstants(c).alpha;

  // Embeddings: table[token]·√C + PE(position).
  auto embed = [&](const Tensor& tokens, int length) {
    const double* table = Values(*model->units()[0], "embed_tokens.weight");
    Mat x(static_cast<size_t>(B) * length * C);
    for (int n = 0; n < B * length; ++n) {
      for (int i = 0; i < C; ++i) {
        const double angle = (n % length) / std::pow(10000.0, 2.0 * (i / 2) / C);
        x[n * C + i] = table[tokens.data<int32_t>()[n] * C + i] * std::sqrt(8.0) +
                       (i % 2 == 0 ? std::sin(angle) : std::cos(angle));
      }
    }
    return x;
  };
  Stream io;
  size_t u = 0;
  model->units()[u++]->Forward(ctx, mb, io);
  ExpectClose(io.enc, embed(mb.source, S), "source embeddings");
  ExpectClose(io.dec, embed(mb.target_input, T), "target embeddings");
  Mat dec_input = FromTensor(io.dec);

  const uint8_t* source_mask = mb.source_mask.data<uint8_t>();
  const uint8_t* target_mask = mb.target_mask.data<uint8_t>();
  for (; u < model->units().size() - 1; ++u) {
    const Unit& unit = *model->units()[u];
    const std::string p = unit.name();
    const bool encoder = p.starts_with("encoder");
    Mat x = FromTensor(encoder ? io.enc : io.dec);
    Mat y;
    if (p.ends_with("layer_norm")) {
      y = LayerNorm(x, C, Values(unit, p + ".weight"), Values(unit, p + ".bias"));
    } else if (encoder) {
      y = Sublayer(unit, p + ".self_attn_layer_norm", pre, enc_alpha, x, C, [&](const Mat& in) {
        return Attention(unit, p + ".self_attn", in, in, B, C, H, source_mask, false);
      });
      y = Sublayer(unit, p + ".final_layer_norm", pre, enc_alpha, y, C,
                   [&](const Mat& in) { return Ffn(unit, p, in, C, F, gelu); });
    } else {
      const Mat memory = FromTensor(io.enc);
      y = Sublayer(unit, p + ".self_attn_layer_norm", pre, dec_alpha, x, C, [&](const Mat& in) {
        return Attention(unit, p + ".self_attn", in, in, B, C, H, target_mask, true);
      });
      y = Sublayer(unit, p + ".encoder_attn_layer_norm", pre, dec_alpha, y, C, [&](const Mat& in) {
        return Attention(unit, p + ".encoder_attn", in, memory, B, C, H, source_mask, false);
      });
      y = Sublayer(unit, p + ".final_layer_norm", pre, dec_alpha, y, C,
                   [&](const Mat& in) { return Ffn(unit, p, in, C, F, gelu); });
    }
    model->units()[u]->Forward(ctx, mb, io);
    ExpectClose(encoder ? io.enc : io.dec, y, p);
  }
  const Mat logits =
      Linear(FromTensor(io.dec), C, Values(*model->units()[0], "embed_tokens.weight"), nullptr, V);
  ExpectClose(model->Logits(ctx, mb), logits, "logits");
}

TEST(ReferenceForward, DeepNormGelu) {
  CheckAgainstReference(ModelConfig::DEEPNORM, ModelConfig::GELU);
}
TEST(ReferenceForward, PostLnRelu) {
  CheckAgainstReference(ModelConfig::POSTLN, ModelConfig::RELU);
}
TEST(ReferenceForward, PreLnGelu) { CheckAgainstReference(ModelConfig::PRELN, ModelConfig::GELU); }

TEST(Masks, PaddedSourceTokensAndFutureTargetsChangeNothing) {
  const ModelConfig c = TinyConfig({});
  auto model = BuildModel(c, DType::kF64);
  const int B = 3, S = 6, T = 5, V = 13;
  MicroBatch mb = MakeBatch(c, B, S, T, 7);
  StepContext ctx;
  ctx.training = false;
  const Tensor logits = model->Logits(ctx, mb).Clone();
  // Other token ids under the source padding (row 1 has one padded position, row 2 two).
  mb.source.data<int32_t>()[1 * S + S - 1] = 5;
  mb.source.data<int32_t>()[2 * S + S - 1] = 9;
  const Tensor padded_changed = model->Logits(ctx, mb);
  for (int64_t i = 0; i < logits.numel(); ++i) {
    ASSERT_NEAR(padded_changed.data<double>()[i], logits.data<double>()[i], 1e-12);
  }
  // Another last target-input token of row 0: only its last position may change.
  mb.target_input.data<int32_t>()[T - 1] = 4;
  const Tensor future_changed = model->Logits(ctx, mb);
  for (int t = 0; t < T; ++t) {
    double difference = 0;
    for (int v = 0; v < V; ++v) {
      difference +=
          std::abs(future_changed.data<double>()[t * V + v] - logits.data<double>()[t * V + v]);
    }
    if (t < T - 1) {
      EXPECT_LT(difference, 1e-12) << "position " << t;
    } else {
      EXPECT_GT(difference, 1e-6);
    }
  }
}

TEST(Dropout, MasksDependOnMicroBatchAndStep) {
  TinyOptions o;
  o.dropout = 0.2;
  const ModelConfig c = TinyConfig(o);
  auto model = BuildModel(c, DType::kF64);
  MicroBatch mb = MakeBatch(c, 2, 5, 4, 1);
  StepContext ctx = testing::TrainingContext(mb);
  const double loss = model->Forward(ctx, mb).loss_sum;
  EXPECT_EQ(model->Forward(ctx, mb).loss_sum, loss);  // reproducible
  mb.index = 1;
  EXPECT_NE(model->Forward(ctx, mb).loss_sum, loss);
  mb.index = 0;
  ctx.step += 1;
  EXPECT_NE(model->Forward(ctx, mb).loss_sum, loss);
}

}  // namespace
}  // namespace deepnet
