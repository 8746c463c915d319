// A trained checkpoint ready for inference: the model in evaluation mode, its tokenizer, and
// batched translation of raw sentences (tokenise + </s>, encoder once per batch, beam search or
// greedy decoding, detokenise), returned in input order.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "configs/deepnet.pb.h"
#include "infer/beam_search.h"
#include "model/model.h"
#include "runtime/status.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace deepnet {

struct InferenceModel {
  std::string checkpoint_dir;  // the step directory loaded
  int64_t step = 0;
  config::RunConfig config;  // the run's config, as saved in the checkpoint
  std::unique_ptr<Model> model;
  std::optional<Tokenizer> tokenizer;
  SpecialIds special_ids;
  // Longest source/target the run trained on, in tokens (</s> included); longer inputs are cut.
  int max_source_tokens = 0;
  int max_target_tokens = 0;
};

// Loads `checkpoint` (a step directory, or a checkpoint root whose `latest` is used) and the
// tokenizer <data_dir>/spm.model, data_dir being the saved config's data.data_dir unless
// `data_dir_override` is set. The model is built on `backend` in fp32 (whatever precision it was
// trained with: checkpoints hold the fp32 master weights). Errors name the missing file and the
// flag that fixes it.
StatusOr<InferenceModel> LoadInferenceModel(const std::string& checkpoint,
                                            const std::string& data_dir_override,
                                            const Backend& backend = CpuBackend());

// Pieces + </s>, cut to `max_tokens` (the </s> kept). InvalidArgument for text that is not UTF-8.
StatusOr<std::vector<int32_t>> EncodeSentence(const InferenceModel& m, std::string_view text,
                                              int max_tokens, bool* truncated = nullptr);

struct TranslateOptions {
  DecodeOptions decode;
  int batch_size = 32;  // sentences per batch (sorted by length first)
};

struct TranslateStats {
  int64_t sentences = 0;
  int64_t truncated = 0;  // sources cut to max_source_tokens
  double seconds = 0.0;   // encoding + decoding, tokenisation included
};

// Best hypothesis of each source (already encoded, </s> included), detokenised, in input order.
// Runs on the model's backend: token ids and masks are built on the host and copied over, and only
// the log-probabilities of each step come back.
StatusOr<std::vector<std::string>> TranslateTokens(InferenceModel& m,
                                                   const std::vector<std::vector<int32_t>>& sources,
                                                   const TranslateOptions& options);

// Raw sentences in, translations out (input order). `line_offset` numbers the sentences in error
// messages (line_offset + i + 1).
StatusOr<std::vector<std::string>> Translate(InferenceModel& m,
                                             const std::vector<std::string>& sentences,
                                             const TranslateOptions& options,
                                             TranslateStats* stats = nullptr,
                                             int64_t line_offset = 0);

}  // namespace deepnet
