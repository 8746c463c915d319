#include "text/prepare.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "text/file_io.h"
#include "text/shard.h"
#include "text/tsv.h"
#include "text/utf8.h"

namespace deepnet {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

StatusOr<ParallelCorpus> ReadCorpus(const std::string& path, const PrepareOptions& options) {
  ASSIGN_OR_RETURN(const std::string contents, ReadTextFile(path));
  if (const size_t bad = FirstInvalidUtf8(contents); bad != std::string::npos) {
    const size_t line_start =
        contents.rfind('\n', bad) == std::string::npos ? 0 : contents.rfind('\n', bad) + 1;
    const int64_t line = 1 + std::count(contents.begin(), contents.begin() + bad, '\n');
    char byte[8];
    std::snprintf(byte, sizeof(byte), "0x%02x", static_cast<unsigned char>(contents[bad]));
    return InvalidArgument(path + ":" + std::to_string(line) + ": not valid UTF-8 (byte " + byte +
                           " at column " + std::to_string(bad - line_start + 1) +
                           "); the corpus must be UTF-8 text");
  }
  ASSIGN_OR_RETURN(ParallelCorpus corpus,
                   ParseParallelTsv(contents, path, options.source_column, options.target_column));
  for (const std::string& example : corpus.malformed_examples) {
    LOG(WARNING) << "prepare: skipping malformed line " << example;
  }
  const int64_t non_empty = corpus.num_lines - corpus.num_empty_lines;
  if (corpus.num_malformed_lines > 0) {
    LOG(WARNING) << "prepare: " << path << ": skipped " << corpus.num_malformed_lines
                 << " malformed of " << non_empty << " lines";
  }
  if (corpus.num_malformed_lines > options.max_malformed_fraction * non_empty) {
    return InvalidArgument(path + ": " + std::to_string(corpus.num_malformed_lines) + " of " +
                           std::to_string(non_empty) + " lines are malformed (more than " +
                           std::to_string(options.max_malformed_fraction * 100) +
                           "%); first: " + corpus.malformed_examples.front());
  }
  if (corpus.pairs.empty()) return InvalidArgument(path + ": no sentence pairs");
  LOG(INFO) << "prepare: read " << path << ": " << corpus.pairs.size() << " sentence pairs";
  return corpus;
}

// Pieces + </s>, cut to `max_tokens` (the </s> kept). Returns whether it was cut.
bool CompleteSequence(std::vector<int32_t>* ids, int max_tokens, int32_t eos) {
  const bool too_long = static_cast<int64_t>(ids->size()) + 1 > max_tokens;
  if (too_long) ids->resize(max_tokens - 1);
  ids->push_back(eos);
  return too_long;
}

struct SplitCounts {
  int64_t dropped = 0;
  int64_t truncated = 0;
};

// Encodes every pair into `writer`. Over-long pairs are dropped when `allow_drop`, else cut.
StatusOr<SplitCounts> EncodeSplit(const ParallelCorpus& corpus, const Tokenizer& tokenizer,
                                  const PrepareOptions& options, bool allow_drop,
                                  std::string_view name, ShardWriter* writer) {
  SplitCounts counts;
  const int64_t total = static_cast<int64_t>(corpus.pairs.size());
  const int64_t report_every = std::max<int64_t>(total / 4, 1);
  for (int64_t i = 0; i < total; ++i) {
    ASSIGN_OR_RETURN(std::vector<int32_t> source, tokenizer.Encode(corpus.pairs[i].source));
    ASSIGN_OR_RETURN(std::vector<int32_t> target, tokenizer.Encode(corpus.pairs[i].target));
    const bool too_long = static_cast<int64_t>(source.size()) + 1 > options.max_source_tokens ||
                          static_cast<int64_t>(target.size()) + 1 > options.max_target_tokens;
    if (too_long && allow_drop && !options.truncate_long_examples) {
      ++counts.dropped;
      continue;
    }
    CompleteSequence(&source, options.max_source_tokens, tokenizer.eos_id());
    CompleteSequence(&target, options.max_target_tokens, tokenizer.eos_id());
    counts.truncated += too_long ? 1 : 0;
    writer->Add(source, target);
    if ((i + 1) % report_every == 0 && i + 1 < total) {
      LOG(INFO) << "prepare: encoded " << name << " " << i + 1 << "/" << total;
    }
  }
  return counts;
}

Status CheckOptions(const PrepareOptions& options) {
  if (options.data_dir.empty()) return InvalidArgument("prepare: data_dir is empty");
  if (options.max_source_tokens < 2 || options.max_target_tokens < 2) {
    return InvalidArgument("prepare: max_source_tokens and max_target_tokens must be >= 2");
  }
  return OkStatus();
}

}  // namespace

Status PrepareData(const PrepareOptions& options, PrepareSummary* summary) {
  const Clock::time_point start = Clock::now();
  RETURN_IF_ERROR(CheckOptions(options));
  std::error_code error;
  std::filesystem::create_directories(options.data_dir, error);
  if (error) return NotFound(options.data_dir + ": cannot create: " + error.message());

  ASSIGN_OR_RETURN(const ParallelCorpus train, ReadCorpus(options.train_path, options));
  ASSIGN_OR_RETURN(const ParallelCorpus valid, ReadCorpus(options.valid_path, options));
  PrepareSummary result;
  result.malformed_lines = train.num_malformed_lines + valid.num_malformed_lines;

  std::vector<std::string> sentences;
  sentences.reserve(2 * train.pairs.size());
  for (const SentencePair& pair : train.pairs) sentences.push_back(pair.source);
  for (const SentencePair& pair : train.pairs) sentences.push_back(pair.target);
  const std::string model_path = options.data_dir + "/spm.model";
  LOG(INFO) << "prepare: training " << options.tokenizer.model_type << " SentencePiece, vocab "
            << options.tokenizer.vocab_size << ", on " << sentences.size() << " sentences";
  const Clock::time_point tokenizer_start = Clock::now();
  RETURN_IF_ERROR(Tokenizer::Train(sentences, options.tokenizer, model_path));
  result.tokenizer_seconds = SecondsSince(tokenizer_start);
  ASSIGN_OR_RETURN(const Tokenizer tokenizer, Tokenizer::Load(model_path));
  result.vocab_size = tokenizer.vocab_size();
  LOG(INFO) << "prepare: wrote " << model_path << " (" << result.vocab_size << " pieces) in "
            << result.tokenizer_seconds << " s";

  ShardWriter train_writer(tokenizer.vocab_size(), tokenizer.special_ids());
  ASSIGN_OR_RETURN(
      const SplitCounts train_counts,
      EncodeSplit(train, tokenizer, options, /*allow_drop=*/true, "train", &train_writer));
  RETURN_IF_ERROR(train_writer.Write(options.data_dir + "/train.bin"));
  ShardWriter valid_writer(tokenizer.vocab_size(), tokenizer.special_ids());
  ASSIGN_OR_RETURN(
      const SplitCounts valid_counts,
      EncodeSplit(valid, tokenizer, options, /*allow_drop=*/false, "valid", &valid_writer));
  RETURN_IF_ERROR(valid_writer.Write(options.data_dir + "/valid.bin"));

  result.train_examples = train_writer.num_examples();
  result.train_source_tokens = train_writer.num_source_tokens();
  result.train_target_tokens = train_writer.num_target_tokens();
  result.train_dropped = train_counts.dropped;
  result.train_truncated = train_counts.truncated;
  result.valid_examples = valid_writer.num_examples();
  result.valid_source_tokens = valid_writer.num_source_tokens();
  result.valid_target_tokens = valid_writer.num_target_tokens();
  result.valid_truncated = valid_counts.truncated;
  result.total_seconds = SecondsSince(start);
  LOG(INFO) << "prepare: train " << result.train_examples << " examples, "
            << result.train_source_tokens << " source + " << result.train_target_tokens
            << " target tokens (" << result.train_dropped << " dropped, " << result.train_truncated
            << " truncated as too long)";
  LOG(INFO) << "prepare: valid " << result.valid_examples << " examples, "
            << result.valid_source_tokens << " source + " << result.valid_target_tokens
            << " target tokens (" << result.valid_truncated << " truncated)";
  LOG(INFO) << "prepare: done in " << result.total_seconds << " s, outputs in " << options.data_dir;
  if (summary != nullptr) *summary = result;
  return OkStatus();
}

}  // namespace deepnet
