// ChunkPlacement and the list of schedule kinds: the chunk-to-rank rules, and one entry per kind
// that names, parses and places.
#include "parallel/chunk_placement.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "parallel/schedule.h"

namespace deepnet {
namespace {

TEST(ChunkPlacementTest, LoopedPutsChunkKOnRankKModP) {
  const ChunkPlacement placement = ChunkPlacement::Looped(4, 2);
  ASSERT_EQ(placement.num_chunks(), 8);
  for (int k = 0; k < 8; ++k) {
    EXPECT_EQ(placement.RankOf(k), k % 4);
    EXPECT_EQ(placement.LocalOf(k), k / 4);
    EXPECT_EQ(placement.ModelChunk(k % 4, k / 4), k);
  }
  EXPECT_EQ(placement.ChunksOf(1), (std::vector<int>{1, 5}));
  EXPECT_EQ(placement.max_chunks_per_rank(), 2);
  EXPECT_EQ(placement.ModelChunk(1, 2), -1);
  for (int k = 0; k + 1 < 8; ++k) EXPECT_FALSE(placement.LocalEdge(k));
  EXPECT_EQ(placement.Describe(), "looped (chunk k on rank k mod 4)");
}

TEST(ChunkPlacementTest, VHoldsChunksRAnd2PMinus1MinusR) {
  const ChunkPlacement placement = ChunkPlacement::V(4);
  ASSERT_EQ(placement.num_chunks(), 8);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(placement.ChunksOf(r), (std::vector<int>{r, 7 - r}));
  }
  // The turn of the V (chunks 3 → 4) stays on rank 3; every other edge crosses ranks.
  for (int k = 0; k + 1 < 8; ++k) EXPECT_EQ(placement.LocalEdge(k), k == 3) << k;
  EXPECT_EQ(placement.Describe(), "V (rank r holds r and 7-r)");
}

TEST(ChunkPlacementTest, FromRanksChecksEveryRankHoldsAChunk) {
  EXPECT_EQ(ChunkPlacement::FromRanks(2, {0, 1, 1, 0}).value(), ChunkPlacement::V(2));
  EXPECT_EQ(ChunkPlacement::FromRanks(3, {0, 1, 0}).status().code(),
            StatusCode::kInvalidArgument);  // rank 2 holds none
  EXPECT_EQ(ChunkPlacement::FromRanks(2, {0, 2}).status().code(), StatusCode::kInvalidArgument);
}

TEST(ScheduleKindListTest, OneEntryPerKindThatParsesAndPlaces) {
  const std::vector<ScheduleKindInfo>& kinds = AllScheduleKinds();
  ASSERT_EQ(kinds.size(), 6u);
  std::set<std::string> names;
  for (size_t i = 0; i < kinds.size(); ++i) {
    const ScheduleKindInfo& info = kinds[i];
    SCOPED_TRACE(std::string(info.name));
    EXPECT_EQ(static_cast<size_t>(info.kind), i);  // enum order: InfoOf indexes the list
    EXPECT_EQ(&InfoOf(info.kind), &info);
    EXPECT_EQ(ParseScheduleKind(info.name).value(), info.kind);
    EXPECT_EQ(ParseScheduleKind(info.config_name).value(), info.kind);
    EXPECT_TRUE(names.insert(std::string(info.name)).second);
    const ScheduleOptions options{.stages = 3, .micro_batches = 6};
    const ChunkPlacement placement = PlacementOf(info.kind, options).value();
    EXPECT_EQ(placement.ranks(), 3);
    EXPECT_EQ(placement.num_chunks(), info.kind == ScheduleKind::kZeroBubbleV ? 6 : 3);
  }
  EXPECT_EQ(ScheduleKindNames(), "gpipe, 1f1b, interleaved, zb-h1, zb-h2 or zb-v");
  EXPECT_EQ(ParseScheduleKind("ZERO_BUBBLE_V").value(), ScheduleKind::kZeroBubbleV);
  EXPECT_NE(ParseScheduleKind("zb-h3").status().message().find("zb-h2 or zb-v"), std::string::npos);
}

TEST(ScheduleKindListTest, ZeroBubbleVHandsOverLocallyAtTheTurn) {
  // p = 2: rank 1 holds chunks 1 and 2; F of chunk 2 follows F of chunk 1 with no transfer.
  const std::vector<std::vector<Action>> ranks =
      BuildAllSchedules(ScheduleKind::kZeroBubbleV, {.stages = 2, .micro_batches = 2}).value();
  for (const Action& action : ranks[1]) {
    if (IsCommunication(action.kind)) EXPECT_EQ(action.peer, 0) << ToString(action);
  }
  int turns = 0;
  for (const Action& action : ranks[1]) {
    turns += action.kind == ActionKind::kSendActivation && action.chunk == 0;
  }
  EXPECT_EQ(turns, 0);  // chunk 1's activations never leave rank 1
}

}  // namespace
}  // namespace deepnet
