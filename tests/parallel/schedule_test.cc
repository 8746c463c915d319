// Schedule generators: phases, micro-batch order, grouping of sends and receives, names.
#include "parallel/schedule.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace deepnet {
namespace {

const ScheduleKind kAllKinds[] = {ScheduleKind::kGpipe, ScheduleKind::kOneFOneB,
                                  ScheduleKind::kInterleaved1F1B, ScheduleKind::kZeroBubbleH1};

std::vector<Action> Build(ScheduleKind kind, int p, int m, int r, int v = 1) {
  StatusOr<std::vector<Action>> actions =
      BuildSchedule(kind, {.stages = p, .micro_batches = m, .rank = r, .virtual_chunks = v});
  EXPECT_TRUE(actions.ok()) << actions.status();
  return actions.ok() ? *actions : std::vector<Action>{};
}

// The compute actions only, as "F0 F1 B0 ...".
std::string ComputeOrder(const std::vector<Action>& actions) {
  std::string text;
  for (const Action& a : actions) {
    if (IsCompute(a.kind)) text += (text.empty() ? "" : " ") + ToString(a);
  }
  return text;
}

TEST(PipelineScheduleTest, ParsesNamesAndConfigSpellings) {
  EXPECT_EQ(*ParseScheduleKind("gpipe"), ScheduleKind::kGpipe);
  EXPECT_EQ(*ParseScheduleKind("1f1b"), ScheduleKind::kOneFOneB);
  EXPECT_EQ(*ParseScheduleKind("ONE_F_ONE_B"), ScheduleKind::kOneFOneB);
  EXPECT_EQ(*ParseScheduleKind("INTERLEAVED_1F1B"), ScheduleKind::kInterleaved1F1B);
  EXPECT_EQ(*ParseScheduleKind("zb-h1"), ScheduleKind::kZeroBubbleH1);
  EXPECT_EQ(*ParseScheduleKind("ZERO_BUBBLE_H1"), ScheduleKind::kZeroBubbleH1);
  for (ScheduleKind kind : kAllKinds) {
    EXPECT_EQ(*ParseScheduleKind(ScheduleKindName(kind)), kind);
  }
  StatusOr<ScheduleKind> bad = ParseScheduleKind("2f2b");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("2f2b"), std::string::npos);
}

TEST(PipelineScheduleTest, RejectsOptionsWithoutASchedule) {
  auto code = [](ScheduleKind kind, ScheduleOptions o) {
    return BuildSchedule(kind, o).status().code();
  };
  EXPECT_EQ(code(ScheduleKind::kOneFOneB, {.stages = 0}), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ScheduleKind::kOneFOneB, {.stages = 2, .micro_batches = 0}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ScheduleKind::kOneFOneB, {.stages = 2, .micro_batches = 2, .rank = 2}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(code(ScheduleKind::kGpipe, {.stages = 2, .micro_batches = 2, .virtual_chunks = 2}),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      code(ScheduleKind::kInterleaved1F1B, {.stages = 1, .micro_batches = 2, .virtual_chunks = 2}),
      StatusCode::kInvalidArgument);
  EXPECT_EQ(
      code(ScheduleKind::kInterleaved1F1B, {.stages = 4, .micro_batches = 6, .virtual_chunks = 2}),
      StatusCode::kInvalidArgument);
  EXPECT_TRUE(BuildSchedule(ScheduleKind::kInterleaved1F1B,
                            {.stages = 4, .micro_batches = 3, .virtual_chunks = 2})
                  .ok());
}

TEST(PipelineScheduleTest, OneFOneBHasMegatronPhases) {
  // p = 4, m = 6. Stage r: warm-up min(p−r−1, m) forwards, steady F/B pairs, cool-down B.
  EXPECT_EQ(ComputeOrder(Build(ScheduleKind::kOneFOneB, 4, 6, 0)),
            "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5");
  EXPECT_EQ(ComputeOrder(Build(ScheduleKind::kOneFOneB, 4, 6, 2)),
            "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5");
  EXPECT_EQ(ComputeOrder(Build(ScheduleKind::kOneFOneB, 4, 6, 3)),
            "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5");
  // Fewer micro-batches than stages: warm-up is capped at m, steady state is empty.
  EXPECT_EQ(ComputeOrder(Build(ScheduleKind::kOneFOneB, 4, 2, 0)), "F0 F1 B0 B1");
  EXPECT_EQ(ComputeOrder(Build(ScheduleKind::kGpipe, 3, 3, 1)), "F0 F1 F2 B0 B1 B2");
}

TEST(PipelineScheduleTest, ZeroBubbleH1DefersWPassesOnLaterStages) {
  // Stage 0 defers none: each W follows its B, and the two run as one fused backward.
  EXPECT_EQ(ComputeOrder(Build(ScheduleKind::kZeroBubbleH1, 3, 4, 0)), "F0 F1 F2 B0 F3 B1 B2 B3");
  EXPECT_EQ(ComputeOrder(Build(ScheduleKind::kZeroBubbleH1, 3, 4, 2)),
            "F0 B0 F1 B1 F2 B2 W0 F3 B3 W1 W2 W3");
}

TEST(PipelineScheduleTest, InterleavedRunsGroupsOfPMicroBatchesThroughEachChunk) {
  // p = 2, v = 2, m = 4, rank 1: warm-up 2·0 + 1·2 = 2 forward slots.
  EXPECT_EQ(ComputeOrder(Build(ScheduleKind::kInterleaved1F1B, 2, 4, 1, 2)),
            "F0 F1 F0.1 B0.1 F1.1 B1.1 F2 B0 F3 B1 F2.1 B2.1 F3.1 B3.1 B2 B3");
}

TEST(PipelineScheduleTest, BackwardAndWeightPassesAscendPerChunk) {
  for (ScheduleKind kind : kAllKinds) {
    for (int p : {1, 3, 4}) {
      const int v = kind == ScheduleKind::kInterleaved1F1B && p > 1 ? 2 : 1;
      for (int m : {1, 4, 8}) {
        if (v > 1 && m > p && m % p != 0) continue;
        for (int r = 0; r < p; ++r) {
          std::vector<std::vector<int>> next(3, std::vector<int>(v, 0));
          for (const Action& a : Build(kind, p, m, r, v)) {
            const int pass = a.kind == ActionKind::kForward          ? 0
                             : a.kind == ActionKind::kBackwardWeight ? 2
                             : IsCompute(a.kind)                     ? 1
                                                                     : -1;
            if (pass < 0) continue;
            EXPECT_EQ(a.micro_batch, next[pass][a.chunk]++)
                << ScheduleKindName(kind) << " p" << p << " m" << m << " r" << r << " "
                << ToString(a);
          }
        }
      }
    }
  }
}

TEST(PipelineScheduleTest, EveryScheduleEndsWithReduceThenStep) {
  for (ScheduleKind kind : kAllKinds) {
    const std::vector<Action> actions = Build(kind, 3, 3, 1);
    ASSERT_GE(actions.size(), 2u);
    EXPECT_EQ(actions[actions.size() - 2].kind, ActionKind::kReduceGradients);
    EXPECT_EQ(actions.back().kind, ActionKind::kOptimizerStep);
  }
  StatusOr<std::vector<Action>> flush = BuildSchedule(
      ScheduleKind::kOneFOneB, {.stages = 3, .micro_batches = 3, .optimizer_step = false});
  ASSERT_TRUE(flush.ok());
  EXPECT_EQ(flush->back().kind, ActionKind::kBackward);
}

TEST(PipelineScheduleTest, OneFOneBSteadyStatePostsSendActivationWithRecvGradient) {
  // Rank 1 of 4, m = 8: after each steady forward F(i) it posts, in one group, the send of F(i)'s
  // activation to rank 2 and the receive of the gradient for the next backward from rank 2.
  const std::vector<Action> actions = Build(ScheduleKind::kOneFOneB, 4, 8, 1);
  int paired = 0;
  for (size_t i = 0; i + 1 < actions.size(); ++i) {
    const Action& a = actions[i];
    if (a.kind != ActionKind::kSendActivation || a.micro_batch < 2) continue;
    const Action& b = actions[i + 1];
    ASSERT_EQ(b.kind, ActionKind::kRecvGradient) << FormatSchedule(actions);
    EXPECT_EQ(b.group, a.group);
    EXPECT_EQ(a.peer, 2);
    EXPECT_EQ(b.peer, 2);
    EXPECT_EQ(b.micro_batch, a.micro_batch - 2);
    ++paired;
  }
  EXPECT_EQ(paired, 6);
}

TEST(PipelineScheduleTest, GroupsAreAdjacentAndAscending) {
  for (ScheduleKind kind : kAllKinds) {
    const std::vector<Action> actions =
        Build(kind, 4, 8, 2, kind == ScheduleKind::kInterleaved1F1B ? 2 : 1);
    int last = -1;
    for (size_t i = 0; i < actions.size(); ++i) {
      const Action& a = actions[i];
      if (!IsCommunication(a.kind)) {
        EXPECT_EQ(a.group, -1) << ToString(a);
        continue;
      }
      const bool continues = i > 0 && actions[i - 1].group == a.group;
      EXPECT_TRUE(continues || a.group == last + 1) << FormatSchedule(actions);
      last = a.group;
    }
  }
}

TEST(PipelineScheduleTest, NamesActions) {
  EXPECT_EQ(ToString({ActionKind::kForward, 3, 0, -1}), "F3");
  EXPECT_EQ(ToString({ActionKind::kBackward, 3, 1, -1}), "B3.1");
  EXPECT_EQ(ToString({ActionKind::kBackwardWeight, 12, 0, -1}), "W12");
  EXPECT_EQ(ToString({ActionKind::kSendActivation, 3, 0, 2}), "send-act 3 -> 2");
  EXPECT_EQ(ToString({ActionKind::kRecvGradient, 3, 1, 0}), "recv-grad 3.1 <- 0");
  EXPECT_EQ(ToString({.kind = ActionKind::kReduceGradients}), "reduce-grads");
  EXPECT_EQ(FormatSchedule(Build(ScheduleKind::kOneFOneB, 2, 1, 0)),
            "   0      F0\n"
            "   1 g0   send-act 0 -> 1\n"
            "   2 g0   recv-grad 0 <- 1\n"
            "   3      B0\n"
            "   4      reduce-grads\n"
            "   5      optimizer-step\n");
}

TEST(PipelineScheduleTest, PeakActivationsFollowTheSchedules) {
  for (int p = 1; p <= 6; ++p) {
    for (int m = 1; m <= 9; ++m) {
      const ScheduleOptions o{.stages = p, .micro_batches = m};
      const std::vector<int> one_f_one_b = *PeakActivationsPerChunk(ScheduleKind::kOneFOneB, o);
      const std::vector<int> gpipe = *PeakActivationsPerChunk(ScheduleKind::kGpipe, o);
      const std::vector<int> zb = *PeakActivationsPerChunk(ScheduleKind::kZeroBubbleH1, o);
      for (int r = 0; r < p; ++r) {
        EXPECT_EQ(one_f_one_b[r], std::min(p - r, m));
        EXPECT_EQ(gpipe[r], m);
        EXPECT_EQ(zb[r], std::min(p, m));
      }
    }
  }
  // Interleaved, p = 4, v = 2, m = 8: per chunk, indexed by model chunk c·p + r.
  const std::vector<int> interleaved = *PeakActivationsPerChunk(
      ScheduleKind::kInterleaved1F1B, {.stages = 4, .micro_batches = 8, .virtual_chunks = 2});
  ASSERT_EQ(interleaved.size(), 8u);
  // Rank 0 runs 10 warm-up slots (F0–F3 on both chunks, F4–F5 on chunk 0), then F6 and F7 before
  // its first chunk-0 backward: chunk 0 holds all 8, chunk 1 at most 4.
  EXPECT_EQ(interleaved[0], 8);
  EXPECT_EQ(interleaved[4], 4);
}

}  // namespace
}  // namespace deepnet
