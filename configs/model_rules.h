// The rules a model config meets on its own, whatever the rest of the run. One owner for both
// places that check them: configs/validate.cc (which reports each at the file:line that set the
// field, together with the rules that involve other sections) and model/ (Model::Build checks the
// config it is handed, which may come from a checkpoint or a test rather than a config file).
#pragma once

#include <string>
#include <vector>

#include "configs/deepnet.pb.h"

namespace deepnet::config {

// Whether the architecture has an encoder (ENCODER_ONLY, ENCODER_DECODER) or a decoder
// (DECODER_ONLY, ENCODER_DECODER).
bool HasEncoder(const ModelConfig& model);
bool HasDecoder(const ModelConfig& model);

struct ModelRuleProblem {
  std::vector<std::string> fields;  // the fields involved, the one to report first
  std::string message;              // what is wrong and what to change, without the field name
};

// Layer counts that match the architecture; d_model, heads and ffn_dim >= 1 with heads dividing
// d_model; vocab_size >= 0 (0 = from the tokenizer); dropout rates in [0, 1); max_positions >= 1
// and layernorm_eps > 0 where set. Enum values (architecture, norm, activation) are the callers'.
std::vector<ModelRuleProblem> ModelRuleProblems(const ModelConfig& model);

}  // namespace deepnet::config
