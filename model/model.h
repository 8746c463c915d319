// Model: a DeepNet (encoder-only, decoder-only or encoder-decoder) as a sequence of pipeline
// units, or a contiguous range of them (one pipeline stage).
//
// Unit order: embedding, encoder layers 0..N-1, [Pre-LN: encoder final norm], decoder layers
// 0..M-1, [Pre-LN: decoder final norm], output (projection + loss). DescribeUnits lists them
// without allocating anything, so the partitioner can plan a 1,000-layer model cheaply.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "configs/deepnet.pb.h"
#include "kernels/backend.h"
#include "model/unit.h"
#include "runtime/status.h"

namespace deepnet {

enum class UnitKind {
  kEmbedding,
  kEncoderLayer,
  kEncoderFinalNorm,
  kDecoderLayer,
  kDecoderFinalNorm,
  kOutput
};
std::string_view UnitKindName(UnitKind kind);

struct UnitInfo {
  int index = 0;
  UnitKind kind = UnitKind::kEncoderLayer;
  std::string name;  // "encoder.layers.3"
  // Elements the unit holds (its flat buffers), the output unit's tied copy of the embedding
  // included (it occupies memory on that stage).
  int64_t num_parameters = 0;
};

// Lists every unit of the model `config` describes (no allocation). `config` should pass
// ValidateModelConfig; an invalid one gives a best-effort list.
std::vector<UnitInfo> DescribeUnits(const config::ModelConfig& config);

// The checks Model::Build runs: architecture, norm and activation set; the model section's own
// rules (configs/model_rules.h: layer counts that match the architecture, positive sizes with heads
// dividing d_model, dropout rates in [0, 1)); a resolved vocabulary (vocab_size > 0). Unset
// max_positions and layernorm_eps mean 1024 and 1e-5. Every problem, one per line.
Status ValidateModelConfig(const config::ModelConfig& config);

// DeepNorm constants (docs/design.md#deepnorm) for one side of the model: residual weight alpha,
// init gain beta.
struct DeepNormConstants {
  double alpha = 1.0;
  double beta = 1.0;
};
DeepNormConstants EncoderConstants(const config::ModelConfig& config);
DeepNormConstants DecoderConstants(const config::ModelConfig& config);

struct ModelBuildOptions {
  // Initial weights depend only on (seed, parameter name): the name carries the unit (layer)
  // index, and the output unit's tied copy of `embed_tokens.weight` gets the primary's values.
  uint64_t seed = 1;
  DType dtype = DType::kF32;  // kF32, or kF64 (gradient checks)
  // Mixed precision: kBF16 or kF16 activations and compute weights over `dtype` master weights
  // and gradients (kernels/cuda/README.md). Unset: `dtype`.
  std::optional<DType> compute_dtype;
  const Backend* backend = nullptr;  // default: CpuBackend()
  int first_unit = 0;                // build units [first_unit, end_unit); -1 = to the end
  int end_unit = -1;
  int pad_id = 0;
};

class Model {
 public:
  static StatusOr<std::unique_ptr<Model>> Build(const config::ModelConfig& config,
                                                const ModelBuildOptions& options);

  const config::ModelConfig& config() const { return config_; }
  const Backend& backend() const { return *backend_; }
  DType dtype() const { return dtype_; }
  DType compute_dtype() const { return compute_dtype_; }
  std::vector<std::unique_ptr<Unit>>& units() { return units_; }
  int first_unit() const { return first_unit_; }
  int num_units_total() const { return num_units_total_; }
  bool has_first_unit() const { return first_unit_ == 0; }
  bool has_last_unit() const {
    return first_unit_ + static_cast<int>(units_.size()) == num_units_total_;
  }

  // Every parameter of the built units, in unit order then declaration order.
  std::vector<Parameter*> parameters();
  int64_t num_parameters() const;  // primary copies only
  void ZeroGrads();
  // Tied embeddings, when both the embedding and the output unit are built here: sets both
  // copies' gradients to grad_embedding + grad_output (that order, so a pipeline that adds the
  // two across ranks gets the same bits).
  void SumTiedGradients();

  // The three below need the whole model (first and last unit built here).
  // Single-process convenience: forward through every unit then backward, for one micro-batch
  // (ctx.recompute kFull keeps only each unit's input Stream and re-runs its forward).
  // Parameter gradients accumulate; tied gradients are not summed (call SumTiedGradients).
  // Returns the Stream of the last unit (loss_sum, loss_tokens).
  Stream ForwardBackward(const StepContext& ctx, const MicroBatch& mb);
  // Forward only (no saved activations kept beyond each unit), for evaluation.
  Stream Forward(const StepContext& ctx, const MicroBatch& mb);
  // Logits (B, T, V) of the states the output unit reads (decoder; encoder for encoder-only),
  // without the loss (inference: translate, score). mb.target may be empty.
  Tensor Logits(const StepContext& ctx, const MicroBatch& mb);

 private:
  Model() = default;
  config::ModelConfig config_;
  const Backend* backend_ = nullptr;
  DType dtype_ = DType::kF32;
  DType compute_dtype_ = DType::kF32;
  std::vector<std::unique_ptr<Unit>> units_;
  int first_unit_ = 0;
  int num_units_total_ = 0;
};

}  // namespace deepnet
