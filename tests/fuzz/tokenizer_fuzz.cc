// Fuzzes the tokenizer's input path: the UTF-8 check that `prepare`, translate and score apply to
// outside text (FirstInvalidUtf8, text/utf8.h), Tokenizer::Encode on arbitrary bytes (valid or
// not: Encode itself must cope) and Tokenizer::Decode on arbitrary ids (model output).
//
// Start-up trains a 256-piece unigram model on the repository's data/valid.tsv.xz (as `prepare`
// trains one; about a second) into a scratch file and loads it.
//
// Input: the text. The same bytes, read as little-endian uint16 words w, also give ids
// w % (vocab + 4) - 2 to decode: mostly in the vocabulary, sometimes just outside it.
//
// Properties: no crash or sanitizer report; FirstInvalidUtf8 agrees with an independent reading
// of the Unicode standard's table of well-formed sequences (Table 3-7); Encode succeeds and
// yields ids in [0, vocab); Decode of those ids succeeds and, for valid UTF-8 input, gives valid
// UTF-8; Decode of the input ids succeeds exactly when all lie in [0, vocab) (else OutOfRange),
// and gives valid UTF-8 (the model has no byte pieces).
#include <cstring>
#include <optional>

#include "tests/fuzz/fuzz_util.h"
#include "text/file_io.h"
#include "text/tokenizer.h"
#include "text/tsv.h"
#include "text/utf8.h"

namespace {

std::optional<deepnet::Tokenizer>* tokenizer = nullptr;

// The offset of the first ill-formed sequence by Table 3-7 of the Unicode standard (well-formed
// UTF-8 byte sequences), or npos: the oracle for FirstInvalidUtf8.
size_t FirstIllFormed(std::string_view text) {
  struct Row {
    uint8_t first_lo, first_hi, second_lo, second_hi;
    int length;
  };
  static constexpr Row kRows[] = {
      {0x00, 0x7F, 0, 0, 1},       {0xC2, 0xDF, 0x80, 0xBF, 2}, {0xE0, 0xE0, 0xA0, 0xBF, 3},
      {0xE1, 0xEC, 0x80, 0xBF, 3}, {0xED, 0xED, 0x80, 0x9F, 3}, {0xEE, 0xEF, 0x80, 0xBF, 3},
      {0xF0, 0xF0, 0x90, 0xBF, 4}, {0xF1, 0xF3, 0x80, 0xBF, 4}, {0xF4, 0xF4, 0x80, 0x8F, 4},
  };
  const auto byte = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  size_t i = 0;
  while (i < text.size()) {
    const Row* row = nullptr;
    for (const Row& r : kRows) {
      if (byte(i) >= r.first_lo && byte(i) <= r.first_hi) row = &r;
    }
    if (row == nullptr || i + row->length > text.size()) return i;
    if (row->length >= 2 && (byte(i + 1) < row->second_lo || byte(i + 1) > row->second_hi)) {
      return i;
    }
    for (int k = 2; k < row->length; ++k) {
      if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return i;
    }
    i += row->length;
  }
  return std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace deepnet;
  FLAGS_minloglevel = 2;
  const std::string corpus_path = std::string(DEEPNET_SOURCE_DIR) + "/data/valid.tsv";
  StatusOr<std::string> contents = ReadTextFile(corpus_path);
  FUZZ_CHECK(contents.ok(), contents.status().ToString());
  StatusOr<ParallelCorpus> corpus = ParseParallelTsv(*contents, corpus_path, 1, 2);
  FUZZ_CHECK(corpus.ok(), corpus.status().ToString());
  std::vector<std::string> sentences;
  for (const SentencePair& pair : corpus->pairs) {
    sentences.push_back(pair.source);
    sentences.push_back(pair.target);
  }
  TokenizerTrainOptions options;
  options.vocab_size = 256;
  options.num_threads = 1;
  const std::string model_path = fuzz::ScratchPath(".model");
  const Status trained = Tokenizer::Train(sentences, options, model_path);
  FUZZ_CHECK(trained.ok(), trained.ToString());
  StatusOr<Tokenizer> loaded = Tokenizer::Load(model_path);
  unlink(model_path.c_str());
  FUZZ_CHECK(loaded.ok(), loaded.status().ToString());
  tokenizer = new std::optional<Tokenizer>(std::move(loaded).value());
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deepnet;
  const Tokenizer& t = **tokenizer;
  const int32_t vocab = t.vocab_size();

  const std::string_view input = fuzz::AsText(data, size);
  const size_t invalid = FirstInvalidUtf8(input);
  FUZZ_CHECK(invalid == FirstIllFormed(input), "FirstInvalidUtf8 says " + std::to_string(invalid) +
                                                   ", Table 3-7 says " +
                                                   std::to_string(FirstIllFormed(input)));

  StatusOr<std::vector<int32_t>> ids = t.Encode(input);
  FUZZ_CHECK(ids.ok(), ids.status().ToString());
  for (const int32_t id : *ids) {
    FUZZ_CHECK(id >= 0 && id < vocab, "Encode gave id " + std::to_string(id));
  }
  StatusOr<std::string> decoded = t.Decode(*ids);
  FUZZ_CHECK(decoded.ok(), decoded.status().ToString());
  if (invalid == std::string_view::npos) {
    FUZZ_CHECK(IsValidUtf8(*decoded), "valid UTF-8 in, not out: " + *decoded);
  }

  std::vector<int32_t> raw(size / 2);
  bool in_vocabulary = true;
  for (size_t i = 0; i < raw.size(); ++i) {
    uint16_t word = 0;
    std::memcpy(&word, data + 2 * i, sizeof(word));
    raw[i] = static_cast<int32_t>(word % (vocab + 4)) - 2;
    in_vocabulary = in_vocabulary && raw[i] >= 0 && raw[i] < vocab;
  }
  StatusOr<std::string> text = t.Decode(raw);
  if (in_vocabulary) {
    FUZZ_CHECK(text.ok(), text.status().ToString());
    FUZZ_CHECK(IsValidUtf8(*text), "decoded ids are not UTF-8: " + *text);
  } else {
    FUZZ_CHECK(text.status().code() == StatusCode::kOutOfRange, text.status().ToString());
  }
  return 0;
}
