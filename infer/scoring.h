// Teacher-forced scoring of (source, target) pairs: the cross-entropy of every target token
// (pieces + </s>) given the source and the target prefix, without label smoothing and with dropout
// off. Per pair and summed over a corpus (the token-weighted validation loss).
// Letters: B pairs in a batch, S source length, T target length, V vocab.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"
#include "runtime/status.h"
#include "text/tokenizer.h"

namespace deepnet {

struct TokenizedPair {
  std::vector<int32_t> source;  // pieces + </s>
  std::vector<int32_t> target;  // pieces + </s>
};

struct PairScore {
  int64_t tokens = 0;    // target tokens, </s> included
  double nll_sum = 0.0;  // Σ −log p over them
  double mean_nll() const { return tokens > 0 ? nll_sum / static_cast<double>(tokens) : 0.0; }
};

// Scores every pair (in input order) with an encoder-decoder `model`, batching pairs of similar
// length so that a batch holds at most `max_tokens` padded source + target tokens (a longer pair
// gets a batch of its own).
StatusOr<std::vector<PairScore>> ScorePairs(Model& model, const std::vector<TokenizedPair>& pairs,
                                            const SpecialIds& special, int64_t max_tokens);

// Σ over pairs, for the corpus mean.
PairScore SumScores(const std::vector<PairScore>& scores);

// Indices 0..n-1 ordered by `lengths` (stable), and the consecutive groups of that order whose
// padded size (rows × longest) stays within `max_tokens` and `max_rows` (0 = no row limit).
std::vector<std::vector<int64_t>> LengthBatches(const std::vector<int64_t>& lengths,
                                                int64_t max_tokens, int64_t max_rows);

}  // namespace deepnet
