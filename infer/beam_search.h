// Beam search and greedy decoding over a TokenScorer, as fairseq's SequenceGenerator does it.
//
// Each sentence keeps `beam` rows. A step scores every (row, next token) pair by the row's summed
// log-probability plus the token's, and takes the best 2·beam candidates: an </s> among the
// first `beam` of them finishes a hypothesis, whose score is its summed log-probability divided
// by length^len_penalty (length = tokens generated, </s> included); the best `beam` other
// candidates continue. A sentence is done when it has `beam` finished hypotheses. At most
// max_len = ⌊max_len_a·source_length + max_len_b⌋ tokens come before </s> (source_length counts
// the source's </s>); at that step </s> is the only choice. <pad> and <s> are never produced, and
// </s> not as the first token (min length 1).
//
// With no_repeat_ngram = n > 0 (fairseq's --no-repeat-ngram-size), a hypothesis may not produce a
// token that completes an n-gram of generated pieces (<s> excluded) that it already holds: the
// token's log-probability becomes -inf before candidates are chosen. </s> is never blocked.
//
// Greedy decoding takes the arg-max token until </s> or max_len; it equals beam search with
// beam 1.
#pragma once

#include <cstdint>
#include <vector>

#include "infer/token_scorer.h"
#include "runtime/status.h"
#include "text/tokenizer.h"

namespace deepnet {

struct DecodeOptions {
  int beam = 4;  // 1 = greedy
  double max_len_a = 1.2;
  int max_len_b = 10;
  double len_penalty = 1.0;  // score = Σ log p / length^len_penalty
  int max_positions = 0;     // decoder positions available (0 = no limit): max_len < this
  int no_repeat_ngram = 0;   // n > 0: no n-gram twice in a hypothesis (0 = off)
};

struct Hypothesis {
  std::vector<int32_t> tokens;  // generated pieces, without </s>
  double score = 0.0;           // length-normalised, see above
  double log_prob = 0.0;        // Σ log p of the tokens and </s>
};

// The length limit of a sentence whose source has `source_length` tokens (</s> included).
int MaxTargetLength(const DecodeOptions& options, int64_t source_length);

// Decodes every sentence: the scorer holds one row per sentence at position 0 (the first Advance
// feeds <s>). Returns each sentence's finished hypotheses, best first (`beam` of them; 1 for
// greedy).
StatusOr<std::vector<std::vector<Hypothesis>>> BeamSearch(
    TokenScorer& scorer, const std::vector<int64_t>& source_lengths, const SpecialIds& special,
    const DecodeOptions& options);

StatusOr<std::vector<Hypothesis>> GreedyDecode(TokenScorer& scorer,
                                               const std::vector<int64_t>& source_lengths,
                                               const SpecialIds& special,
                                               const DecodeOptions& options);

}  // namespace deepnet
