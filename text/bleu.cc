#include "text/bleu.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <unordered_map>

namespace deepnet {
namespace {

// The code points Python's str.isspace() accepts: sacreBLEU strips and splits with them.
bool IsPythonSpace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

// Decodes the UTF-8 code point at `text[i]` and its byte length; a stray byte counts as itself.
uint32_t DecodeUtf8(std::string_view text, size_t i, size_t* length) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t lead = byte(i);
  size_t n = lead < 0x80           ? 1
             : (lead >> 5) == 0x6  ? 2
             : (lead >> 4) == 0xe  ? 3
             : (lead >> 3) == 0x1e ? 4
                                   : 1;
  if (i + n > text.size()) n = 1;
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) n = 1;
  }
  *length = n;
  if (n == 1) return lead;
  uint32_t code = lead & (0x7f >> n);
  for (size_t k = 1; k < n; ++k) code = (code << 6) | (byte(i + k) & 0x3f);
  return code;
}

// Splits on Python whitespace, like str.split() with no argument.
std::vector<std::string_view> SplitWhitespace(std::string_view text) {
  std::vector<std::string_view> words;
  size_t word_start = std::string_view::npos;
  for (size_t i = 0; i < text.size();) {
    size_t length = 1;
    const bool space = IsPythonSpace(DecodeUtf8(text, i, &length));
    if (space && word_start != std::string_view::npos) {
      words.push_back(text.substr(word_start, i - word_start));
      word_start = std::string_view::npos;
    } else if (!space && word_start == std::string_view::npos) {
      word_start = i;
    }
    i += length;
  }
  if (word_start != std::string_view::npos) words.push_back(text.substr(word_start));
  return words;
}

// Python's str.rstrip() with no argument.
std::string_view RStrip(std::string_view text) {
  size_t end = 0;
  for (size_t i = 0; i < text.size();) {
    size_t length = 1;
    const bool space = IsPythonSpace(DecodeUtf8(text, i, &length));
    i += length;
    if (!space) end = i;
  }
  return text.substr(0, end);
}

std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  size_t start = 0;
  for (size_t hit; (hit = text.find(from, start)) != std::string_view::npos;) {
    out.append(text, start, hit - start).append(to);
    start = hit + from.size();
  }
  return out.append(text.substr(start));
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsPeriodOrComma(char c) { return c == '.' || c == ','; }

// The class [\{-\~\[-\` -\&\(-\+\:-\@\/] of mteval-v13a: ASCII symbols except ' , - . and
// letters/digits.
bool IsSplitSymbol(char c) {
  return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
         (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

// One left-to-right pass of a two-character pattern, like Python's re.sub: a match at i consumes
// text[i] and text[i + 1] and is written as `before a middle b after`.
template <typename Match>
std::string SubstitutePairs(const std::string& text, Match match, const char* before,
                            const char* middle, const char* after) {
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  for (size_t i = 0; i < text.size();) {
    if (i + 1 < text.size() && match(text[i], text[i + 1])) {
      out.append(before).push_back(text[i]);
      out.append(middle).push_back(text[i + 1]);
      out.append(after);
      i += 2;
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

struct SegmentNgrams {
  std::array<std::unordered_map<std::string, int64_t>, kBleuMaxOrder> counts;
  int64_t length = 0;
};

SegmentNgrams CountNgrams(const std::string& tokenized) {
  SegmentNgrams result;
  const std::vector<std::string_view> words = SplitWhitespace(tokenized);
  result.length = static_cast<int64_t>(words.size());
  for (size_t n = 1; n <= kBleuMaxOrder; ++n) {
    for (size_t i = 0; i + n <= words.size(); ++i) {
      std::string key(words[i]);
      for (size_t k = 1; k < n; ++k) key.append(" ").append(words[i + k]);
      ++result.counts[n - 1][key];
    }
  }
  return result;
}

// Among the reference lengths, the closest to `hyp_len`; the shorter one on a tie.
int64_t ClosestReferenceLength(int64_t hyp_len, const std::vector<int64_t>& ref_lens) {
  int64_t best_diff = -1, best_len = -1;
  for (const int64_t ref_len : ref_lens) {
    const int64_t diff = std::llabs(hyp_len - ref_len);
    if (best_diff == -1 || diff < best_diff || (diff == best_diff && ref_len < best_len)) {
      best_diff = diff;
      best_len = ref_len;
    }
  }
  return best_len;
}

// sacreBLEU's compute_bleu with smooth_method "exp" and no effective order.
BleuScore ComputeBleu(BleuScore stats) {
  stats.bp = 1.0;
  if (stats.sys_len < stats.ref_len) {
    stats.bp = stats.sys_len > 0
                   ? std::exp(1.0 - static_cast<double>(stats.ref_len) / stats.sys_len)
                   : 0.0;
  }
  stats.precisions.fill(0.0);
  bool any_correct = false;
  for (const int64_t c : stats.correct) any_correct |= c != 0;
  if (!any_correct) {
    stats.score = 0.0;
    return stats;
  }
  double smooth = 1.0;
  for (int n = 0; n < kBleuMaxOrder; ++n) {
    if (stats.total[n] == 0) break;
    if (stats.correct[n] == 0) {
      smooth *= 2;
      stats.precisions[n] = 100.0 / (smooth * static_cast<double>(stats.total[n]));
    } else {
      stats.precisions[n] = 100.0 * static_cast<double>(stats.correct[n]) / stats.total[n];
    }
  }
  double log_sum = 0.0;
  for (const double p : stats.precisions) log_sum += p == 0.0 ? -9999999999.0 : std::log(p);
  stats.score = stats.bp * std::exp(log_sum / kBleuMaxOrder);
  return stats;
}

}  // namespace

std::string Tokenize13a(std::string_view line) {
  std::string text = ReplaceAll(line, "<skipped>", "");
  text = ReplaceAll(text, "-\n", "");
  text = ReplaceAll(text, "\n", " ");
  if (text.find('&') != std::string::npos) {
    text = ReplaceAll(text, "&quot;", "\"");
    text = ReplaceAll(text, "&amp;", "&");
    text = ReplaceAll(text, "&lt;", "<");
    text = ReplaceAll(text, "&gt;", ">");
  }
  std::string spaced;
  spaced.reserve(text.size() * 2 + 2);
  spaced.push_back(' ');
  for (const char c : text) {
    if (IsSplitSymbol(c)) {
      spaced.append(" ").push_back(c);
      spaced.push_back(' ');
    } else {
      spaced.push_back(c);
    }
  }
  spaced.push_back(' ');
  // Period and comma unless preceded by a digit, then unless followed by a digit; dash after a
  // digit. UTF-8 bytes of non-ASCII characters never match these ASCII classes, so working on
  // bytes gives the same result as Python's code points.
  text = SubstitutePairs(
      spaced, [](char a, char b) { return !IsDigit(a) && IsPeriodOrComma(b); }, "", " ", " ");
  text = SubstitutePairs(
      text, [](char a, char b) { return IsPeriodOrComma(a) && !IsDigit(b); }, " ", " ", "");
  text = SubstitutePairs(
      text, [](char a, char b) { return IsDigit(a) && b == '-'; }, "", " ", " ");
  std::string out;
  for (const std::string_view word : SplitWhitespace(text)) {
    if (!out.empty()) out.push_back(' ');
    out.append(word);
  }
  return out;
}

StatusOr<BleuScore> CorpusBleu(const std::vector<std::string>& hypotheses,
                               const std::vector<std::vector<std::string>>& references) {
  if (references.empty()) return InvalidArgument("BLEU: no reference stream");
  for (size_t k = 0; k < references.size(); ++k) {
    if (references[k].size() != hypotheses.size()) {
      return InvalidArgument("BLEU: reference stream " + std::to_string(k) + " has " +
                             std::to_string(references[k].size()) + " lines, hypotheses have " +
                             std::to_string(hypotheses.size()));
    }
  }
  BleuScore stats;
  for (size_t i = 0; i < hypotheses.size(); ++i) {
    SegmentNgrams max_ref;  // per n-gram, the highest count in any reference
    std::vector<int64_t> ref_lens;
    for (const std::vector<std::string>& stream : references) {
      const SegmentNgrams ref = CountNgrams(Tokenize13a(RStrip(stream[i])));
      ref_lens.push_back(ref.length);
      for (int n = 0; n < kBleuMaxOrder; ++n) {
        for (const auto& [ngram, count] : ref.counts[n]) {
          int64_t& best = max_ref.counts[n][ngram];
          best = std::max(best, count);
        }
      }
    }
    const SegmentNgrams hyp = CountNgrams(Tokenize13a(RStrip(hypotheses[i])));
    stats.sys_len += hyp.length;
    stats.ref_len += ClosestReferenceLength(hyp.length, ref_lens);
    for (int n = 0; n < kBleuMaxOrder; ++n) {
      for (const auto& [ngram, count] : hyp.counts[n]) {
        stats.total[n] += count;
        const auto found = max_ref.counts[n].find(ngram);
        if (found != max_ref.counts[n].end()) stats.correct[n] += std::min(count, found->second);
      }
    }
  }
  return ComputeBleu(stats);
}

StatusOr<BleuScore> CorpusBleu(const std::vector<std::string>& hypotheses,
                               const std::vector<std::string>& references) {
  return CorpusBleu(hypotheses, std::vector<std::vector<std::string>>{references});
}

std::string BleuScore::ToString() const {
  const double ratio = ref_len != 0 ? static_cast<double>(sys_len) / ref_len : 0.0;
  char buffer[256];
  std::snprintf(buffer, sizeof(buffer),
                "BLEU = %.2f %.1f/%.1f/%.1f/%.1f (BP = %.3f ratio = %.3f hyp_len = %lld "
                "ref_len = %lld)",
                score, precisions[0], precisions[1], precisions[2], precisions[3], bp, ratio,
                static_cast<long long>(sys_len), static_cast<long long>(ref_len));
  return buffer;
}

}  // namespace deepnet
