// TokenScorer: the next-token distributions of a set of decoding rows, the one thing beam search
// and greedy decoding need from a model.
//
// Letters: R rows being decoded, V vocabulary.
// A row is one partial hypothesis. Every Advance appends one token to each row (all rows are
// at the same position) and returns the log-probabilities of the token after it; SelectRows
// reorders, repeats or drops rows (beam search keeps the parents of the surviving candidates).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace deepnet {

class TokenScorer {
 public:
  virtual ~TokenScorer() = default;

  virtual int32_t vocab_size() const = 0;
  // Rows currently held.
  virtual int64_t num_rows() const = 0;
  // Appends tokens[r] to row r (tokens.size() == num_rows()) and returns log p(next | row),
  // row-major (R, V).
  virtual std::vector<double> Advance(std::span<const int32_t> tokens) = 0;
  // The new row i is the old row rows[i] (any order, repeats allowed).
  virtual void SelectRows(std::span<const int64_t> rows) = 0;
};

// log_softmax over each row of `logits` (rows, V), in place, computed in double.
void LogSoftmaxRows(std::vector<double>& logits, int64_t rows, int64_t vocab);

}  // namespace deepnet
