#include "text/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <unordered_map>

#include "text/file_io.h"

namespace deepnet {
namespace {

// Feeds in-memory sentences to the trainer (no temporary text file).
class VectorSentenceIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorSentenceIterator(const std::vector<std::string>& sentences)
      : sentences_(sentences) {}
  bool done() const override { return index_ >= sentences_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return sentences_[index_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& sentences_;
  size_t index_ = 0;
};

Status FromSpm(const sentencepiece::util::Status& status, std::string_view context) {
  if (status.ok()) return OkStatus();
  return Internal(std::string(context) + ": sentencepiece: " + status.ToString());
}

}  // namespace

Status Tokenizer::Train(const std::vector<std::string>& sentences,
                        const TokenizerTrainOptions& options, const std::string& model_path) {
  if (sentences.empty()) return InvalidArgument("tokenizer training: no sentences");
  if (options.vocab_size <= 4) return InvalidArgument("tokenizer training: vocab_size must be > 4");
  if (options.model_type != "unigram" && options.model_type != "bpe") {
    return InvalidArgument("tokenizer training: model_type must be unigram or bpe, got '" +
                           options.model_type + "'");
  }
  const SpecialIds special;
  const std::unordered_map<std::string, std::string> kwargs = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", "1.0"},
      {"pad_id", std::to_string(special.pad)},
      {"unk_id", std::to_string(special.unk)},
      {"bos_id", std::to_string(special.bos)},
      {"eos_id", std::to_string(special.eos)},
      {"input_sentence_size", std::to_string(options.input_sentence_size)},
      {"shuffle_input_sentence", "true"},
      {"num_threads", std::to_string(options.num_threads)},
      {"minloglevel", "2"},  // SentencePiece's progress lines go to stderr otherwise
  };
  sentencepiece::SetRandomGeneratorSeed(static_cast<unsigned int>(options.seed));
  VectorSentenceIterator iterator(sentences);
  std::string serialized_model;
  RETURN_IF_ERROR(
      FromSpm(sentencepiece::SentencePieceTrainer::Train(kwargs, &iterator, &serialized_model),
              "tokenizer training"));
  return WriteFileAtomically(model_path, serialized_model);
}

StatusOr<Tokenizer> Tokenizer::Load(const std::string& model_path) {
  auto processor = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const sentencepiece::util::Status status = processor->Load(model_path);
  if (!status.ok()) {
    return NotFound(model_path + ": cannot load SentencePiece model: " + status.ToString());
  }
  const SpecialIds expected;
  if (processor->pad_id() != expected.pad || processor->unk_id() != expected.unk ||
      processor->bos_id() != expected.bos || processor->eos_id() != expected.eos) {
    return InvalidArgument(model_path + ": special ids must be pad=0 unk=1 bos=2 eos=3, got pad=" +
                           std::to_string(processor->pad_id()) +
                           " unk=" + std::to_string(processor->unk_id()) +
                           " bos=" + std::to_string(processor->bos_id()) +
                           " eos=" + std::to_string(processor->eos_id()));
  }
  return Tokenizer(std::move(processor));
}

Tokenizer::Tokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor)
    : processor_(std::move(processor)), vocab_size_(processor_->GetPieceSize()) {}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

StatusOr<std::vector<int32_t>> Tokenizer::Encode(std::string_view text) const {
  std::vector<int> ids;
  RETURN_IF_ERROR(FromSpm(processor_->Encode(text, &ids), "encode"));
  return std::vector<int32_t>(ids.begin(), ids.end());
}

StatusOr<std::string> Tokenizer::Decode(const std::vector<int32_t>& ids) const {
  for (const int32_t id : ids) {
    if (id < 0 || id >= vocab_size_) {
      return OutOfRange("decode: id " + std::to_string(id) + " outside vocabulary of " +
                        std::to_string(vocab_size_));
    }
  }
  std::string text;
  RETURN_IF_ERROR(
      FromSpm(processor_->Decode(std::vector<int>(ids.begin(), ids.end()), &text), "decode"));
  return text;
}

}  // namespace deepnet
