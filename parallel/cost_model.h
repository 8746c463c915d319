// Analytic cost model: time and memory of each pipeline unit, from the model's shape alone.
//
// Letters: b sentences per micro-batch, S source length, T target length, h = d_model, a heads,
// f = ffn_dim, V vocab. Units come in the model's order (model/model.h): embedding, encoder layers,
// [Pre-LN: encoder final norm], decoder layers, [Pre-LN: decoder final norm], output (projection +
// softmax + loss). Deliberately free of model/: the partitioner plans a 1,000-layer model from a
// handful of integers, and profiled costs can replace these estimates unit by unit.
//
// Time: forward FLOPs (2 per multiply-add) / flops_per_s; backward = 2 × forward; recompute_s is
// the forward work re-run in backward (selective: attention scores and softmax; full: all).
// Memory per micro-batch (docs/design.md#recompute-memory, Korthikanti et al. 2022, bytes at
// 16-bit, scaled by dtype_bytes / 2): an encoder or decoder-only layer keeps s·b·h·(34 + 5·a·s/h) —
// attention 11sbh + 5as²b, feed-forward 19sbh, two LayerNorms 4sbh. An encoder-decoder decoder
// layer adds a cross-attention (11Tbh + 5aTSb, plus its keys and values over the source, 4Sbh) and
// a third LayerNorm (2Tbh). Selective recompute drops the 5a… terms; full recompute keeps only the
// unit's input (2·s·b·h at 16-bit). The encoder output, which every decoder layer reads, is kept
// once per micro-batch per stage and not charged to any unit.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace deepnet {

struct ModelShape {
  enum class Arch { kEncoderOnly, kDecoderOnly, kEncoderDecoder };
  Arch arch = Arch::kEncoderDecoder;
  int encoder_layers = 0;
  int decoder_layers = 0;
  int d_model = 512;
  int heads = 8;
  int ffn_dim = 2048;
  int vocab = 32000;
  bool tied = true;     // the output unit then holds a copy of the embedding (same size)
  bool pre_ln = false;  // adds a final LayerNorm unit after each stack
};

struct CostModelOptions {
  enum class Recompute { kNone, kSelective, kFull };
  int64_t batch = 8;                      // b: sentences per micro-batch
  int64_t source_len = 128;               // S (encoder side)
  int64_t target_len = 128;               // T (decoder side)
  int dtype_bytes = 4;                    // parameters, gradients and activations
  int optimizer_bytes_per_parameter = 8;  // Adam: two fp32 moments
  double flops_per_s = 1e12;
  Recompute recompute = Recompute::kNone;
};

struct UnitCost {
  std::string
      name;  // export-style: "embedding", "encoder.layers.3", "decoder.layer_norm", "output"
  double forward_s = 0.0;
  double backward_s = 0.0;
  double recompute_s = 0.0;  // extra forward work in backward under the recompute mode
  double optimizer_s = 0.0;  // once per step: clipping norm and Adam update of its parameters
  int64_t param_bytes = 0;
  int64_t grad_bytes = 0;
  int64_t optimizer_bytes = 0;
  // Per micro-batch, kept from forward to backward under the recompute mode.
  int64_t activation_bytes = 0;
  int64_t input_bytes = 0;  // the unit's input (what full recompute keeps)

  double time_s() const { return forward_s + backward_s + recompute_s; }
  int64_t static_bytes() const { return param_bytes + grad_bytes + optimizer_bytes; }
};

std::vector<UnitCost> EstimateUnitCosts(const ModelShape& shape, const CostModelOptions& options);

}  // namespace deepnet
