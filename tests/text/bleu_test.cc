// Corpus BLEU against sacreBLEU 2.6 (BLEU() defaults: 13a, exp smoothing). The expected strings
// and scores were printed by sacreBLEU's own code (tokenizers/tokenizer_13a.py, metrics/bleu.py);
// the small cases are also worked by hand in the comments.
#include "text/bleu.h"

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "text/file_io.h"

namespace deepnet {
namespace {

BleuScore Score(const std::vector<std::string>& hyps,
                const std::vector<std::vector<std::string>>& refs) {
  StatusOr<BleuScore> score = CorpusBleu(hyps, refs);
  EXPECT_TRUE(score.ok()) << score.status();
  return score.ok() ? *score : BleuScore{};
}

TEST(Tokenize13aTest, MatchesSacreBleu) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Hello, world!", "Hello , world !"},
      {"It costs $3.14 (or 1,000 yen).", "It costs $ 3.14 ( or 1,000 yen ) ."},
      {"pages 12-15 and a-b", "pages 12 - 15 and a-b"},
      {"He said &quot;no&quot; &amp; left &lt;now&gt;", "He said \" no \" & left < now >"},
      {"a <skipped> b", "a b"},
      {"end-\nof line\nnext", "endof line next"},
      {"Él dijo: «¿Qué?» — y se fue.", "Él dijo : «¿Qué ? » — y se fue ."},
      {"x.y,z 1.5 a.1 1.a ,.", "x . y , z 1.5 a . 1 1 . a , ."},
      {"tab\there\u00a0nbsp\u3000ideo", "tab here nbsp ideo"},
      {"it's 'quoted' [x] {y} ~z^ `w` |p| @q #r %s",
       "it's 'quoted' [ x ] { y } ~ z ^ ` w ` | p | @ q # r % s"},
      {"...", ". . ."},
      {"U.S.A. 2.5.6 e.g.,", "U . S . A . 2.5.6 e . g . ,"},
  };
  for (const auto& [input, expected] : cases) {
    EXPECT_EQ(Tokenize13a(input), expected) << "input: " << input;
  }
}

TEST(CorpusBleuTest, PerfectMatchIs100) {
  const BleuScore s = Score({"the cat sat on the mat"}, {{"the cat sat on the mat"}});
  EXPECT_NEAR(s.score, 100.0, 1e-9);
  EXPECT_EQ(s.ToString(),
            "BLEU = 100.00 100.0/100.0/100.0/100.0 (BP = 1.000 ratio = 1.000 hyp_len = 6 "
            "ref_len = 6)");
}

// By hand: hyp "the cat sat on the mat", ref "the cat is on the mat".
//   1-grams 5/6 (all but "sat"), 2-grams 3/5 (the cat, on the, the mat), 3-grams 1/4 (on the
//   mat), 4-grams 0/3 -> exp smoothing 100 / (2 * 3) = 16.67.
//   BLEU = (83.33 * 60 * 25 * 16.67)^(1/4) = 2083333^(1/4) = 37.99, BP = 1.
TEST(CorpusBleuTest, HandWorkedExampleWithExpSmoothing) {
  const BleuScore s = Score({"the cat sat on the mat"}, {{"the cat is on the mat"}});
  EXPECT_NEAR(s.score, 37.99178428257963, 1e-9);
  EXPECT_EQ(s.correct, (std::array<int64_t, 4>{5, 3, 1, 0}));
  EXPECT_EQ(s.total, (std::array<int64_t, 4>{6, 5, 4, 3}));
  EXPECT_NEAR(s.precisions[3], 100.0 / 6.0, 1e-12);
  EXPECT_EQ(s.ToString(),
            "BLEU = 37.99 83.3/60.0/25.0/16.7 (BP = 1.000 ratio = 1.000 hyp_len = 6 ref_len = 6)");
}

// By hand: "the cat" has no 3-grams, so the 3- and 4-gram precisions are 0 and BLEU is 0;
// BP = exp(1 - 6/2) = exp(-2) = 0.135.
TEST(CorpusBleuTest, ShortHypothesisHasZeroScoreAndBrevityPenalty) {
  const BleuScore s = Score({"the cat"}, {{"the cat sat on the mat"}});
  EXPECT_EQ(s.score, 0.0);
  EXPECT_NEAR(s.bp, 0.1353352832366127, 1e-15);
  EXPECT_EQ(s.ToString(),
            "BLEU = 0.00 100.0/100.0/0.0/0.0 (BP = 0.135 ratio = 0.333 hyp_len = 2 ref_len = 6)");
}

// By hand: all 4 hypothesis tokens match, lengths 4 vs 6: BP = exp(1 - 6/4) = 0.6065.
TEST(CorpusBleuTest, EmptyHypothesisLineCountsTowardsBrevity) {
  const BleuScore s = Score({"", "a b c d"}, {{"x y", "a b c d"}});
  EXPECT_NEAR(s.score, 60.653065971263366, 1e-9);
  EXPECT_EQ(s.sys_len, 4);
  EXPECT_EQ(s.ref_len, 6);
}

TEST(CorpusBleuTest, NoMatchIsZero) {
  const BleuScore s = Score({"no match here at all"}, {{"completely different words"}});
  EXPECT_EQ(s.score, 0.0);
  EXPECT_EQ(s.ToString(),
            "BLEU = 0.00 0.0/0.0/0.0/0.0 (BP = 1.000 ratio = 1.667 hyp_len = 5 ref_len = 3)");
}

TEST(CorpusBleuTest, MultipleReferencesClipByTheBestCount) {
  const BleuScore s = Score(
      {"the cat sat on the mat", "a dog ran"},
      {{"the cat is on the mat", "the dog ran"}, {"there is a cat on the mat", "a dog ran away"}});
  EXPECT_NEAR(s.score, 45.358328887808035, 1e-9);
  EXPECT_EQ(s.ToString(),
            "BLEU = 45.36 88.9/71.4/40.0/16.7 (BP = 1.000 ratio = 1.000 hyp_len = 9 ref_len = 9)");
}

TEST(CorpusBleuTest, MismatchedLineCountsAreAnError) {
  const StatusOr<BleuScore> s = CorpusBleu({"a", "b"}, std::vector<std::string>{"a"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
}

class ValidCorpusBleuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StatusOr<std::string> tsv = ReadTextFile(std::string(DEEPNET_SOURCE_DIR) + "/data/valid.tsv");
    ASSERT_TRUE(tsv.ok()) << tsv.status();
    std::istringstream lines(*tsv);
    for (std::string line; std::getline(lines, line);) {
      const size_t tab1 = line.find('\t'), tab2 = line.find('\t', tab1 + 1);
      english_.push_back(line.substr(tab1 + 1, tab2 - tab1 - 1));
      spanish_.push_back(line.substr(tab2 + 1));
    }
    ASSERT_EQ(spanish_.size(), 321u);
  }
  std::vector<std::string> english_, spanish_;
};

// Real text (accents, «», numbers, punctuation): English lines scored against Spanish ones.
TEST_F(ValidCorpusBleuTest, EnglishAgainstSpanishMatchesSacreBleu) {
  const BleuScore s = Score(english_, {spanish_});
  EXPECT_NEAR(s.score, 0.1681182100612743, 1e-12);
  EXPECT_EQ(s.correct, (std::array<int64_t, 4>{1156, 67, 2, 0}));
  EXPECT_EQ(s.total, (std::array<int64_t, 4>{10411, 10090, 9769, 9448}));
  EXPECT_EQ(s.ToString(),
            "BLEU = 0.17 11.1/0.7/0.0/0.0 (BP = 1.000 ratio = 1.223 hyp_len = 10411 "
            "ref_len = 8516)");
}

// Every 4th space-separated word of each reference dropped (Python: k % 4 != 3).
TEST_F(ValidCorpusBleuTest, DamagedReferencesMatchSacreBleu) {
  std::vector<std::string> hyps;
  for (const std::string& line : spanish_) {
    std::string hyp;
    size_t start = 0;
    for (int k = 0; start <= line.size(); ++k) {
      size_t space = line.find(' ', start);
      if (space == std::string::npos) space = line.size();
      if (k % 4 != 3) hyp += (hyp.empty() && k == 0 ? "" : " ") + line.substr(start, space - start);
      start = space + 1;
    }
    hyps.push_back(hyp);
  }
  const BleuScore s = Score(hyps, {spanish_});
  EXPECT_NEAR(s.score, 34.0874587725656, 1e-9);
  EXPECT_EQ(s.ToString(),
            "BLEU = 34.09 100.0/74.0/44.9/13.8 (BP = 0.737 ratio = 0.766 hyp_len = 6522 "
            "ref_len = 8516)");
}

}  // namespace
}  // namespace deepnet
