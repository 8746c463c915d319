// Beam search and greedy decoding on deterministic toy scorers (bigram tables) and on a tiny
// random-weight model: beam 1 equals greedy, hypotheses come best first with fairseq's length
// normalisation, the length limit and </s> rules hold, beam search finds what greedy misses, and
// no_repeat_ngram blocks exactly the tokens that would repeat an n-gram. Letters: R rows, V vocab.
#include "infer/beam_search.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>

#include "infer/model_decoder.h"
#include "tests/infer/infer_test_util.h"

namespace deepnet {
namespace {

constexpr int32_t kA = 4, kB = 5, kC = 6;
const SpecialIds kSpecial;

// p(next | sentence, last token) from a table per sentence; rows follow SelectRows.
class BigramScorer final : public TokenScorer {
 public:
  using Table = std::vector<std::vector<double>>;  // [last][next] probabilities
  explicit BigramScorer(std::vector<Table> tables) : tables_(std::move(tables)) {
    for (size_t s = 0; s < tables_.size(); ++s) sentence_.push_back(static_cast<int64_t>(s));
  }
  int32_t vocab_size() const override { return static_cast<int32_t>(tables_[0][0].size()); }
  int64_t num_rows() const override { return static_cast<int64_t>(sentence_.size()); }
  std::vector<double> Advance(std::span<const int32_t> tokens) override {
    EXPECT_EQ(static_cast<int64_t>(tokens.size()), num_rows());
    ++advances_;
    std::vector<double> out;
    for (size_t r = 0; r < tokens.size(); ++r) {
      for (const double p : tables_[sentence_[r]][tokens[r]]) out.push_back(std::log(p));
    }
    return out;
  }
  void SelectRows(std::span<const int64_t> rows) override {
    std::vector<int64_t> next;
    for (const int64_t r : rows) next.push_back(sentence_[r]);
    sentence_ = next;
  }
  int advances() const { return advances_; }

 private:
  std::vector<Table> tables_;
  std::vector<int64_t> sentence_;
  int advances_ = 0;
};

// V = 7 (pad, unk, <s>, </s>, a, b, c); every row of the table a distribution over them.
BigramScorer::Table UniformTable() {
  return BigramScorer::Table(7, std::vector<double>(7, 1.0 / 7));
}

BigramScorer::Table RandomTable(std::mt19937& rng) {
  std::uniform_real_distribution<double> u(0.05, 1.0);
  BigramScorer::Table table(7, std::vector<double>(7));
  for (auto& row : table) {
    double sum = 0.0;
    for (double& p : row) sum += (p = u(rng));
    for (double& p : row) p /= sum;
  }
  return table;
}

DecodeOptions Options(int beam, double a = 0.0, int b = 5) {
  DecodeOptions options;
  options.beam = beam;
  options.max_len_a = a;
  options.max_len_b = b;
  return options;
}

TEST(BeamSearchTest, FindsTheBetterHypothesisGreedyMisses) {
  // <s> -> a 0.55 | b 0.45; a -> </s> 0.3, a 0.35, b 0.35; b -> </s> 0.9.
  BigramScorer::Table t = UniformTable();
  t[kSpecial.bos] = {0, 0, 0, 0, 0.55, 0.45, 0};
  t[kA] = {0, 0, 0, 0.3, 0.35, 0.35, 0};
  t[kB] = {0, 0, 0, 0.9, 0.05, 0.05, 0};
  for (auto& row : t) {
    for (double& p : row) p = p == 0 ? 1e-12 : p;
  }
  BigramScorer greedy_scorer({t});
  const auto greedy = GreedyDecode(greedy_scorer, {1}, kSpecial, Options(1));
  ASSERT_TRUE(greedy.ok()) << greedy.status();
  EXPECT_EQ((*greedy)[0].tokens.front(), kA);

  BigramScorer beam_scorer({t});
  const auto beam = BeamSearch(beam_scorer, {1}, kSpecial, Options(2));
  ASSERT_TRUE(beam.ok()) << beam.status();
  const Hypothesis& best = (*beam)[0].front();
  EXPECT_EQ(best.tokens, std::vector<int32_t>{kB});
  EXPECT_NEAR(best.log_prob, std::log(0.45 * 0.9), 1e-9);
  EXPECT_NEAR(best.score, std::log(0.45 * 0.9) / 2, 1e-9);  // length 2: b and </s>
  EXPECT_GT(best.score, (*greedy)[0].score);
}

TEST(BeamSearchTest, HypothesesAreSortedAndNormalisedByLength) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 5; ++trial) {
    BigramScorer scorer({RandomTable(rng), RandomTable(rng)});
    DecodeOptions options = Options(3, 0.0, 6);
    options.len_penalty = 0.7;
    const auto result = BeamSearch(scorer, {4, 2}, kSpecial, options);
    ASSERT_TRUE(result.ok()) << result.status();
    for (const std::vector<Hypothesis>& hypotheses : *result) {
      ASSERT_EQ(hypotheses.size(), 3u);
      for (size_t i = 0; i < hypotheses.size(); ++i) {
        const Hypothesis& h = hypotheses[i];
        const double length = static_cast<double>(h.tokens.size() + 1);
        EXPECT_NEAR(h.score, h.log_prob / std::pow(length, 0.7), 1e-12);
        if (i > 0) {
          EXPECT_GE(hypotheses[i - 1].score, h.score);
        }
        for (const int32_t token : h.tokens) {
          EXPECT_TRUE(token != kSpecial.pad && token != kSpecial.bos && token != kSpecial.eos)
              << "never generated inside a hypothesis: " << token;
        }
      }
    }
  }
}

TEST(BeamSearchTest, LengthLimitForcesEndOfSentence) {
  // </s> is nearly impossible: every hypothesis runs to its limit a·source_length + b.
  BigramScorer::Table t = UniformTable();
  for (auto& row : t) row[kSpecial.eos] = 1e-9;
  BigramScorer scorer({t, t});
  const auto result = BeamSearch(scorer, {2, 5}, kSpecial, Options(2, 1.5, 1));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ((*result)[0].front().tokens.size(), 4u);  // ⌊1.5·2 + 1⌋
  EXPECT_EQ((*result)[1].front().tokens.size(), 8u);  // ⌊1.5·5 + 1⌋
  EXPECT_EQ(scorer.advances(), 9);                    // steps 0..8

  BigramScorer greedy_scorer({t});
  const auto greedy = GreedyDecode(greedy_scorer, {3}, kSpecial, Options(1, 0.0, 3));
  ASSERT_TRUE(greedy.ok());
  EXPECT_EQ((*greedy)[0].tokens.size(), 3u);
}

TEST(BeamSearchTest, MaxPositionsCapsTheLength) {
  BigramScorer::Table t = UniformTable();
  for (auto& row : t) row[kSpecial.eos] = 1e-9;
  BigramScorer scorer({t});
  DecodeOptions options = Options(2, 0.0, 100);
  options.max_positions = 6;  // positions 0..5: at most 5 tokens, then </s> from position 5
  const auto result = BeamSearch(scorer, {3}, kSpecial, options);
  ASSERT_TRUE(result.ok());
  EXPECT_EQ((*result)[0].front().tokens.size(), 5u);
  EXPECT_EQ(MaxTargetLength(options, 3), 5);
}

TEST(BeamSearchTest, EndOfSentenceIsNeverFirstAndEndsHypotheses) {
  // <s> -> </s> 0.97 (banned at step 0), so c; then c -> </s> 0.9.
  BigramScorer::Table t = UniformTable();
  t[kSpecial.bos] = {0.001, 0.001, 0.001, 0.97, 0.001, 0.001, 0.025};
  t[kC] = {0.01, 0.01, 0.01, 0.9, 0.03, 0.03, 0.01};
  for (const int beam : {1, 2, 4}) {
    BigramScorer scorer({t});
    const auto result = BeamSearch(scorer, {3}, kSpecial, Options(beam, 0.0, 10));
    ASSERT_TRUE(result.ok());
    const Hypothesis& best = (*result)[0].front();
    EXPECT_EQ(best.tokens, std::vector<int32_t>{kC}) << "beam " << beam;
    EXPECT_NEAR(best.log_prob, std::log(0.025) + std::log(0.9), 1e-9);
    for (const Hypothesis& h : (*result)[0]) EXPECT_FALSE(h.tokens.empty());
  }
}

TEST(BeamSearchTest, BeamOneEqualsGreedyOnRandomTables) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 10; ++trial) {
    std::vector<BigramScorer::Table> tables = {RandomTable(rng), RandomTable(rng),
                                               RandomTable(rng)};
    BigramScorer a(tables), b(tables);
    const auto greedy = GreedyDecode(a, {3, 6, 1}, kSpecial, Options(1, 1.0, 2));
    const auto beam = BeamSearch(b, {3, 6, 1}, kSpecial, Options(1, 1.0, 2));
    ASSERT_TRUE(greedy.ok() && beam.ok());
    for (size_t s = 0; s < 3; ++s) {
      ASSERT_EQ((*beam)[s].size(), 1u);
      EXPECT_EQ((*greedy)[s].tokens, (*beam)[s][0].tokens) << "trial " << trial;
      EXPECT_NEAR((*greedy)[s].score, (*beam)[s][0].score, 1e-12);
    }
  }
}

TEST(BeamSearchTest, RejectsMismatchedInputs) {
  BigramScorer scorer({UniformTable()});
  EXPECT_EQ(BeamSearch(scorer, {3, 4}, kSpecial, Options(2)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(BeamSearch(scorer, {3}, kSpecial, Options(0)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(BeamSearch(scorer, {}, kSpecial, Options(2)).status().code() ==
              StatusCode::kInvalidArgument);
  DecodeOptions negative_ngram = Options(2);
  negative_ngram.no_repeat_ngram = -1;
  EXPECT_EQ(BeamSearch(scorer, {3}, kSpecial, negative_ngram).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(GreedyDecode(scorer, {3}, kSpecial, negative_ngram).status().code(),
            StatusCode::kInvalidArgument);
}

// --- no_repeat_ngram ---

DecodeOptions NoRepeat(int beam, int n, double a = 0.0, int b = 8) {
  DecodeOptions options = Options(beam, a, b);
  options.no_repeat_ngram = n;
  return options;
}

// The end position (index of its last token) of the first n-gram of `tokens` that repeats an
// earlier one; tokens.size() when none does.
size_t FirstRepeatEnd(const std::vector<int32_t>& tokens, int n) {
  std::set<std::vector<int32_t>> seen;
  for (size_t i = 0; i + n <= tokens.size(); ++i) {
    if (!seen.insert({tokens.begin() + i, tokens.begin() + i + n}).second) return i + n - 1;
  }
  return tokens.size();
}

bool HasRepeatedNgram(const std::vector<int32_t>& tokens, int n) {
  return FirstRepeatEnd(tokens, n) < tokens.size();
}

// Σ log p of <s> tokens </s> under a bigram table: blocking bans tokens but never renormalises.
double TableLogProb(const BigramScorer::Table& t, const std::vector<int32_t>& tokens) {
  double log_prob = 0.0;
  int32_t last = kSpecial.bos;
  for (const int32_t token : tokens) {
    log_prob += std::log(t[last][token]);
    last = token;
  }
  return log_prob + std::log(t[last][kSpecial.eos]);
}

// A random table whose </s> is unlikely, so that hypotheses run long enough to loop.
BigramScorer::Table LoopingTable(std::mt19937& rng) {
  BigramScorer::Table t = RandomTable(rng);
  for (auto& row : t) row[kSpecial.eos] *= 0.1;
  return t;
}

void ExpectSameHypotheses(const std::vector<Hypothesis>& a, const std::vector<Hypothesis>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].tokens, b[i].tokens);
    EXPECT_EQ(a[i].score, b[i].score);  // bit-identical
    EXPECT_EQ(a[i].log_prob, b[i].log_prob);
  }
}

TEST(NoRepeatNgramTest, BreaksTheLoopOfAToyScorer) {
  // a -> b 0.8, b -> a 0.8 (both -> c 0.13, </s> 0.05), c -> </s> 0.9: unblocked, a b a b ... runs
  // to the limit; blocking n-grams ends the alternation after n+1 tokens, at the first repeat,
  // with the next best token c.
  constexpr double e = 1e-12;
  BigramScorer::Table t = UniformTable();
  t[kSpecial.bos] = {e, e, e, 0.05, 0.9, 0.03, 0.02};
  t[kA] = {e, e, e, 0.05, 0.02, 0.8, 0.13};
  t[kB] = {e, e, e, 0.05, 0.8, 0.02, 0.13};
  t[kC] = {e, e, e, 0.9, 0.04, 0.04, 0.02};
  for (const int n : {0, 1, 2, 3, 4}) {
    std::vector<int32_t> expected;
    const size_t alternating = n == 0 ? 8 : n + 1;
    for (size_t i = 0; i < alternating; ++i) expected.push_back(i % 2 == 0 ? kA : kB);
    if (n > 0) expected.push_back(kC);

    BigramScorer greedy_scorer({t});
    const auto greedy = GreedyDecode(greedy_scorer, {1}, kSpecial, NoRepeat(1, n));
    ASSERT_TRUE(greedy.ok()) << greedy.status();
    EXPECT_EQ((*greedy)[0].tokens, expected) << "n " << n;
    EXPECT_NEAR((*greedy)[0].log_prob, TableLogProb(t, expected), 1e-9);

    BigramScorer beam_scorer({t});
    const auto beam1 = BeamSearch(beam_scorer, {1}, kSpecial, NoRepeat(1, n));
    ASSERT_TRUE(beam1.ok()) << beam1.status();
    ASSERT_EQ((*beam1)[0].size(), 1u);
    EXPECT_EQ((*beam1)[0][0].tokens, expected) << "n " << n;
  }
}

TEST(NoRepeatNgramTest, EndOfSentenceIsNeverBlocked) {
  // n = 1 bans every piece already produced; once unk, a, b and c are used only </s> is left,
  // and it stays allowed however unlikely (it would otherwise be ~25 tokens away).
  BigramScorer::Table t = UniformTable();
  for (auto& row : t) row[kSpecial.eos] = 1e-9;
  for (const int beam : {1, 2, 4}) {
    BigramScorer scorer({t});
    const auto result = BeamSearch(scorer, {20}, kSpecial, NoRepeat(beam, 1, 1.0, 5));
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_EQ((*result)[0].size(), static_cast<size_t>(beam));
    for (const Hypothesis& h : (*result)[0]) {
      EXPECT_FALSE(HasRepeatedNgram(h.tokens, 1));
      EXPECT_TRUE(std::isfinite(h.log_prob)) << "beam " << beam;
    }
    EXPECT_EQ((*result)[0].front().tokens.size(), 4u) << "beam " << beam;
  }
  BigramScorer scorer({t});
  const auto greedy = GreedyDecode(scorer, {20}, kSpecial, NoRepeat(1, 1, 1.0, 5));
  ASSERT_TRUE(greedy.ok());
  EXPECT_EQ((*greedy)[0].tokens.size(), 4u);
  EXPECT_TRUE(std::isfinite((*greedy)[0].log_prob));
}

TEST(NoRepeatNgramTest, NoOutputRepeatsAnNgramOnRandomTables) {
  std::mt19937 rng(11);
  const std::vector<int64_t> lengths = {3, 6, 1};
  for (int trial = 0; trial < 8; ++trial) {
    const std::vector<BigramScorer::Table> tables = {LoopingTable(rng), LoopingTable(rng),
                                                     LoopingTable(rng)};
    for (const int n : {1, 2, 3}) {
      for (const int beam : {1, 2, 4}) {
        BigramScorer scorer(tables);
        const auto result = BeamSearch(scorer, lengths, kSpecial, NoRepeat(beam, n, 1.5, 4));
        ASSERT_TRUE(result.ok()) << result.status();
        for (size_t s = 0; s < lengths.size(); ++s) {
          ASSERT_EQ((*result)[s].size(), static_cast<size_t>(beam));
          for (const Hypothesis& h : (*result)[s]) {
            EXPECT_FALSE(HasRepeatedNgram(h.tokens, n)) << "n " << n << ", beam " << beam;
            EXPECT_NEAR(h.log_prob, TableLogProb(tables[s], h.tokens), 1e-9);
          }
          // A sentence decodes the same alone as in the batch.
          BigramScorer alone({tables[s]});
          const auto single = BeamSearch(alone, {lengths[s]}, kSpecial, NoRepeat(beam, n, 1.5, 4));
          ASSERT_TRUE(single.ok());
          ExpectSameHypotheses((*single)[0], (*result)[s]);
        }
        if (beam == 1) {
          BigramScorer greedy_scorer(tables);
          const auto greedy =
              GreedyDecode(greedy_scorer, lengths, kSpecial, NoRepeat(1, n, 1.5, 4));
          ASSERT_TRUE(greedy.ok());
          for (size_t s = 0; s < lengths.size(); ++s) {
            EXPECT_EQ((*greedy)[s].tokens, (*result)[s][0].tokens);
            EXPECT_EQ((*greedy)[s].score, (*result)[s][0].score);
          }
        }
      }
    }
  }
}

TEST(NoRepeatNgramTest, GreedyChangesOnlyWhereARepeatIsBlocked) {
  // Blocked and unblocked greedy paths agree up to the first token that repeats an n-gram and
  // differ there; a path without repeats is unchanged, bit for bit.
  std::mt19937 rng(3);
  int blocked = 0, unchanged = 0;
  for (int trial = 0; trial < 20; ++trial) {
    const std::vector<BigramScorer::Table> tables = {LoopingTable(rng), LoopingTable(rng)};
    const std::vector<int64_t> lengths = {2, 5};
    BigramScorer plain_scorer(tables);
    const auto plain = GreedyDecode(plain_scorer, lengths, kSpecial, NoRepeat(1, 0, 1.0, 3));
    ASSERT_TRUE(plain.ok());
    for (const int n : {2, 3}) {
      BigramScorer scorer(tables);
      const auto result = GreedyDecode(scorer, lengths, kSpecial, NoRepeat(1, n, 1.0, 3));
      ASSERT_TRUE(result.ok());
      for (size_t s = 0; s < lengths.size(); ++s) {
        const std::vector<int32_t>& before = (*plain)[s].tokens;
        const std::vector<int32_t>& after = (*result)[s].tokens;
        const size_t repeat = FirstRepeatEnd(before, n);
        if (repeat == before.size()) {
          ++unchanged;
          EXPECT_EQ(after, before);
          EXPECT_EQ((*result)[s].score, (*plain)[s].score);
          continue;
        }
        ++blocked;
        ASSERT_GE(after.size(), repeat);
        EXPECT_TRUE(std::equal(before.begin(), before.begin() + repeat, after.begin()));
        if (after.size() > repeat) {
          EXPECT_NE(after[repeat], before[repeat]);
        }
      }
    }
  }
  EXPECT_GT(blocked, 0);  // the tables do loop
  EXPECT_GT(unchanged, 0);
}

TEST(NoRepeatNgramTest, ASizeLongerThanAnyHypothesisChangesNothing) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 5; ++trial) {
    const std::vector<BigramScorer::Table> tables = {LoopingTable(rng), LoopingTable(rng)};
    for (const int beam : {1, 3}) {
      BigramScorer off_scorer(tables), long_scorer(tables);
      const auto off = BeamSearch(off_scorer, {4, 2}, kSpecial, NoRepeat(beam, 0, 1.0, 4));
      const auto never = BeamSearch(long_scorer, {4, 2}, kSpecial, NoRepeat(beam, 50, 1.0, 4));
      ASSERT_TRUE(off.ok() && never.ok());
      for (size_t s = 0; s < 2; ++s) ExpectSameHypotheses((*off)[s], (*never)[s]);
    }
  }
}

// A tiny random-weight DeepNorm translation model with three sources of 4, 6 and 2 tokens, encoded.
class BeamSearchModelTest : public ::testing::Test {
 protected:
  BeamSearchModelTest() {
    const auto [tokens, mask] = testing::PadSources(sources);
    encoded = *EncodeSource(*model, tokens, mask);
  }

  const config::ModelConfig config = testing::TinyTranslationConfig(config::ModelConfig::DEEPNORM);
  std::unique_ptr<Model> model = testing::BuildTinyModel(config, DType::kF64);
  const std::vector<std::vector<int32_t>> sources =
      testing::RandomSources({4, 6, 2}, config.vocab_size(), 9);
  EncodedSource encoded;
  const std::vector<int64_t> lengths = {4, 6, 2};
};

// On a real (tiny, random-weight) model: beam 1 equals greedy, and every hypothesis's log_prob is
// what the model assigns to its tokens and </s> when they are fed back.
TEST_F(BeamSearchModelTest, HypothesesScoreWhatTheModelSays) {
  DecodeOptions options = Options(1, 1.0, 3);
  options.max_positions = config.max_positions();

  auto greedy_decoder = *ModelDecoder::Create(*model, encoded);
  const auto greedy = GreedyDecode(*greedy_decoder, lengths, kSpecial, options);
  auto beam1_decoder = *ModelDecoder::Create(*model, encoded);
  const auto beam1 = BeamSearch(*beam1_decoder, lengths, kSpecial, options);
  ASSERT_TRUE(greedy.ok() && beam1.ok());
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ((*greedy)[s].tokens, (*beam1)[s][0].tokens);
    EXPECT_NEAR((*greedy)[s].score, (*beam1)[s][0].score, 1e-12);
  }

  options.beam = 3;
  auto beam_decoder = *ModelDecoder::Create(*model, encoded);
  const auto beam = BeamSearch(*beam_decoder, lengths, kSpecial, options);
  ASSERT_TRUE(beam.ok());
  for (size_t s = 0; s < 3; ++s) {
    ASSERT_EQ((*beam)[s].size(), 3u);
    EXPECT_GE((*beam)[s][0].score, (*greedy)[s].score - 1e-12);
    for (const Hypothesis& h : (*beam)[s]) {
      EXPECT_LE(static_cast<int>(h.tokens.size()), MaxTargetLength(options, lengths[s]));
      // Feed <s> + tokens back through a fresh one-sentence decoder.
      const auto [one, one_mask] = testing::PadSources({sources[s]});
      auto rescore = *ModelDecoder::Create(*model, *EncodeSource(*model, one, one_mask));
      std::vector<int32_t> fed = {kSpecial.bos};
      fed.insert(fed.end(), h.tokens.begin(), h.tokens.end());
      double log_prob = 0.0;
      for (size_t t = 0; t < fed.size(); ++t) {
        const std::vector<double> lp = rescore->Advance(std::span<const int32_t>(&fed[t], 1));
        log_prob += lp[t + 1 < fed.size() ? fed[t + 1] : kSpecial.eos];
      }
      EXPECT_NEAR(h.log_prob, log_prob, 1e-9);
    }
  }
}

// On the same model with bigram blocking: beam 1 still equals greedy, and no output repeats a
// bigram, though the unblocked outputs do.
TEST_F(BeamSearchModelTest, NoRepeatNgramHoldsOnAModel) {
  DecodeOptions options = NoRepeat(1, 0, 2.0, 6);
  options.max_positions = config.max_positions();

  auto plain_decoder = *ModelDecoder::Create(*model, encoded);
  const auto plain = GreedyDecode(*plain_decoder, lengths, kSpecial, options);
  ASSERT_TRUE(plain.ok());
  int repeats = 0;
  for (const Hypothesis& h : *plain) repeats += HasRepeatedNgram(h.tokens, 2) ? 1 : 0;
  EXPECT_GT(repeats, 0) << "the random model should loop without blocking";

  options.no_repeat_ngram = 2;
  auto greedy_decoder = *ModelDecoder::Create(*model, encoded);
  const auto greedy = GreedyDecode(*greedy_decoder, lengths, kSpecial, options);
  auto beam1_decoder = *ModelDecoder::Create(*model, encoded);
  const auto beam1 = BeamSearch(*beam1_decoder, lengths, kSpecial, options);
  options.beam = 3;
  auto beam_decoder = *ModelDecoder::Create(*model, encoded);
  const auto beam = BeamSearch(*beam_decoder, lengths, kSpecial, options);
  ASSERT_TRUE(greedy.ok() && beam1.ok() && beam.ok());
  for (size_t s = 0; s < 3; ++s) {
    EXPECT_EQ((*greedy)[s].tokens, (*beam1)[s][0].tokens);
    EXPECT_NEAR((*greedy)[s].score, (*beam1)[s][0].score, 1e-12);
    EXPECT_FALSE(HasRepeatedNgram((*greedy)[s].tokens, 2));
    for (const Hypothesis& h : (*beam)[s]) EXPECT_FALSE(HasRepeatedNgram(h.tokens, 2));
  }
}

}  // namespace
}  // namespace deepnet
