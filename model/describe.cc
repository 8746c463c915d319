// The model's shape without building it: validation, DeepNorm constants (docs/design.md#deepnorm),
// the unit list.
#include <cmath>
#include <string>
#include <vector>

#include "configs/model_rules.h"
#include "model/model.h"
#include "model/parameters.h"
#include "model/settings.h"

namespace deepnet {
namespace {

using config::HasDecoder;
using config::HasEncoder;
using config::ModelConfig;

}  // namespace

std::string_view UnitKindName(UnitKind kind) {
  switch (kind) {
    case UnitKind::kEmbedding:
      return "embedding";
    case UnitKind::kEncoderLayer:
      return "encoder_layer";
    case UnitKind::kEncoderFinalNorm:
      return "encoder_final_norm";
    case UnitKind::kDecoderLayer:
      return "decoder_layer";
    case UnitKind::kDecoderFinalNorm:
      return "decoder_final_norm";
    case UnitKind::kOutput:
      return "output";
  }
  return "unknown";
}

DeepNormConstants EncoderConstants(const ModelConfig& config) {
  if (config.norm() != ModelConfig::DEEPNORM) return {};
  const double N = config.encoder_layers(), M = config.decoder_layers();
  if (config.architecture() == ModelConfig::ENCODER_DECODER) {
    const double power = std::pow(std::pow(N, 4) * M, 1.0 / 16.0);
    return {0.81 * power, 0.87 / power};
  }
  return {std::pow(2.0 * N, 0.25), std::pow(8.0 * N, -0.25)};
}

DeepNormConstants DecoderConstants(const ModelConfig& config) {
  if (config.norm() != ModelConfig::DEEPNORM) return {};
  const double M = config.decoder_layers();
  if (config.architecture() == ModelConfig::ENCODER_DECODER) {
    return {std::pow(3.0 * M, 0.25), std::pow(12.0 * M, -0.25)};
  }
  return {std::pow(2.0 * M, 0.25), std::pow(8.0 * M, -0.25)};
}

// The model config's own rules (configs/model_rules.h), the enum values they leave to their
// callers, and a resolved vocabulary: the model is built with its final size.
Status ValidateModelConfig(const ModelConfig& c) {
  std::vector<std::string> problems;
  if (!ModelConfig::Architecture_IsValid(c.architecture()) ||
      c.architecture() == ModelConfig::ARCHITECTURE_UNSPECIFIED) {
    problems.push_back("model.architecture must be ENCODER_ONLY, DECODER_ONLY or ENCODER_DECODER");
  }
  if (!ModelConfig::Norm_IsValid(c.norm()) || c.norm() == ModelConfig::NORM_UNSPECIFIED) {
    problems.push_back("model.norm must be DEEPNORM, POSTLN or PRELN");
  }
  if (!ModelConfig::Activation_IsValid(c.activation()) ||
      c.activation() == ModelConfig::ACTIVATION_UNSPECIFIED) {
    problems.push_back("model.activation must be RELU or GELU");
  }
  for (const config::ModelRuleProblem& problem : config::ModelRuleProblems(c)) {
    problems.push_back(problem.fields.front() + ": " + problem.message);
  }
  if (c.vocab_size() == 0) {
    problems.push_back("model.vocab_size: got 0; the model needs the resolved vocabulary size");
  }
  if (problems.empty()) return OkStatus();
  std::string text = problems.front();
  for (size_t i = 1; i < problems.size(); ++i) text += "\n" + problems[i];
  return InvalidArgument(text);
}

ModelSettings ResolveSettings(const ModelConfig& c, const ModelBuildOptions& options) {
  ModelSettings s;
  s.has_encoder = HasEncoder(c);
  s.has_decoder = HasDecoder(c);
  s.pre_norm = c.norm() == ModelConfig::PRELN;
  s.encoder_layers = s.has_encoder ? c.encoder_layers() : 0;
  s.decoder_layers = s.has_decoder ? c.decoder_layers() : 0;
  s.d_model = c.d_model();
  s.heads = c.heads();
  s.ffn_dim = c.ffn_dim();
  s.vocab_size = c.vocab_size();
  s.max_positions = c.has_max_positions() ? c.max_positions() : 1024;
  s.activation =
      c.activation() == ModelConfig::GELU ? ActivationKind::kGelu : ActivationKind::kRelu;
  s.dropout = c.dropout();
  s.attention_dropout = c.attention_dropout();
  s.activation_dropout = c.activation_dropout();
  s.layernorm_eps = c.has_layernorm_eps() ? c.layernorm_eps() : 1e-5;
  s.tied_embeddings = c.tied_embeddings();
  s.encoder = EncoderConstants(c);
  s.decoder = DecoderConstants(c);
  s.seed = options.seed;
  s.dtype = options.dtype;
  s.compute_dtype = options.compute_dtype.value_or(options.dtype);
  s.backend = options.backend != nullptr ? options.backend : &CpuBackend();
  return s;
}

std::vector<UnitInfo> DescribeUnits(const ModelConfig& config) {
  const ModelSettings s = ResolveSettings(config, ModelBuildOptions());
  std::vector<UnitInfo> units;
  auto add = [&](UnitKind kind, std::string name, int layer) {
    const int64_t count = CountElements(UnitParamSpecs(s, kind, layer));
    units.push_back({static_cast<int>(units.size()), kind, std::move(name), count});
  };
  add(UnitKind::kEmbedding, "embedding", 0);
  for (int i = 0; i < s.encoder_layers; ++i) {
    add(UnitKind::kEncoderLayer, "encoder.layers." + std::to_string(i), i);
  }
  if (s.has_encoder && s.pre_norm) add(UnitKind::kEncoderFinalNorm, "encoder.layer_norm", 0);
  for (int i = 0; i < s.decoder_layers; ++i) {
    add(UnitKind::kDecoderLayer, "decoder.layers." + std::to_string(i), i);
  }
  if (s.has_decoder && s.pre_norm) add(UnitKind::kDecoderFinalNorm, "decoder.layer_norm", 0);
  add(UnitKind::kOutput, "output", 0);
  return units;
}

}  // namespace deepnet
