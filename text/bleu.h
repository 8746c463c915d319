// Corpus BLEU with sacreBLEU's defaults, so deepnet's numbers can be compared with published ones:
// 13a tokenisation (mteval-v13a), n-grams up to 4, brevity penalty, smoothing "exp", mixed case,
// no effective order. ToString() prints sacreBLEU's line:
//   BLEU = 34.21 65.0/41.2/28.1/19.3 (BP = 0.981 ratio = 0.981 hyp_len = 9012 ref_len = 9183)
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace deepnet {

inline constexpr int kBleuMaxOrder = 4;

struct BleuScore {
  double score = 0;                                // 0..100
  std::array<int64_t, kBleuMaxOrder> correct{};    // matched n-grams (clipped), n = 1..4
  std::array<int64_t, kBleuMaxOrder> total{};      // hypothesis n-grams
  std::array<double, kBleuMaxOrder> precisions{};  // percent, after smoothing
  double bp = 0;                                   // brevity penalty
  int64_t sys_len = 0;                             // hypothesis tokens
  int64_t ref_len = 0;                             // closest reference tokens, summed
  std::string ToString() const;
};

// mteval-v13a tokenisation as sacreBLEU's Tokenizer13a: drops "<skipped>", joins "-\n",
// unescapes &quot; &amp; &lt; &gt;, splits off punctuation and symbols, splits '.' and ','
// except between digits, splits '-' after a digit, collapses (Unicode) whitespace.
std::string Tokenize13a(std::string_view line);

// hypotheses[i] is scored against references[k][i] for every reference stream k.
StatusOr<BleuScore> CorpusBleu(const std::vector<std::string>& hypotheses,
                               const std::vector<std::vector<std::string>>& references);

// One reference per hypothesis.
StatusOr<BleuScore> CorpusBleu(const std::vector<std::string>& hypotheses,
                               const std::vector<std::string>& references);

}  // namespace deepnet
