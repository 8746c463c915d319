// ModelSettings: the model config resolved once for the units (enums mapped, defaults applied,
// DeepNorm constants computed), plus the build options every unit needs.
#pragma once

#include <cstdint>

#include "configs/deepnet.pb.h"
#include "kernels/backend.h"
#include "model/model.h"

namespace deepnet {

struct ModelSettings {
  bool has_encoder = false;
  bool has_decoder = false;
  bool pre_norm = false;  // Pre-LN: x + G(LN(x)); otherwise LN(α·x + G(x)) (Post-LN: α = 1)
  int encoder_layers = 0;
  int decoder_layers = 0;
  int d_model = 0;
  int heads = 0;
  int ffn_dim = 0;
  int vocab_size = 0;
  int max_positions = 0;
  ActivationKind activation = ActivationKind::kRelu;
  double dropout = 0.0;
  double attention_dropout = 0.0;
  double activation_dropout = 0.0;
  double layernorm_eps = 1e-5;
  bool tied_embeddings = false;
  DeepNormConstants encoder;  // α (residual weight) and β (init gain) of encoder layers
  DeepNormConstants decoder;

  uint64_t seed = 1;
  DType dtype = DType::kF32;          // master weights and parameter gradients
  DType compute_dtype = DType::kF32;  // activations and the weights the ops read
  const Backend* backend = nullptr;
};

// `config` must pass ValidateModelConfig.
ModelSettings ResolveSettings(const config::ModelConfig& config, const ModelBuildOptions& options);

}  // namespace deepnet
