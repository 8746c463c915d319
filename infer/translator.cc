// Loading a checkpoint for inference, and batched translation of sentences.
#include "infer/translator.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <limits>

#include "configs/config.h"
#include "infer/model_decoder.h"
#include "infer/scoring.h"
#include "train/checkpoint.h"

namespace deepnet {
namespace {

int MaxPositions(const config::ModelConfig& model) {
  return model.has_max_positions() ? model.max_positions() : 1024;
}

StatusOr<Tokenizer> LoadRunTokenizer(const config::RunConfig& config,
                                     const std::string& data_dir_override) {
  const std::string data_dir =
      data_dir_override.empty() ? config.data().data_dir() : data_dir_override;
  const std::string path = (std::filesystem::path(data_dir) / "spm.model").string();
  if (!std::filesystem::exists(path)) {
    return NotFound("tokenizer " + path + " not found" +
                    (data_dir_override.empty() ? " (data.data_dir of the checkpoint's run)" : "") +
                    "; pass --data_dir DIR, the directory where `deepnet prepare` wrote spm.model");
  }
  return Tokenizer::Load(path);
}

// The sources of `ids` as a padded (B, S) i32 tensor and its (B, S) u8 padding mask, on the host
// (EncodeSource copies them to the model's device).
std::pair<Tensor, Tensor> PadSources(const std::vector<std::vector<int32_t>>& sources,
                                     const std::vector<int64_t>& ids, int32_t pad) {
  int64_t S = 0;
  for (const int64_t id : ids) S = std::max<int64_t>(S, sources[id].size());
  const int64_t B = static_cast<int64_t>(ids.size());
  Tensor tokens = Tensor::Empty({B, S}, DType::kI32, MemoryCategory::kActivations);
  Tensor mask = Tensor::Empty({B, S}, DType::kU8, MemoryCategory::kActivations);
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int32_t>& source = sources[ids[b]];
    for (int64_t s = 0; s < S; ++s) {
      const bool real = s < static_cast<int64_t>(source.size());
      tokens.data<int32_t>()[b * S + s] = real ? source[s] : pad;
      mask.data<uint8_t>()[b * S + s] = real ? 0 : 1;
    }
  }
  return {tokens, mask};
}

// The best hypothesis of every sentence of one batch.
StatusOr<std::vector<Hypothesis>> DecodeBatch(InferenceModel& m, const Tensor& tokens,
                                              const Tensor& mask,
                                              const std::vector<int64_t>& lengths,
                                              const DecodeOptions& options) {
  ASSIGN_OR_RETURN(const EncodedSource encoded, EncodeSource(*m.model, tokens, mask));
  ASSIGN_OR_RETURN(std::unique_ptr<ModelDecoder> decoder, ModelDecoder::Create(*m.model, encoded));
  if (options.beam == 1) return GreedyDecode(*decoder, lengths, m.special_ids, options);
  ASSIGN_OR_RETURN(std::vector<std::vector<Hypothesis>> nbest,
                   BeamSearch(*decoder, lengths, m.special_ids, options));
  std::vector<Hypothesis> best;
  for (std::vector<Hypothesis>& hypotheses : nbest) {
    best.push_back(hypotheses.empty() ? Hypothesis{} : std::move(hypotheses.front()));
  }
  return best;
}

}  // namespace

StatusOr<InferenceModel> LoadInferenceModel(const std::string& checkpoint,
                                            const std::string& data_dir_override,
                                            const Backend& backend) {
  if (checkpoint.empty()) return InvalidArgument("--checkpoint DIR is required");
  if (!std::filesystem::exists(checkpoint)) {
    return NotFound("checkpoint " + checkpoint + " does not exist (pass a checkpoint root, " +
                    "e.g. runs/demo/checkpoints, or one of its step-NNNNNNN directories)");
  }
  InferenceModel m;
  ASSIGN_OR_RETURN(m.checkpoint_dir, ResolveCheckpointDir(checkpoint));
  ASSIGN_OR_RETURN(const TrainingState state, ReadTrainingState(m.checkpoint_dir));
  ASSIGN_OR_RETURN(m.config, config::LoadConfigFromText(state.config_text,
                                                        m.checkpoint_dir + "/state.json", {}));
  config::ModelConfig& model_config = *m.config.mutable_model();
  if (model_config.vocab_size() == 0) model_config.set_vocab_size(state.vocab_size);
  if (model_config.architecture() != config::ModelConfig::ENCODER_DECODER) {
    return FailedPrecondition(m.checkpoint_dir + " holds a " +
                              config::ModelConfig::Architecture_Name(model_config.architecture()) +
                              " model; translation and scoring need ENCODER_DECODER");
  }
  m.step = state.step;
  m.special_ids = state.special_ids;
  ModelBuildOptions options;
  options.seed = state.seed;
  options.pad_id = state.special_ids.pad;
  options.backend = &backend;
  ASSIGN_OR_RETURN(m.model, Model::Build(model_config, options));
  std::vector<Unit*> units;
  for (auto& unit : m.model->units()) units.push_back(unit.get());
  RETURN_IF_ERROR(LoadParameters(m.checkpoint_dir, units, m.model->backend()));
  ASSIGN_OR_RETURN(Tokenizer tokenizer, LoadRunTokenizer(m.config, data_dir_override));
  if (tokenizer.vocab_size() > model_config.vocab_size()) {
    return FailedPrecondition("the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                              " pieces, more than the model's vocabulary of " +
                              std::to_string(model_config.vocab_size()) +
                              ": is --data_dir the run's data directory?");
  }
  m.tokenizer.emplace(std::move(tokenizer));
  const int max_positions = MaxPositions(model_config);
  m.max_source_tokens = std::min(m.config.data().max_source_length(), max_positions);
  m.max_target_tokens = std::min(m.config.data().max_target_length(), max_positions);
  if (m.max_source_tokens <= 0) m.max_source_tokens = max_positions;
  if (m.max_target_tokens <= 0) m.max_target_tokens = max_positions;
  return m;
}

StatusOr<std::vector<int32_t>> EncodeSentence(const InferenceModel& m, std::string_view text,
                                              int max_tokens, bool* truncated) {
  if (!IsValidUtf8(text)) return InvalidArgument("not valid UTF-8");
  ASSIGN_OR_RETURN(std::vector<int32_t> ids, m.tokenizer->Encode(text));
  const size_t limit = static_cast<size_t>(std::max(max_tokens, 1)) - 1;  // room for </s>
  if (truncated != nullptr) *truncated = ids.size() > limit;
  if (ids.size() > limit) ids.resize(limit);
  ids.push_back(m.special_ids.eos);
  return ids;
}

StatusOr<std::vector<std::string>> TranslateTokens(InferenceModel& m,
                                                   const std::vector<std::vector<int32_t>>& sources,
                                                   const TranslateOptions& options) {
  if (options.batch_size < 1) return InvalidArgument("batch size must be >= 1");
  DecodeOptions decode = options.decode;
  decode.max_positions = MaxPositions(m.model->config());
  std::vector<int64_t> lengths;
  for (const std::vector<int32_t>& source : sources) lengths.push_back(source.size());
  std::vector<std::string> translations(sources.size());
  for (const std::vector<int64_t>& ids :
       LengthBatches(lengths, std::numeric_limits<int64_t>::max() / 2, options.batch_size)) {
    const auto [tokens, mask] = PadSources(sources, ids, m.special_ids.pad);
    std::vector<int64_t> batch_lengths;
    for (const int64_t id : ids) batch_lengths.push_back(lengths[id]);
    ASSIGN_OR_RETURN(const std::vector<Hypothesis> best,
                     DecodeBatch(m, tokens, mask, batch_lengths, decode));
    for (size_t b = 0; b < ids.size(); ++b) {
      std::vector<int32_t> pieces;  // ids the tokenizer does not know (unused rows) are dropped
      for (const int32_t id : best[b].tokens) {
        if (id < m.tokenizer->vocab_size()) pieces.push_back(id);
      }
      ASSIGN_OR_RETURN(translations[ids[b]], m.tokenizer->Decode(pieces));
    }
  }
  return translations;
}

StatusOr<std::vector<std::string>> Translate(InferenceModel& m,
                                             const std::vector<std::string>& sentences,
                                             const TranslateOptions& options, TranslateStats* stats,
                                             int64_t line_offset) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::vector<int32_t>> sources;
  int64_t truncated = 0;
  for (size_t i = 0; i < sentences.size(); ++i) {
    bool cut = false;
    StatusOr<std::vector<int32_t>> ids = EncodeSentence(m, sentences[i], m.max_source_tokens, &cut);
    if (!ids.ok()) {
      return ids.status().WithContext("input line " +
                                      std::to_string(line_offset + static_cast<int64_t>(i) + 1));
    }
    truncated += cut ? 1 : 0;
    sources.push_back(std::move(ids).value());
  }
  ASSIGN_OR_RETURN(std::vector<std::string> translations, TranslateTokens(m, sources, options));
  if (stats != nullptr) {
    stats->sentences += static_cast<int64_t>(sentences.size());
    stats->truncated += truncated;
    stats->seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return translations;
}

}  // namespace deepnet
