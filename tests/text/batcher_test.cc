// Batching over a synthetic shard of 500 examples with lengths 2..40 (B, S, T as in batcher.h).
#include "text/batcher.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace deepnet {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kExamples = 500;
constexpr int32_t kVocab = 100;

class BatcherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    path_ = new std::string(
        (fs::path(::testing::TempDir()) / ("batcher_test_" + std::to_string(::getpid()) + ".bin"))
            .string());
    ShardWriter writer(kVocab, SpecialIds{});
    uint32_t state = 12345;
    const auto next = [&state](uint32_t n) {
      state = state * 1664525u + 1013904223u;
      return (state >> 8) % n;
    };
    for (int64_t e = 0; e < kExamples; ++e) {
      std::vector<int32_t> source(2 + next(39)), target(2 + next(39));
      for (int32_t& id : source) id = 4 + static_cast<int32_t>(next(kVocab - 4));
      for (int32_t& id : target) id = 4 + static_cast<int32_t>(next(kVocab - 4));
      source.back() = target.back() = SpecialIds{}.eos;
      writer.Add(source, target);
    }
    ASSERT_TRUE(writer.Write(*path_).ok());
    StatusOr<ShardReader> reader = ShardReader::Open(*path_);
    ASSERT_TRUE(reader.ok()) << reader.status();
    shard_ = new ShardReader(std::move(*reader));
  }
  static void TearDownTestSuite() {
    delete shard_;
    fs::remove(*path_);
    delete path_;
  }

  static Batcher MakeBatcher(const BatcherOptions& options) {
    StatusOr<Batcher> batcher = Batcher::Create(shard_, options);
    CHECK(batcher.ok()) << batcher.status();
    return std::move(*batcher);
  }
  // The example ids of the next `count` batches.
  static std::vector<std::vector<int64_t>> Take(Batcher* batcher, int64_t count) {
    std::vector<std::vector<int64_t>> out;
    for (int64_t i = 0; i < count; ++i) {
      StatusOr<Batch> batch = batcher->Next();
      CHECK(batch.ok()) << batch.status();
      out.push_back(batch->example_ids);
    }
    return out;
  }
  static std::vector<int32_t> Lengths(bool source) {
    std::vector<int32_t> lengths;
    for (int64_t e = 0; e < kExamples; ++e) {
      lengths.push_back(source ? shard_->source_length(e) : shard_->target_length(e));
    }
    return lengths;
  }

  static std::string* path_;
  static ShardReader* shard_;
};

std::string* BatcherTest::path_ = nullptr;
ShardReader* BatcherTest::shard_ = nullptr;

TEST_F(BatcherTest, RespectsTokenBudgetAndCoversEveryExampleOnce) {
  BatcherOptions options;
  options.max_tokens = 400;
  Batcher batcher = MakeBatcher(options);
  std::multiset<int64_t> seen;
  for (int64_t i = 0; i < batcher.batches_in_epoch(); ++i) {
    StatusOr<Batch> batch = batcher.Next();
    ASSERT_TRUE(batch.ok()) << batch.status();
    EXPECT_LE(batch->batch_size * (batch->source_len + batch->target_len), 400);
    seen.insert(batch->example_ids.begin(), batch->example_ids.end());
  }
  ASSERT_EQ(seen.size(), static_cast<size_t>(kExamples));
  for (int64_t e = 0; e < kExamples; ++e) EXPECT_EQ(seen.count(e), 1u) << e;
  EXPECT_EQ(batcher.position(), (BatchPosition{.epoch = 0, .batch = batcher.batches_in_epoch()}));
}

TEST_F(BatcherTest, BucketingKeepsPaddingLow) {
  BatcherOptions options;
  options.max_tokens = 800;
  StatusOr<std::vector<std::vector<int64_t>>> plan =
      PlanEpoch(Lengths(true), Lengths(false), options, 0);
  ASSERT_TRUE(plan.ok());
  int64_t real = 0, padded = 0;
  for (const std::vector<int64_t>& ids : *plan) {
    const Batch batch = MakeBatch(*shard_, ids);
    real += batch.num_source_tokens + batch.num_target_tokens;
    padded += batch.batch_size * (batch.source_len + batch.target_len);
  }
  // Sorted by source length, the source side is nearly unpadded; the target side is random here.
  EXPECT_GT(static_cast<double>(real) / padded, 0.6);
}

TEST_F(BatcherTest, OrderIsDeterministicBySeedAndEpoch) {
  BatcherOptions options;
  options.max_tokens = 300;
  options.sort_window = 100;
  const auto plan = [&](uint64_t seed, int64_t epoch) {
    options.seed = seed;
    StatusOr<std::vector<std::vector<int64_t>>> p =
        PlanEpoch(Lengths(true), Lengths(false), options, epoch);
    CHECK(p.ok()) << p.status();
    return *p;
  };
  EXPECT_EQ(plan(7, 0), plan(7, 0));
  EXPECT_NE(plan(7, 0), plan(8, 0));
  EXPECT_NE(plan(7, 0), plan(7, 1));
}

TEST_F(BatcherTest, WithoutShuffleBatchesComeInLengthOrder) {
  BatcherOptions options;
  options.max_tokens = 300;
  options.shuffle = false;
  Batcher batcher = MakeBatcher(options);
  const auto epoch0 = Take(&batcher, batcher.batches_in_epoch());
  const auto epoch1 = Take(&batcher, batcher.batches_in_epoch());
  EXPECT_EQ(epoch0, epoch1);
  int32_t last = 0;
  for (const auto& ids : epoch0) {
    for (const int64_t e : ids) {
      EXPECT_GE(shard_->source_length(e), last);
      last = shard_->source_length(e);
    }
  }
}

TEST_F(BatcherTest, ReplicasAreDisjointCompleteAndEqual) {
  for (const int64_t max_tokens : {350, 411, 517}) {
    for (const int replicas : {2, 3, 4, 5, 7}) {
      SCOPED_TRACE("max_tokens " + std::to_string(max_tokens) + ", " + std::to_string(replicas) +
                   " replicas");
      std::multiset<int64_t> seen;
      int64_t batches = -1;
      for (int r = 0; r < replicas; ++r) {
        BatcherOptions options;
        options.max_tokens = max_tokens;
        options.seed = 3;
        options.replica = r;
        options.num_replicas = replicas;
        Batcher batcher = MakeBatcher(options);
        if (r == 0) batches = batcher.batches_in_epoch();
        EXPECT_EQ(batcher.batches_in_epoch(), batches) << "replica " << r;
        for (const auto& ids : Take(&batcher, batcher.batches_in_epoch())) {
          const Batch batch = MakeBatch(*shard_, ids);
          EXPECT_LE(batch.batch_size * (batch.source_len + batch.target_len), max_tokens);
          seen.insert(ids.begin(), ids.end());
        }
      }
      ASSERT_EQ(seen.size(), static_cast<size_t>(kExamples));
      for (int64_t e = 0; e < kExamples; ++e) EXPECT_EQ(seen.count(e), 1u);
    }
  }
}

TEST_F(BatcherTest, ResumesExactlyFromASavedPosition) {
  BatcherOptions options;
  options.max_tokens = 500;
  options.sort_window = 128;
  options.seed = 11;
  options.replica = 1;
  options.num_replicas = 2;
  Batcher original = MakeBatcher(options);
  const int64_t per_epoch = original.batches_in_epoch();
  Take(&original, per_epoch - 2);  // stop just before the end of epoch 0
  const BatchPosition saved = original.position();
  const auto expected = Take(&original, 2 * per_epoch);  // crosses into epoch 2

  Batcher resumed = MakeBatcher(options);
  ASSERT_TRUE(resumed.Seek(saved).ok());
  EXPECT_EQ(Take(&resumed, 2 * per_epoch), expected);
  EXPECT_EQ(resumed.position(), original.position());
  EXPECT_EQ(resumed.Seek({.epoch = 0, .batch = per_epoch + 1}).code(), StatusCode::kOutOfRange);
}

TEST_F(BatcherTest, BatchContentsFollowTheConventions) {
  const std::vector<int64_t> ids = {4, 0, 9};
  const Batch batch = MakeBatch(*shard_, ids);
  const SpecialIds special;
  ASSERT_EQ(batch.batch_size, 3);
  const int64_t S = batch.source_len, T = batch.target_len;
  int64_t source_tokens = 0, target_tokens = 0;
  for (int64_t b = 0; b < 3; ++b) {
    const auto source = shard_->source(ids[b]);
    const auto target = shard_->target(ids[b]);
    for (int64_t s = 0; s < S; ++s) {
      const bool real = s < static_cast<int64_t>(source.size());
      EXPECT_EQ(batch.source[b * S + s], real ? source[s] : special.pad);
      EXPECT_EQ(batch.source_pad_mask[b * S + s], real ? 0 : 1);
    }
    for (int64_t t = 0; t < T; ++t) {
      const bool real = t < static_cast<int64_t>(target.size());
      EXPECT_EQ(batch.target[b * T + t], real ? target[t] : special.pad);
      EXPECT_EQ(batch.decoder_input[b * T + t], !real    ? special.pad
                                                : t == 0 ? special.bos
                                                         : target[t - 1]);
    }
    source_tokens += static_cast<int64_t>(source.size());
    target_tokens += static_cast<int64_t>(target.size());
  }
  EXPECT_EQ(batch.num_source_tokens, source_tokens);
  EXPECT_EQ(batch.num_target_tokens, target_tokens);
}

TEST_F(BatcherTest, SplitsIntoMicroBatchesInOrder) {
  const std::vector<int64_t> ids = {10, 11, 12, 13, 14, 15, 16};
  const Batch batch = MakeBatch(*shard_, ids);
  StatusOr<std::vector<Batch>> parts = SplitBatch(batch, 3);
  ASSERT_TRUE(parts.ok()) << parts.status();
  ASSERT_EQ(parts->size(), 3u);
  EXPECT_EQ((*parts)[0].example_ids, (std::vector<int64_t>{10, 11, 12}));
  EXPECT_EQ((*parts)[1].example_ids, (std::vector<int64_t>{13, 14}));
  EXPECT_EQ((*parts)[2].example_ids, (std::vector<int64_t>{15, 16}));
  int64_t source_tokens = 0, target_tokens = 0;
  for (const Batch& part : *parts) {
    EXPECT_EQ(part.source_len, batch.source_len);
    EXPECT_EQ(part.target_len, batch.target_len);
    const Batch alone = MakeBatch(*shard_, part.example_ids);
    EXPECT_EQ(part.num_target_tokens, alone.num_target_tokens);
    EXPECT_EQ(part.num_source_tokens, alone.num_source_tokens);
    source_tokens += part.num_source_tokens;
    target_tokens += part.num_target_tokens;
  }
  EXPECT_EQ(source_tokens, batch.num_source_tokens);
  EXPECT_EQ(target_tokens, batch.num_target_tokens);
  // Row 3 of the batch is row 0 of the second part.
  const int64_t S = batch.source_len;
  EXPECT_TRUE(std::equal(batch.source.begin() + 3 * S, batch.source.begin() + 4 * S,
                         (*parts)[1].source.begin()));
  EXPECT_FALSE(SplitBatch(batch, 8).ok());
  EXPECT_FALSE(SplitBatch(batch, 0).ok());
  StatusOr<std::vector<Batch>> whole = SplitBatch(batch, 1);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ((*whole)[0].target, batch.target);
}

TEST_F(BatcherTest, RejectsImpossibleOptions) {
  BatcherOptions options;
  options.max_tokens = 20;  // smaller than the longest example
  EXPECT_EQ(Batcher::Create(shard_, options).status().code(), StatusCode::kInvalidArgument);
  options.max_tokens = 400;
  options.replica = 2;
  options.num_replicas = 2;
  EXPECT_EQ(Batcher::Create(shard_, options).status().code(), StatusCode::kInvalidArgument);
  options.replica = 0;
  options.num_replicas = 501;  // more replicas than examples
  EXPECT_EQ(Batcher::Create(shard_, options).status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace deepnet
