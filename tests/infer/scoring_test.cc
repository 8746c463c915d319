// Teacher-forced scoring: each pair's NLL equals the model's own loss (Model::Forward with label
// smoothing 0) for that pair alone, does not depend on how pairs are batched, and the length
// batches respect their limits.
#include "infer/scoring.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/infer/infer_test_util.h"

namespace deepnet {
namespace {

std::vector<TokenizedPair> RandomPairs(int vocab) {
  const auto sources = testing::RandomSources({4, 7, 2, 5, 3}, vocab, 21);
  const auto targets = testing::RandomSources({3, 6, 5, 2, 8}, vocab, 22);
  std::vector<TokenizedPair> pairs;
  for (size_t i = 0; i < sources.size(); ++i) pairs.push_back({sources[i], targets[i]});
  return pairs;
}

// The model's unsmoothed loss sum of one pair, through Model::Forward.
double ForwardLossSum(Model& model, const TokenizedPair& pair) {
  const auto [source, source_mask] = testing::PadSources({pair.source});
  const int64_t T = static_cast<int64_t>(pair.target.size());
  MicroBatch mb;
  mb.source = source;
  mb.source_mask = source_mask;
  mb.target_input = Tensor::Zeros({1, T}, DType::kI32, MemoryCategory::kOther);
  mb.target_mask = Tensor::Zeros({1, T}, DType::kU8, MemoryCategory::kOther);
  mb.target = Tensor::Zeros({1, T}, DType::kI32, MemoryCategory::kOther);
  for (int64_t t = 0; t < T; ++t) {
    mb.target_input.data<int32_t>()[t] = t == 0 ? SpecialIds().bos : pair.target[t - 1];
    mb.target.data<int32_t>()[t] = pair.target[t];
  }
  StepContext ctx;
  ctx.training = false;
  ctx.label_smoothing = 0.0;
  return model.Forward(ctx, mb).loss_sum;
}

TEST(ScorePairsTest, MatchesTheModelLossAndIgnoresBatching) {
  const config::ModelConfig config = testing::TinyTranslationConfig(config::ModelConfig::DEEPNORM);
  std::unique_ptr<Model> model = testing::BuildTinyModel(config, DType::kF64);
  const std::vector<TokenizedPair> pairs = RandomPairs(config.vocab_size());
  const auto together = ScorePairs(*model, pairs, SpecialIds(), /*max_tokens=*/1000);
  const auto apart = ScorePairs(*model, pairs, SpecialIds(), /*max_tokens=*/1);
  ASSERT_TRUE(together.ok()) << together.status();
  ASSERT_TRUE(apart.ok()) << apart.status();
  for (size_t i = 0; i < pairs.size(); ++i) {
    EXPECT_EQ((*together)[i].tokens, static_cast<int64_t>(pairs[i].target.size()));
    EXPECT_NEAR((*together)[i].nll_sum, ForwardLossSum(*model, pairs[i]), 1e-10) << i;
    EXPECT_NEAR((*together)[i].nll_sum, (*apart)[i].nll_sum, 1e-10) << i;
    EXPECT_GT((*together)[i].mean_nll(), 0.0);
  }
  const PairScore total = SumScores(*together);
  EXPECT_EQ(total.tokens, 3 + 6 + 5 + 2 + 8);
}

TEST(ScorePairsTest, RejectsEmptyAndOverlongPairs) {
  const config::ModelConfig config = testing::TinyTranslationConfig(config::ModelConfig::DEEPNORM);
  std::unique_ptr<Model> model = testing::BuildTinyModel(config, DType::kF32);
  EXPECT_EQ(ScorePairs(*model, {{{5, 3}, {}}}, SpecialIds(), 100).status().code(),
            StatusCode::kInvalidArgument);
  const std::vector<int32_t> longer(config.max_positions() + 1, 5);
  EXPECT_EQ(ScorePairs(*model, {{longer, {5, 3}}}, SpecialIds(), 100).status().code(),
            StatusCode::kOutOfRange);
}

TEST(LengthBatchesTest, SortsByLengthAndRespectsLimits) {
  const std::vector<int64_t> lengths = {5, 1, 9, 3, 3, 7, 2};
  const auto batches = LengthBatches(lengths, /*max_tokens=*/12, /*max_rows=*/2);
  std::vector<int64_t> seen;
  int64_t previous_longest = 0;
  for (const auto& batch : batches) {
    ASSERT_FALSE(batch.empty());
    EXPECT_LE(batch.size(), 2u);
    int64_t longest = 0;
    for (const int64_t id : batch) longest = std::max(longest, lengths[id]);
    EXPECT_TRUE(batch.size() == 1 || static_cast<int64_t>(batch.size()) * longest <= 12);
    EXPECT_GE(longest, previous_longest);
    previous_longest = longest;
    seen.insert(seen.end(), batch.begin(), batch.end());
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6}));
}

}  // namespace
}  // namespace deepnet
