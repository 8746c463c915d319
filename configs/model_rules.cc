// The model config's own rules (model_rules.h).
#include "configs/model_rules.h"

#include <cmath>
#include <cstdint>
#include <string_view>

#include "configs/config_util.h"

namespace deepnet::config {
namespace {

using Problems = std::vector<ModelRuleProblem>;

void AtLeast(std::string field, int64_t value, int64_t min, std::string_view meaning,
             Problems* problems) {
  if (value >= min) return;
  problems->push_back({{std::move(field)},
                       "got " + std::to_string(value) + "; use a value >= " + std::to_string(min) +
                           std::string(meaning)});
}

// [0, 1); non-finite values are the callers' to report (they check every number).
void InUnitInterval(std::string field, double value, Problems* problems) {
  if (!std::isfinite(value) || (value >= 0 && value < 1)) return;
  problems->push_back(
      {{std::move(field)}, "got " + FormatNumber(value) + "; use a value in [0, 1)"});
}

// A stack the architecture uses needs >= 1 layer; one it lacks must be 0.
void CheckStack(const std::string& field, std::string_view stack, bool used, int layers,
                const ModelConfig& model, Problems* problems) {
  if (model.architecture() == ModelConfig::ARCHITECTURE_UNSPECIFIED) return;  // the callers'
  const std::string architecture =
      "model.architecture " + ModelConfig::Architecture_Name(model.architecture());
  if (used && layers < 1) {
    problems->push_back({{field, "model.architecture"},
                         "got " + std::to_string(layers) + "; " + architecture +
                             " needs at least 1 " + std::string(stack) + " layer"});
  } else if (!used && layers != 0) {
    problems->push_back({{field, "model.architecture"},
                         "got " + std::to_string(layers) + " but " + architecture + " has no " +
                             std::string(stack) + "; set " + field + ": 0"});
  }
}

// "{1, 2, 4, 8, ...}": the head counts that divide d_model (>= 1). Divisors come in pairs
// (h, d_model / h) with h <= sqrt(d_model), so this takes sqrt(d_model) steps, not d_model (a
// large prime d_model took seconds, and counting up to INT_MAX overflowed).
std::string HeadChoices(int d_model) {
  std::vector<int64_t> ascending, descending;
  for (int64_t heads = 1; heads * heads <= d_model; ++heads) {
    if (d_model % heads != 0) continue;
    ascending.push_back(heads);
    if (heads * heads != d_model) descending.push_back(d_model / heads);
  }
  ascending.insert(ascending.end(), descending.rbegin(), descending.rend());
  std::vector<std::string> divisors;
  for (const int64_t heads : ascending) {
    if (divisors.size() == 8) {
      divisors.push_back("...");
      break;
    }
    divisors.push_back(std::to_string(heads));
  }
  return "{" + JoinNames(divisors) + "}";
}

}  // namespace

bool HasEncoder(const ModelConfig& model) {
  return model.architecture() == ModelConfig::ENCODER_ONLY ||
         model.architecture() == ModelConfig::ENCODER_DECODER;
}

bool HasDecoder(const ModelConfig& model) {
  return model.architecture() == ModelConfig::DECODER_ONLY ||
         model.architecture() == ModelConfig::ENCODER_DECODER;
}

std::vector<ModelRuleProblem> ModelRuleProblems(const ModelConfig& model) {
  Problems problems;
  CheckStack("model.encoder_layers", "encoder", HasEncoder(model), model.encoder_layers(), model,
             &problems);
  CheckStack("model.decoder_layers", "decoder", HasDecoder(model), model.decoder_layers(), model,
             &problems);
  AtLeast("model.d_model", model.d_model(), 1, "", &problems);
  AtLeast("model.heads", model.heads(), 1, "", &problems);
  if (model.d_model() >= 1 && model.heads() >= 1 && model.d_model() % model.heads() != 0) {
    problems.push_back({{"model.heads", "model.d_model"},
                        std::to_string(model.heads()) + " does not divide model.d_model " +
                            std::to_string(model.d_model()) + "; choose heads in " +
                            HeadChoices(model.d_model())});
  }
  AtLeast("model.ffn_dim", model.ffn_dim(), 1, "", &problems);
  AtLeast("model.vocab_size", model.vocab_size(), 0, " (0 = from the tokenizer)", &problems);
  InUnitInterval("model.dropout", model.dropout(), &problems);
  InUnitInterval("model.attention_dropout", model.attention_dropout(), &problems);
  InUnitInterval("model.activation_dropout", model.activation_dropout(), &problems);
  if (model.has_max_positions()) {
    AtLeast("model.max_positions", model.max_positions(), 1, "", &problems);
  }
  if (model.has_layernorm_eps() && std::isfinite(model.layernorm_eps()) &&
      !(model.layernorm_eps() > 0)) {
    problems.push_back({{"model.layernorm_eps"},
                        "got " + FormatNumber(model.layernorm_eps()) + "; use a value > 0"});
  }
  return problems;
}

}  // namespace deepnet::config
