// Beam search (fairseq's SequenceGenerator) and greedy decoding over a TokenScorer.
// Letters: R rows, V vocabulary.
#include "infer/beam_search.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

namespace deepnet {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// What a step may produce: no <pad> or <s>, no </s> first, only </s> at the length limit.
void ApplyConstraints(double* log_probs, int64_t V, const SpecialIds& special, int step,
                      int max_len) {
  log_probs[special.pad] = kNegInf;
  log_probs[special.bos] = kNegInf;
  if (step >= max_len) {
    const double eos = log_probs[special.eos];
    std::fill(log_probs, log_probs + V, kNegInf);
    log_probs[special.eos] = eos;
  } else if (step == 0) {
    log_probs[special.eos] = kNegInf;
  }
}

// Bans every token that would complete an n-gram already in `tokens` (the row's generated pieces):
// each earlier occurrence of the last n-1 tokens bans the token that followed it. </s> stays
// allowed so that the hypothesis can always end.
void BlockRepeatedNgrams(double* log_probs, const std::vector<int32_t>& tokens, int n,
                         int32_t eos) {
  if (n <= 0 || tokens.size() < static_cast<size_t>(n)) return;
  const size_t prefix = static_cast<size_t>(n) - 1;
  const auto tail = tokens.end() - static_cast<std::ptrdiff_t>(prefix);
  for (size_t i = 0; i + prefix < tokens.size(); ++i) {
    const auto start = tokens.begin() + static_cast<std::ptrdiff_t>(i);
    if (!std::equal(tail, tokens.end(), start)) continue;
    const int32_t banned = tokens[i + prefix];
    if (banned != eos) log_probs[banned] = kNegInf;
  }
}

double Normalised(double log_prob, int length, double len_penalty) {
  return log_prob / std::pow(static_cast<double>(length), len_penalty);
}

Status CheckInputs(const TokenScorer& scorer, const std::vector<int64_t>& source_lengths,
                   const SpecialIds& special, const DecodeOptions& options) {
  if (options.no_repeat_ngram < 0) return InvalidArgument("no_repeat_ngram must be >= 0");
  if (scorer.num_rows() != static_cast<int64_t>(source_lengths.size())) {
    return InvalidArgument("decoding needs one scorer row per sentence (" +
                           std::to_string(scorer.num_rows()) + " rows, " +
                           std::to_string(source_lengths.size()) + " sentences)");
  }
  const int32_t V = scorer.vocab_size();
  for (const int32_t id : {special.pad, special.bos, special.eos}) {
    if (id < 0 || id >= V) return InvalidArgument("special id outside the vocabulary");
  }
  return OkStatus();
}

struct Row {
  std::vector<int32_t> tokens;
  double log_prob = kNegInf;  // -inf: an unused row (a sentence with fewer live candidates)
};

struct Candidate {
  double log_prob;
  int64_t index;  // row·V + token within the sentence
};

// The best `count` finite candidates of a sentence's rows, best first (ties: lower index).
std::vector<Candidate> TopCandidates(const std::vector<double>& log_probs, int64_t first_row,
                                     const std::vector<Row>& rows, int64_t V, size_t count) {
  auto better = [](const Candidate& a, const Candidate& b) {
    return a.log_prob > b.log_prob || (a.log_prob == b.log_prob && a.index < b.index);
  };
  std::vector<Candidate> heap;  // the worst kept candidate on top
  for (size_t j = 0; j < rows.size(); ++j) {
    if (rows[j].log_prob == kNegInf) continue;
    const double* lp = log_probs.data() + (first_row + static_cast<int64_t>(j)) * V;
    for (int64_t v = 0; v < V; ++v) {
      if (lp[v] == kNegInf) continue;
      const Candidate c{rows[j].log_prob + lp[v], static_cast<int64_t>(j) * V + v};
      if (heap.size() < count) {
        heap.push_back(c);
        std::push_heap(heap.begin(), heap.end(), better);
      } else if (better(c, heap.front())) {
        std::pop_heap(heap.begin(), heap.end(), better);
        heap.back() = c;
        std::push_heap(heap.begin(), heap.end(), better);
      }
    }
  }
  std::sort(heap.begin(), heap.end(), better);
  return heap;
}

struct Sentence {
  int64_t id = 0;  // position in the input
  int max_len = 0;
  std::vector<Row> rows;  // `beam` of them
  std::vector<Hypothesis> finished;
};

// One step of one sentence: finishes hypotheses, fills `next` with the continuing rows and
// `parents` with the row (within the sentence) each continues. Returns true when it is done.
bool StepSentence(Sentence& s, const std::vector<double>& log_probs, int64_t first_row, int64_t V,
                  int step, const SpecialIds& special, const DecodeOptions& options,
                  std::vector<Row>* next, std::vector<int64_t>* parents) {
  const size_t beam = static_cast<size_t>(options.beam);
  const std::vector<Candidate> candidates =
      TopCandidates(log_probs, first_row, s.rows, V, 2 * beam);
  for (size_t k = 0; k < candidates.size(); ++k) {
    const Candidate& c = candidates[k];
    const size_t parent = static_cast<size_t>(c.index / V);
    const auto token = static_cast<int32_t>(c.index % V);
    if (token == special.eos) {
      // Only an </s> among the best `beam` candidates finishes a hypothesis (as fairseq).
      if (k < beam && s.finished.size() < beam) {
        const int length = static_cast<int>(s.rows[parent].tokens.size()) + 1;
        s.finished.push_back({s.rows[parent].tokens,
                              Normalised(c.log_prob, length, options.len_penalty), c.log_prob});
      }
    } else if (next->size() < beam) {
      Row row{s.rows[parent].tokens, c.log_prob};
      row.tokens.push_back(token);
      next->push_back(std::move(row));
      parents->push_back(static_cast<int64_t>(parent));
    }
  }
  if (s.finished.size() >= beam || step >= s.max_len || next->empty()) return true;
  while (next->size() < beam) {  // too few live candidates: unused rows keep the shape
    next->push_back(Row{{}, kNegInf});
    parents->push_back(0);
  }
  return false;
}

// Best first; ties keep the order of finishing.
void SortHypotheses(std::vector<Hypothesis>& hypotheses) {
  std::stable_sort(hypotheses.begin(), hypotheses.end(),
                   [](const Hypothesis& a, const Hypothesis& b) { return a.score > b.score; });
}

}  // namespace

int MaxTargetLength(const DecodeOptions& options, int64_t source_length) {
  int max_len = static_cast<int>(
      std::floor(options.max_len_a * static_cast<double>(source_length) + options.max_len_b));
  if (options.max_positions > 0) max_len = std::min(max_len, options.max_positions - 1);
  return std::max(max_len, 1);
}

StatusOr<std::vector<std::vector<Hypothesis>>> BeamSearch(
    TokenScorer& scorer, const std::vector<int64_t>& source_lengths, const SpecialIds& special,
    const DecodeOptions& options) {
  RETURN_IF_ERROR(CheckInputs(scorer, source_lengths, special, options));
  if (options.beam < 1) return InvalidArgument("beam must be >= 1");
  const int64_t beam = options.beam, V = scorer.vocab_size();
  std::vector<std::vector<Hypothesis>> results(source_lengths.size());
  std::vector<Sentence> active;
  std::vector<int64_t> expand;  // every sentence's single start row, repeated `beam` times
  for (size_t i = 0; i < source_lengths.size(); ++i) {
    Sentence s{static_cast<int64_t>(i), MaxTargetLength(options, source_lengths[i]), {}, {}};
    s.rows.assign(beam, Row{{}, kNegInf});
    s.rows[0].log_prob = 0.0;  // the other rows start dead, so step 0 does not repeat itself
    active.push_back(std::move(s));
    expand.insert(expand.end(), beam, static_cast<int64_t>(i));
  }
  if (active.empty()) return results;
  scorer.SelectRows(expand);
  std::vector<int32_t> feed(expand.size(), special.bos);
  for (int step = 0; !active.empty(); ++step) {
    std::vector<double> log_probs = scorer.Advance(feed);
    std::vector<Sentence> still_active;
    std::vector<int64_t> keep;
    feed.clear();
    for (size_t g = 0; g < active.size(); ++g) {
      Sentence& s = active[g];
      const int64_t first_row = static_cast<int64_t>(g) * beam;
      for (int64_t j = 0; j < beam; ++j) {
        double* lp = log_probs.data() + (first_row + j) * V;
        ApplyConstraints(lp, V, special, step, s.max_len);
        BlockRepeatedNgrams(lp, s.rows[j].tokens, options.no_repeat_ngram, special.eos);
      }
      std::vector<Row> next;
      std::vector<int64_t> parents;
      if (StepSentence(s, log_probs, first_row, V, step, special, options, &next, &parents)) {
        SortHypotheses(s.finished);
        results[s.id] = std::move(s.finished);
        continue;
      }
      for (size_t j = 0; j < next.size(); ++j) {
        keep.push_back(first_row + parents[j]);
        feed.push_back(next[j].tokens.empty() ? special.eos : next[j].tokens.back());
      }
      s.rows = std::move(next);
      still_active.push_back(std::move(s));
    }
    active = std::move(still_active);
    if (!active.empty()) scorer.SelectRows(keep);
  }
  return results;
}

StatusOr<std::vector<Hypothesis>> GreedyDecode(TokenScorer& scorer,
                                               const std::vector<int64_t>& source_lengths,
                                               const SpecialIds& special,
                                               const DecodeOptions& options) {
  RETURN_IF_ERROR(CheckInputs(scorer, source_lengths, special, options));
  const int64_t V = scorer.vocab_size();
  std::vector<Hypothesis> results(source_lengths.size());
  std::vector<int64_t> active(source_lengths.size());  // sentence of each scorer row
  for (size_t i = 0; i < active.size(); ++i) active[i] = static_cast<int64_t>(i);
  std::vector<int32_t> feed(active.size(), special.bos);
  for (int step = 0; !active.empty(); ++step) {
    std::vector<double> log_probs = scorer.Advance(feed);
    std::vector<int64_t> keep, still_active;
    feed.clear();
    for (size_t r = 0; r < active.size(); ++r) {
      Hypothesis& h = results[active[r]];
      double* lp = log_probs.data() + static_cast<int64_t>(r) * V;
      ApplyConstraints(lp, V, special, step, MaxTargetLength(options, source_lengths[active[r]]));
      BlockRepeatedNgrams(lp, h.tokens, options.no_repeat_ngram, special.eos);
      const auto token = static_cast<int32_t>(std::max_element(lp, lp + V) - lp);
      h.log_prob += lp[token];
      if (token == special.eos || lp[token] == kNegInf) {
        h.score =
            Normalised(h.log_prob, static_cast<int>(h.tokens.size()) + 1, options.len_penalty);
        continue;
      }
      h.tokens.push_back(token);
      keep.push_back(static_cast<int64_t>(r));
      still_active.push_back(active[r]);
      feed.push_back(token);
    }
    active = std::move(still_active);
    if (!active.empty() && keep.size() != static_cast<size_t>(scorer.num_rows())) {
      scorer.SelectRows(keep);
    }
  }
  return results;
}

}  // namespace deepnet
