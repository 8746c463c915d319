// The concrete units of a DeepNet, in model order: token embedding (+ positions), encoder layer,
// encoder final LayerNorm (Pre-LN), decoder layer, decoder final LayerNorm (Pre-LN), output
// projection + loss. Model::Build creates them; tests and tools may use them directly.
//
// Dropout sites (RngStream.site = unit index · kSitesPerUnit + site):
//   embedding      0 source embeddings, 1 target embeddings
//   encoder layer  0 self-attention probs, 1 self-attention output, 2 FFN activation, 3 FFN output
//   decoder layer  0 self-attention probs, 1 self-attention output, 2 cross-attention probs,
//                  3 cross-attention output, 4 FFN activation, 5 FFN output
// Letters: B batch, S source length, T target length, C d_model, V vocab.
#pragma once

#include <memory>

#include "model/sublayer.h"
#include "model/unit_base.h"

namespace deepnet {

// Source tokens → io.enc and target_input tokens → io.dec (those the architecture has):
// dropout(embed(tok)·√C + PE), one table for both (joint vocabulary). Backward scatters grad.enc
// then grad.dec into the table's gradient and leaves `grad` empty.
class EmbeddingUnit final : public ModelUnit {
 public:
  EmbeddingUnit(int index, const ModelSettings& settings);
  std::unique_ptr<SavedActivations> Forward(const StepContext& ctx, const MicroBatch& mb,
                                            Stream& io) override;

 protected:
  void RunBackward(const StepContext& ctx, const MicroBatch& mb, const SavedActivations& saved,
                   Stream& grad, GradWork& work) override;

 private:
  Tensor Embed(const Backend& backend, const Tensor& tokens, const DropoutSite& dropout) const;
  void ScatterGrad(const Backend& backend, const Tensor& tokens, const Tensor& dy,
                   const DropoutSite& dropout, GradWork& work) const;

  const Parameter* table_;  // (V, C)
};

// Encoder layer `layer`: self-attention (source padding masked) and FFN over io.enc.
class EncoderLayerUnit final : public ModelUnit {
 public:
  EncoderLayerUnit(int index, int layer, const ModelSettings& settings);
  std::unique_ptr<SavedActivations> Forward(const StepContext& ctx, const MicroBatch& mb,
                                            Stream& io) override;

 protected:
  void RunBackward(const StepContext& ctx, const MicroBatch& mb, const SavedActivations& saved,
                   Stream& grad, GradWork& work) override;

 private:
  ResidualSpec attention_residual_, ffn_residual_;
  AttentionParams self_attn_;
  FfnParams ffn_;
};

// Decoder layer `layer`: causal self-attention (target padding masked), cross-attention over
// io.enc (encoder-decoder only; source padding masked) and FFN over io.dec. Backward accumulates
// into grad.enc (creating it zeroed when empty), see unit.h.
class DecoderLayerUnit final : public ModelUnit {
 public:
  DecoderLayerUnit(int index, int layer, const ModelSettings& settings);
  std::unique_ptr<SavedActivations> Forward(const StepContext& ctx, const MicroBatch& mb,
                                            Stream& io) override;

 protected:
  void RunBackward(const StepContext& ctx, const MicroBatch& mb, const SavedActivations& saved,
                   Stream& grad, GradWork& work) override;

 private:
  ResidualSpec self_residual_, cross_residual_, ffn_residual_;
  AttentionParams self_attn_;
  AttentionParams cross_attn_;  // unset without an encoder
  FfnParams ffn_;
};

// Pre-LN: the LayerNorm at the output of the encoder (io.enc) or decoder (io.dec) stack.
class FinalNormUnit final : public ModelUnit {
 public:
  FinalNormUnit(int index, bool encoder, const ModelSettings& settings);
  std::unique_ptr<SavedActivations> Forward(const StepContext& ctx, const MicroBatch& mb,
                                            Stream& io) override;

 protected:
  void RunBackward(const StepContext& ctx, const MicroBatch& mb, const SavedActivations& saved,
                   Stream& grad, GradWork& work) override;

 private:
  Tensor& States(Stream& stream) const { return encoder_ ? stream.enc : stream.dec; }

  bool encoder_;
  const Parameter* weight_;
  const Parameter* bias_;
};

// logits = states · Wᵀ (no bias), W the tied copy of embed_tokens.weight or output_projection.
// weight; states are io.dec, or io.enc for an encoder-only model (which classifies every source
// position into mb.target, same shape as mb.source). Forward sets io.loss_sum (Σ smoothed token
// losses) and io.loss_tokens (targets ≠ ctx.pad_id) and consumes the states (io.enc and io.dec
// come back empty); backward starts from ctx.loss_scale and fills grad.dec (grad.enc).
class OutputUnit final : public ModelUnit {
 public:
  OutputUnit(int index, const ModelSettings& settings);
  std::unique_ptr<SavedActivations> Forward(const StepContext& ctx, const MicroBatch& mb,
                                            Stream& io) override;
  // Logits (B, T, V) of `states` (B, T, C), no loss (inference).
  Tensor Logits(const StepContext& ctx, const Tensor& states) const;
  // The stream field the unit reads.
  Tensor& States(Stream& stream) const { return settings_.has_decoder ? stream.dec : stream.enc; }

 protected:
  void RunBackward(const StepContext& ctx, const MicroBatch& mb, const SavedActivations& saved,
                   Stream& grad, GradWork& work) override;

 private:
  const Parameter* weight_;  // (V, C)
};

}  // namespace deepnet
