// Tokenizer: a SentencePiece model shared by source and target (one joint vocabulary, so the
// embedding can be tied across encoder, decoder and output projection).
//
// Special ids are fixed: pad 0, unk 1, <s> (bos) 2, </s> (eos) 3. Encode() returns the pieces
// only; callers append </s> or prepend <s> where they need them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace sentencepiece {
class SentencePieceProcessor;
}  // namespace sentencepiece

namespace deepnet {

struct SpecialIds {
  int32_t pad = 0;
  int32_t unk = 1;
  int32_t bos = 2;
  int32_t eos = 3;
};

struct TokenizerTrainOptions {
  int vocab_size = 8000;
  std::string model_type = "unigram";  // unigram | bpe
  // Sentences sampled (after shuffling) for training; bounds the training time.
  int64_t input_sentence_size = 200000;
  int num_threads = 2;
  uint64_t seed = 1;  // seeds SentencePiece's sentence sampling (a process-wide library setting)
};

class Tokenizer {
 public:
  // Trains a model on `sentences` (both languages for a joint vocabulary) and writes it to
  // `model_path` atomically (the usual SentencePiece `model_prefix + ".model"`).
  static Status Train(const std::vector<std::string>& sentences,
                      const TokenizerTrainOptions& options, const std::string& model_path);

  // Loads a model written by Train() (or any SentencePiece model with the special ids above).
  static StatusOr<Tokenizer> Load(const std::string& model_path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  StatusOr<std::vector<int32_t>> Encode(std::string_view text) const;
  // Ignores pad, <s> and </s>; stops at nothing (callers cut at </s> themselves).
  StatusOr<std::string> Decode(const std::vector<int32_t>& ids) const;

  int32_t vocab_size() const { return vocab_size_; }
  const SpecialIds& special_ids() const { return special_; }
  int32_t pad_id() const { return special_.pad; }
  int32_t unk_id() const { return special_.unk; }
  int32_t bos_id() const { return special_.bos; }
  int32_t eos_id() const { return special_.eos; }

 private:
  explicit Tokenizer(std::unique_ptr<sentencepiece::SentencePieceProcessor> processor);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  int32_t vocab_size_ = 0;
  SpecialIds special_;
};

}  // namespace deepnet
