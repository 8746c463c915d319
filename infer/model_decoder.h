// Incremental decoding of an encoder-decoder Model: the encoder runs once per batch, and each
// decoder step runs one position per row against cached self-attention keys and values, so a step
// costs a few (R, C) linears per layer instead of re-running the whole prefix.
//
// The step computes exactly what the decoder units compute for the last position of the prefix
// (dropout off): embed·√C + PE(t), then per layer the self-attention, cross-attention and FFN
// sublayers with the same residual/norm wrappers (model/sublayer.h), (Pre-LN) the final norm, and
// the output projection. Tests check it against Model::Logits of the whole prefix.
//
// Everything stays on the model's backend: token ids are copied over each step, the caches are
// reordered and extended with Backend::Copy between row slices (no host access to device memory),
// and only each step's logits come back to the host. Works on every backend (cpu, cuda, strict).
//
// Letters: B sentences, S source length, R rows, t position, C d_model, H heads, V vocab.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "infer/token_scorer.h"
#include "model/model.h"
#include "model/settings.h"
#include "model/sublayer.h"
#include "runtime/status.h"

namespace deepnet {

// The encoder output of a batch of sources.
struct EncodedSource {
  Tensor states;       // (B, S, C) the encoder stack's output, on the model's device
  Tensor source_mask;  // (B, S) u8, 1 = padding, on the model's device
};

// Runs the embedding and encoder units of `model` (an encoder-decoder model, dropout off) over
// `source` (B, S) i32 with `source_mask` (B, S) u8, host tensors or on the model's device (host
// ones are copied there).
StatusOr<EncodedSource> EncodeSource(Model& model, const Tensor& source, const Tensor& source_mask);

class ModelDecoder final : public TokenScorer {
 public:
  // Starts one row per sentence of `encoded` at position 0 (the next Advance feeds <s>).
  // `model` must outlive the decoder.
  static StatusOr<std::unique_ptr<ModelDecoder>> Create(Model& model, const EncodedSource& encoded);

  int32_t vocab_size() const override { return vocab_size_; }
  int64_t num_rows() const override { return static_cast<int64_t>(row_sentence_.size()); }
  std::vector<double> Advance(std::span<const int32_t> tokens) override;
  void SelectRows(std::span<const int64_t> rows) override;

  int64_t position() const { return position_; }  // tokens appended so far
  int max_positions() const { return max_positions_; }

 private:
  struct Layer {
    ResidualSpec self_residual, cross_residual, ffn_residual;
    AttentionParams self_attn, cross_attn;
    FfnParams ffn;
    Tensor sentence_cross_k, sentence_cross_v;  // (B, S, C) per sentence, computed once
    Tensor cross_k, cross_v;                    // (R, S, C) per row
    // (R, t, C) keys and values of positions < t: as (R·t, C) rows, row r's positions are one
    // contiguous range, so a step's reorder + append is two row-slice copies per row.
    Tensor self_k, self_v;
  };

  ModelDecoder() = default;
  Status Init(Model& model, const EncodedSource& encoded);
  // Applies the row selection made since the last step to the per-row cross-attention state.
  void ApplyRowSelection();
  Tensor Embed(std::span<const int32_t> tokens) const;  // (R, 1, C)
  Tensor RunLayer(Layer& layer, const Tensor& x);       // (R, 1, C) -> (R, 1, C)
  Tensor SelfAttention(Layer& layer, const Tensor& x);  // G of the self-attention sublayer
  Tensor CrossAttention(const Layer& layer, const Tensor& x) const;

  const Backend* backend_ = nullptr;
  ModelSettings settings_;
  const Parameter* embed_table_ = nullptr;        // (V, C)
  const Parameter* output_weight_ = nullptr;      // (V, C)
  const Parameter* final_norm_weight_ = nullptr;  // Pre-LN only
  const Parameter* final_norm_bias_ = nullptr;
  std::vector<Layer> layers_;
  Tensor sentence_mask_;                  // (B, S) u8
  Tensor row_mask_;                       // (R, S) u8
  std::vector<int64_t> row_sentence_;     // sentence of each row
  std::vector<int64_t> cached_sentence_;  // sentence of each row of the per-row cross state
  // Rows of the self-attention caches that the next step keeps (SelectRows is applied lazily, in
  // the same copy that appends the new keys and values); empty optional = identity.
  std::optional<std::vector<int64_t>> pending_rows_;
  int64_t position_ = 0;
  int32_t vocab_size_ = 0;
  int max_positions_ = 0;
};

}  // namespace deepnet
