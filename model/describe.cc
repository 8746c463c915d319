// The model's shape without building it: validation, DeepNorm constants (docs/design.md#deepnorm),
// the unit list.
#include <cmath>
#include <sstream>

#include "model/model.h"
#include "model/parameters.h"
#include "model/settings.h"

namespace deepnet {
namespace {

using config::ModelConfig;

bool HasEncoder(const ModelConfig& c) {
  return c.architecture() == ModelConfig::ENCODER_ONLY ||
         c.architecture() == ModelConfig::ENCODER_DECODER;
}
bool HasDecoder(const ModelConfig& c) {
  return c.architecture() == ModelConfig::DECODER_ONLY ||
         c.architecture() == ModelConfig::ENCODER_DECODER;
}

void CheckRate(std::ostringstream& problems, const char* field, bool has, double value) {
  if (has && !(value >= 0.0 && value < 1.0)) {
    problems << "model." << field << " = " << value << " must be in [0, 1)\n";
  }
}

void CheckPositive(std::ostringstream& problems, const char* field, int64_t value) {
  if (value <= 0) problems << "model." << field << " = " << value << " must be > 0\n";
}

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

Status ValidateModelConfig(const ModelConfig& c) {
  std::ostringstream problems;
  if (!ModelConfig::Architecture_IsValid(c.architecture()) ||
      c.architecture() == ModelConfig::ARCHITECTURE_UNSPECIFIED) {
    problems << "model.architecture must be ENCODER_ONLY, DECODER_ONLY or ENCODER_DECODER\n";
  } else {
    if (HasEncoder(c) && c.encoder_layers() < 1) {
      problems << "model.encoder_layers = " << c.encoder_layers() << " must be >= 1 for "
               << ModelConfig::Architecture_Name(c.architecture()) << "\n";
    }
    if (!HasEncoder(c) && c.encoder_layers() != 0) {
      problems << "model.encoder_layers = " << c.encoder_layers()
               << " must be 0 for DECODER_ONLY\n";
    }
    if (HasDecoder(c) && c.decoder_layers() < 1) {
      problems << "model.decoder_layers = " << c.decoder_layers() << " must be >= 1 for "
               << ModelConfig::Architecture_Name(c.architecture()) << "\n";
    }
    if (!HasDecoder(c) && c.decoder_layers() != 0) {
      problems << "model.decoder_layers = " << c.decoder_layers()
               << " must be 0 for ENCODER_ONLY\n";
    }
  }
  if (!ModelConfig::Norm_IsValid(c.norm()) || c.norm() == ModelConfig::NORM_UNSPECIFIED) {
    problems << "model.norm must be DEEPNORM, POSTLN or PRELN\n";
  }
  if (!ModelConfig::Activation_IsValid(c.activation()) ||
      c.activation() == ModelConfig::ACTIVATION_UNSPECIFIED) {
    problems << "model.activation must be RELU or GELU\n";
  }
  CheckPositive(problems, "d_model", c.d_model());
  CheckPositive(problems, "heads", c.heads());
  CheckPositive(problems, "ffn_dim", c.ffn_dim());
  CheckPositive(problems, "vocab_size", c.vocab_size());
  if (c.has_max_positions()) CheckPositive(problems, "max_positions", c.max_positions());
  if (c.d_model() > 0 && c.heads() > 0 && c.d_model() % c.heads() != 0) {
    problems << "model.heads = " << c.heads() << " must divide model.d_model = " << c.d_model()
             << "\n";
  }
  CheckRate(problems, "dropout", c.has_dropout(), c.dropout());
  CheckRate(problems, "attention_dropout", c.has_attention_dropout(), c.attention_dropout());
  CheckRate(problems, "activation_dropout", c.has_activation_dropout(), c.activation_dropout());
  if (c.has_layernorm_eps() && !(c.layernorm_eps() > 0.0)) {
    problems << "model.layernorm_eps = " << c.layernorm_eps() << " must be > 0\n";
  }
  std::string text = problems.str();
  if (text.empty()) return OkStatus();
  text.pop_back();  // the last newline
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
