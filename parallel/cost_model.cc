// Analytic cost model (see cost_model.h for the formulas and letters).
#include "parallel/cost_model.h"

namespace deepnet {
namespace {

using Recompute = CostModelOptions::Recompute;

// What one unit costs before the dtype, FLOP rate and recompute mode are applied.
struct Work {
  std::string name;
  double forward_flops = 0;
  double attention_core_flops = 0;  // what selective recompute re-runs
  int64_t parameters = 0;
  int64_t kept16 = 0;              // activation bytes at 16-bit, nothing recomputed
  int64_t attention_scores16 = 0;  // the part selective recompute drops (5·a·… terms)
  int64_t input16 = 0;             // the unit's input at 16-bit
  bool is_layer = true;            // embedding / norm / output are sized directly, not at 16-bit
};

// One self- or cross-attention block: query side q tokens per sentence, key side k.
void AddAttention(Work& w, int64_t b, int64_t q, int64_t k, int64_t h, int64_t a) {
  w.forward_flops += 4.0 * b * q * h * h + 4.0 * b * k * h * h  // Q, out | K, V projections
                     + 4.0 * b * q * k * h;                     // scores and weighted values
  w.attention_core_flops += 4.0 * b * q * k * h + 5.0 * a * b * q * k;
  w.parameters += 4 * h * h + 4 * h + 2 * h;  // four projections with biases, its LayerNorm
  w.kept16 += 11 * b * q * h + 5 * a * b * q * k + 2 * b * q * h;  // … + its LayerNorm
  w.attention_scores16 += 5 * a * b * q * k;
}

void AddFeedForward(Work& w, int64_t b, int64_t s, int64_t h, int64_t f) {
  w.forward_flops += 4.0 * b * s * h * f;
  w.parameters += 2 * h * f + f + h + 2 * h;   // fc1, fc2 with biases, its LayerNorm
  w.kept16 += 19 * b * s * h + 2 * b * s * h;  // feed-forward, its LayerNorm
}

Work EncoderLayer(const ModelShape& m, int64_t b, int64_t s, int index, const char* stack) {
  Work w{.name = std::string(stack) + ".layers." + std::to_string(index)};
  AddAttention(w, b, s, s, m.d_model, m.heads);
  AddFeedForward(w, b, s, m.d_model, m.ffn_dim);
  w.input16 = 2 * b * s * m.d_model;
  return w;
}

Work CrossDecoderLayer(const ModelShape& m, int64_t b, int64_t S, int64_t T, int index) {
  Work w = EncoderLayer(m, b, T, index, "decoder");
  const int64_t h = m.d_model;
  AddAttention(w, b, T, S, h, m.heads);
  w.kept16 += 4 * b * S * h;  // keys and values over the source
  return w;
}

UnitCost Finish(const Work& w, const CostModelOptions& o, int64_t direct_bytes,
                int64_t direct_input) {
  UnitCost cost{.name = w.name};
  cost.forward_s = w.forward_flops / o.flops_per_s;
  cost.backward_s = 2.0 * cost.forward_s;
  cost.param_bytes = w.parameters * o.dtype_bytes;
  cost.grad_bytes = w.parameters * o.dtype_bytes;
  cost.optimizer_bytes = w.parameters * o.optimizer_bytes_per_parameter;
  cost.input_bytes = w.is_layer ? w.input16 * o.dtype_bytes / 2 : direct_input;
  const int64_t kept = w.is_layer ? w.kept16 * o.dtype_bytes / 2 : direct_bytes;
  switch (o.recompute) {
    case Recompute::kNone:
      cost.activation_bytes = kept;
      break;
    case Recompute::kSelective:
      cost.activation_bytes = kept - w.attention_scores16 * o.dtype_bytes / 2;
      cost.recompute_s = w.attention_core_flops / o.flops_per_s;
      break;
    case Recompute::kFull:
      cost.activation_bytes = cost.input_bytes;
      cost.recompute_s = cost.forward_s;
      break;
  }
  return cost;
}

// Embedding: lookup, ·√h, + positions, dropout. Keeps token ids (4 bytes) and a 1-byte mask.
UnitCost Embedding(const ModelShape& m, const CostModelOptions& o, int64_t tokens) {
  Work w{.name = "embedding", .is_layer = false};
  w.forward_flops = 3.0 * tokens * m.d_model;
  w.parameters = int64_t{m.vocab} * m.d_model;
  return Finish(w, o, tokens * (4 + m.d_model), tokens * 4);
}

// Final LayerNorm of a Pre-LN stack: keeps its input and fp32 mean / rstd per token.
UnitCost FinalNorm(const ModelShape& m, const CostModelOptions& o, int64_t tokens,
                   const char* stack) {
  Work w{.name = std::string(stack) + ".layer_norm", .is_layer = false};
  w.forward_flops = 8.0 * tokens * m.d_model;
  w.parameters = 2 * int64_t{m.d_model};
  const int64_t input = tokens * m.d_model * o.dtype_bytes;
  return Finish(w, o, input + 8 * tokens, input);
}

// Output projection + softmax + loss: keeps its input, the probabilities and the targets.
UnitCost Output(const ModelShape& m, const CostModelOptions& o, int64_t tokens) {
  Work w{.name = "output", .is_layer = false};
  w.forward_flops = 2.0 * tokens * m.d_model * m.vocab + 5.0 * tokens * m.vocab;
  w.parameters = int64_t{m.vocab} * m.d_model;  // own matrix, or the tied copy of the embedding
  const int64_t input = tokens * m.d_model * o.dtype_bytes;
  return Finish(w, o, input + tokens * m.vocab * o.dtype_bytes + 4 * tokens, input);
}

}  // namespace

std::vector<UnitCost> EstimateUnitCosts(const ModelShape& m, const CostModelOptions& o) {
  using Arch = ModelShape::Arch;
  const bool encoder = m.arch != Arch::kDecoderOnly;
  const bool decoder = m.arch != Arch::kEncoderOnly;
  const int64_t b = o.batch;
  const int64_t S = encoder ? o.source_len : 0;
  const int64_t T = decoder ? o.target_len : 0;

  std::vector<UnitCost> units;
  units.push_back(Embedding(m, o, b * (S + T)));
  if (encoder) {
    for (int i = 0; i < m.encoder_layers; ++i) {
      units.push_back(Finish(EncoderLayer(m, b, S, i, "encoder"), o, 0, 0));
    }
    if (m.pre_ln) units.push_back(FinalNorm(m, o, b * S, "encoder"));
  }
  if (decoder) {
    for (int i = 0; i < m.decoder_layers; ++i) {
      const Work w = m.arch == Arch::kEncoderDecoder ? CrossDecoderLayer(m, b, S, T, i)
                                                     : EncoderLayer(m, b, T, i, "decoder");
      units.push_back(Finish(w, o, 0, 0));
    }
    if (m.pre_ln) units.push_back(FinalNorm(m, o, b * T, "decoder"));
  }
  units.push_back(Output(m, o, b * (decoder ? T : S)));
  return units;
}

}  // namespace deepnet
