// Encoder layer, decoder layer and the Pre-LN final LayerNorm units.
// Letters: B batch, S source length, T target length, C d_model.
#include <string>

#include "model/units.h"

namespace deepnet {
namespace {

// Encoder layer dropout sites.
constexpr int kEncSelfProbs = 0, kEncSelfOut = 1, kEncActivation = 2, kEncFfnOut = 3;
// Decoder layer dropout sites.
constexpr int kDecSelfProbs = 0, kDecSelfOut = 1, kDecCrossProbs = 2, kDecCrossOut = 3,
              kDecActivation = 4, kDecFfnOut = 5;

std::string LayerName(bool decoder, int layer) {
  return std::string(decoder ? "decoder" : "encoder") + ".layers." + std::to_string(layer);
}

ResidualSpec MakeResidual(const ModelSettings& s, double alpha, const Parameter& weight,
                          const Parameter& bias) {
  return ResidualSpec{s.pre_norm, alpha, s.layernorm_eps, &weight, &bias};
}

class EncoderLayerSaved final : public SavedActivations {
 public:
  int64_t bytes() const override {
    return attention_residual.bytes() + attention.bytes() + ffn_residual.bytes() + ffn.bytes();
  }
  ResidualSaved attention_residual;
  AttentionSaved attention;
  ResidualSaved ffn_residual;
  FfnSaved ffn;
};

class DecoderLayerSaved final : public SavedActivations {
 public:
  // `memory` is the encoder output every decoder layer reads; the Stream carries it, so it is not
  // counted here.
  int64_t bytes() const override {
    return self_residual.bytes() + self_attention.bytes() + cross_residual.bytes() +
           cross_attention.bytes() + ffn_residual.bytes() + ffn.bytes();
  }
  ResidualSaved self_residual;
  AttentionSaved self_attention;
  ResidualSaved cross_residual;  // empty without an encoder
  AttentionSaved cross_attention;
  Tensor memory;  // (B, S, C) io.enc
  ResidualSaved ffn_residual;
  FfnSaved ffn;
};

class FinalNormSaved final : public SavedActivations {
 public:
  int64_t bytes() const override { return SumBytes({&x, &mean, &rstd}); }
  Tensor x;     // (B, T, C)
  Tensor mean;  // (B, T)
  Tensor rstd;  // (B, T)
};

}  // namespace

// --- encoder layer ---

EncoderLayerUnit::EncoderLayerUnit(int index, int layer, const ModelSettings& settings)
    : ModelUnit(LayerName(false, layer), index, settings,
                UnitParamSpecs(settings, UnitKind::kEncoderLayer, layer)) {
  const double alpha = settings.encoder.alpha;
  attention_residual_ = MakeResidual(settings, alpha, Param(name_ + ".self_attn_layer_norm.weight"),
                                     Param(name_ + ".self_attn_layer_norm.bias"));
  ffn_residual_ = MakeResidual(settings, alpha, Param(name_ + ".final_layer_norm.weight"),
                               Param(name_ + ".final_layer_norm.bias"));
  self_attn_ = FindAttentionParams(parameters_, name_ + ".self_attn");
  ffn_ = FindFfnParams(parameters_, name_);
}

std::unique_ptr<SavedActivations> EncoderLayerUnit::Forward(const StepContext& ctx,
                                                            const MicroBatch& mb, Stream& io) {
  CHECK(!IsEmpty(io.enc)) << name_ << ": no encoder states in the stream";
  const Backend& b = backend(ctx);
  const ModelSettings& s = settings_;
  auto saved = std::make_unique<EncoderLayerSaved>();
  const bool keep_probs = ctx.recompute != Recompute::kSelective;

  Tensor in = ResidualBegin(b, attention_residual_, io.enc, &saved->attention_residual);
  Tensor out = AttentionBlockForward(
      b, self_attn_, in, in, mb.source_mask, /*causal=*/false, s.heads,
      {Rate(ctx, s.attention_dropout), Rng(ctx, mb, kEncSelfProbs)}, keep_probs, &saved->attention);
  Tensor y = ResidualEnd(b, attention_residual_, {Rate(ctx, s.dropout), Rng(ctx, mb, kEncSelfOut)},
                         out, &saved->attention_residual);

  in = ResidualBegin(b, ffn_residual_, y, &saved->ffn_residual);
  out =
      FfnBlockForward(b, ffn_, in, s.activation,
                      {Rate(ctx, s.activation_dropout), Rng(ctx, mb, kEncActivation)}, &saved->ffn);
  io.enc = ResidualEnd(b, ffn_residual_, {Rate(ctx, s.dropout), Rng(ctx, mb, kEncFfnOut)}, out,
                       &saved->ffn_residual);
  return saved;
}

void EncoderLayerUnit::RunBackward(const StepContext& ctx, const MicroBatch& mb,
                                   const SavedActivations& saved, Stream& grad, GradWork& work) {
  const auto& s = dynamic_cast<const EncoderLayerSaved&>(saved);
  CHECK(!IsEmpty(grad.enc)) << name_ << ": no gradient of the encoder states";
  const Backend& b = backend(ctx);

  ResidualGrads g = ResidualEndBackward(b, ffn_residual_, grad.enc, s.ffn_residual, work);
  FfnBlockBackward(b, ffn_, g.dout, s.ffn_residual.input(), s.ffn, g.dinput, work);
  const Tensor dy = ResidualBeginBackward(b, ffn_residual_, g, s.ffn_residual, work);

  g = ResidualEndBackward(b, attention_residual_, dy, s.attention_residual, work);
  const Tensor& in = s.attention_residual.input();
  AttentionBlockBackward(b, self_attn_, g.dout, in, in, s.attention, g.dinput, g.dinput, work);
  grad.enc = ResidualBeginBackward(b, attention_residual_, g, s.attention_residual, work);
}

// --- decoder layer ---

DecoderLayerUnit::DecoderLayerUnit(int index, int layer, const ModelSettings& settings)
    : ModelUnit(LayerName(true, layer), index, settings,
                UnitParamSpecs(settings, UnitKind::kDecoderLayer, layer)) {
  const double alpha = settings.decoder.alpha;
  self_residual_ = MakeResidual(settings, alpha, Param(name_ + ".self_attn_layer_norm.weight"),
                                Param(name_ + ".self_attn_layer_norm.bias"));
  self_attn_ = FindAttentionParams(parameters_, name_ + ".self_attn");
  if (settings.has_encoder) {
    cross_residual_ =
        MakeResidual(settings, alpha, Param(name_ + ".encoder_attn_layer_norm.weight"),
                     Param(name_ + ".encoder_attn_layer_norm.bias"));
    cross_attn_ = FindAttentionParams(parameters_, name_ + ".encoder_attn");
  }
  ffn_residual_ = MakeResidual(settings, alpha, Param(name_ + ".final_layer_norm.weight"),
                               Param(name_ + ".final_layer_norm.bias"));
  ffn_ = FindFfnParams(parameters_, name_);
}

std::unique_ptr<SavedActivations> DecoderLayerUnit::Forward(const StepContext& ctx,
                                                            const MicroBatch& mb, Stream& io) {
  CHECK(!IsEmpty(io.dec)) << name_ << ": no decoder states in the stream";
  const Backend& b = backend(ctx);
  const ModelSettings& s = settings_;
  auto saved = std::make_unique<DecoderLayerSaved>();
  const bool keep_probs = ctx.recompute != Recompute::kSelective;

  Tensor in = ResidualBegin(b, self_residual_, io.dec, &saved->self_residual);
  Tensor out =
      AttentionBlockForward(b, self_attn_, in, in, mb.target_mask, /*causal=*/true, s.heads,
                            {Rate(ctx, s.attention_dropout), Rng(ctx, mb, kDecSelfProbs)},
                            keep_probs, &saved->self_attention);
  Tensor y = ResidualEnd(b, self_residual_, {Rate(ctx, s.dropout), Rng(ctx, mb, kDecSelfOut)}, out,
                         &saved->self_residual);

  if (s.has_encoder) {
    CHECK(!IsEmpty(io.enc)) << name_ << ": no encoder output to attend to";
    saved->memory = io.enc;
    in = ResidualBegin(b, cross_residual_, y, &saved->cross_residual);
    out =
        AttentionBlockForward(b, cross_attn_, in, io.enc, mb.source_mask, /*causal=*/false, s.heads,
                              {Rate(ctx, s.attention_dropout), Rng(ctx, mb, kDecCrossProbs)},
                              keep_probs, &saved->cross_attention);
    y = ResidualEnd(b, cross_residual_, {Rate(ctx, s.dropout), Rng(ctx, mb, kDecCrossOut)}, out,
                    &saved->cross_residual);
  }

  in = ResidualBegin(b, ffn_residual_, y, &saved->ffn_residual);
  out =
      FfnBlockForward(b, ffn_, in, s.activation,
                      {Rate(ctx, s.activation_dropout), Rng(ctx, mb, kDecActivation)}, &saved->ffn);
  io.dec = ResidualEnd(b, ffn_residual_, {Rate(ctx, s.dropout), Rng(ctx, mb, kDecFfnOut)}, out,
                       &saved->ffn_residual);
  return saved;
}

void DecoderLayerUnit::RunBackward(const StepContext& ctx, const MicroBatch& mb,
                                   const SavedActivations& saved, Stream& grad, GradWork& work) {
  const auto& s = dynamic_cast<const DecoderLayerSaved&>(saved);
  CHECK(!IsEmpty(grad.dec)) << name_ << ": no gradient of the decoder states";
  const Backend& b = backend(ctx);

  ResidualGrads g = ResidualEndBackward(b, ffn_residual_, grad.dec, s.ffn_residual, work);
  FfnBlockBackward(b, ffn_, g.dout, s.ffn_residual.input(), s.ffn, g.dinput, work);
  Tensor dy = ResidualBeginBackward(b, ffn_residual_, g, s.ffn_residual, work);

  if (settings_.has_encoder) {
    // The first decoder layer in backward order starts the encoder output's gradient; every
    // layer's k and v projections add to it.
    if (IsEmpty(grad.enc)) {
      grad.enc = b.Zeros(s.memory.shape(), s.memory.dtype(), MemoryCategory::kActivations);
    }
    g = ResidualEndBackward(b, cross_residual_, dy, s.cross_residual, work);
    AttentionBlockBackward(b, cross_attn_, g.dout, s.cross_residual.input(), s.memory,
                           s.cross_attention, g.dinput, grad.enc, work);
    dy = ResidualBeginBackward(b, cross_residual_, g, s.cross_residual, work);
  }

  g = ResidualEndBackward(b, self_residual_, dy, s.self_residual, work);
  const Tensor& in = s.self_residual.input();
  AttentionBlockBackward(b, self_attn_, g.dout, in, in, s.self_attention, g.dinput, g.dinput, work);
  grad.dec = ResidualBeginBackward(b, self_residual_, g, s.self_residual, work);
}

// --- final LayerNorm (Pre-LN) ---

FinalNormUnit::FinalNormUnit(int index, bool encoder, const ModelSettings& settings)
    : ModelUnit(
          encoder ? "encoder.layer_norm" : "decoder.layer_norm", index, settings,
          UnitParamSpecs(settings,
                         encoder ? UnitKind::kEncoderFinalNorm : UnitKind::kDecoderFinalNorm, 0)),
      encoder_(encoder),
      weight_(&Param(name_ + ".weight")),
      bias_(&Param(name_ + ".bias")) {}

std::unique_ptr<SavedActivations> FinalNormUnit::Forward(const StepContext& ctx,
                                                         const MicroBatch& mb, Stream& io) {
  Tensor& states = States(io);
  CHECK(!IsEmpty(states)) << name_ << ": no states in the stream";
  const Backend& b = backend(ctx);
  auto saved = std::make_unique<FinalNormSaved>();
  saved->x = states;
  const Shape rows(states.shape().begin(), states.shape().end() - 1);
  saved->mean = NewActivation(b, rows, StatsDType(states.dtype()));
  saved->rstd = NewActivation(b, rows, StatsDType(states.dtype()));
  Tensor y = NewLike(b, states);
  b.LayerNormForward(y, saved->mean, saved->rstd, states, weight_->value, bias_->value,
                     settings_.layernorm_eps);
  states = y;
  return saved;
}

void FinalNormUnit::RunBackward(const StepContext& ctx, const MicroBatch& mb,
                                const SavedActivations& saved, Stream& grad, GradWork& work) {
  const auto& s = dynamic_cast<const FinalNormSaved&>(saved);
  Tensor& dy = States(grad);
  CHECK(!IsEmpty(dy)) << name_ << ": no gradient of the states";
  Tensor dx = NewLike(backend(ctx), dy);
  work.LayerNorm(dx, *weight_, *bias_, dy, s.x, s.mean, s.rstd);
  dy = dx;
}

}  // namespace deepnet
