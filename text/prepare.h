// PrepareData: from the parallel TSV corpus to what training reads.
//
// Reads the train and valid TSV files (plain or .xz), trains one SentencePiece model on the
// training text of both languages (a joint vocabulary), and writes into `data_dir`:
//   spm.model   the tokenizer
//   train.bin   training examples (token shard, text/shard.h)
//   valid.bin   validation examples, in file order (example e = e-th well-formed valid line)
// Training examples longer than the limits are dropped or truncated (an option); validation
// examples are only ever truncated, so every reference line keeps its example for BLEU.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/status.h"
#include "text/tokenizer.h"

namespace deepnet {

struct PrepareOptions {
  std::string train_path = "data/train.tsv";  // ".xz" is found automatically
  std::string valid_path = "data/valid.tsv";
  std::string data_dir;   // created if missing
  int source_column = 1;  // 0 ref, 1 English, 2 Spanish
  int target_column = 2;
  // Limits in tokens, </s> included; longer training examples are dropped unless
  // `truncate_long_examples`.
  int max_source_tokens = 256;
  int max_target_tokens = 256;
  bool truncate_long_examples = false;
  // Malformed lines are skipped with a warning; more than this fraction of a file is an error.
  double max_malformed_fraction = 0.01;
  TokenizerTrainOptions tokenizer;
};

struct PrepareSummary {
  int64_t train_examples = 0;
  int64_t train_source_tokens = 0;
  int64_t train_target_tokens = 0;
  int64_t train_dropped = 0;    // over a limit and dropped
  int64_t train_truncated = 0;  // over a limit and truncated
  int64_t valid_examples = 0;
  int64_t valid_source_tokens = 0;
  int64_t valid_target_tokens = 0;
  int64_t valid_truncated = 0;
  int64_t malformed_lines = 0;  // both files
  int32_t vocab_size = 0;
  double tokenizer_seconds = 0;
  double total_seconds = 0;
};

// `summary` may be null.
Status PrepareData(const PrepareOptions& options, PrepareSummary* summary = nullptr);

}  // namespace deepnet
