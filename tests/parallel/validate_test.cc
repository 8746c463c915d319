// Schedule validator: accepts every generated schedule, and names the first violation of a
// broken one.
#include "parallel/validate.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace deepnet {
namespace {

using Ranks = std::vector<std::vector<Action>>;

Ranks BuildAll(ScheduleKind kind, int p, int m, int v = 1) {
  StatusOr<Ranks> ranks =
      BuildAllSchedules(kind, {.stages = p, .micro_batches = m, .virtual_chunks = v});
  EXPECT_TRUE(ranks.ok()) << ranks.status();
  return ranks.ok() ? *ranks : Ranks{};
}

// Index of the first action of `kind` for micro-batch `mb` on `actions`.
size_t Find(const std::vector<Action>& actions, ActionKind kind, int mb) {
  for (size_t i = 0; i < actions.size(); ++i) {
    if (actions[i].kind == kind && actions[i].micro_batch == mb) return i;
  }
  ADD_FAILURE() << "no " << ActionKindName(kind) << " " << mb;
  return 0;
}

// Expects a FAILED_PRECONDITION whose message holds every one of `parts`.
void ExpectViolation(const Ranks& ranks, const ValidateOptions& options,
                     const std::vector<std::string>& parts) {
  const Status status = ValidateSchedules(ranks, options);
  ASSERT_EQ(status.code(), StatusCode::kFailedPrecondition) << status;
  for (const std::string& part : parts) {
    EXPECT_NE(status.message().find(part), std::string::npos)
        << "\"" << part << "\" not in: " << status.message();
  }
}

TEST(PipelineValidateTest, AcceptsGeneratedSchedules) {
  for (ScheduleKind kind :
       {ScheduleKind::kGpipe, ScheduleKind::kOneFOneB, ScheduleKind::kZeroBubbleH1}) {
    for (int p : {1, 2, 5}) {
      for (int m : {1, 3, 8}) {
        EXPECT_TRUE(ValidateSchedules(BuildAll(kind, p, m), {.micro_batches = m}).ok());
      }
    }
  }
  EXPECT_TRUE(ValidateSchedules(BuildAll(ScheduleKind::kInterleaved1F1B, 3, 6, 3),
                                {.micro_batches = 6, .virtual_chunks = 3})
                  .ok());
}

TEST(PipelineValidateTest, FindsAForwardWithoutItsReceive) {
  Ranks ranks = BuildAll(ScheduleKind::kOneFOneB, 2, 2);
  ranks[1].erase(ranks[1].begin() + Find(ranks[1], ActionKind::kRecvActivation, 1));
  // Rank 1 now runs F1 without its input: that is the first violation found.
  ExpectViolation(ranks, {.micro_batches = 2}, {"rank 1", "F1", "before its recv-act"});
}

TEST(PipelineValidateTest, FindsUnmatchedTransfers) {
  Ranks ranks = BuildAll(ScheduleKind::kOneFOneB, 2, 2);
  // Rank 1 receives micro-batch 1's activation, but rank 0 never sends it.
  ranks[0].erase(ranks[0].begin() + Find(ranks[0], ActionKind::kSendActivation, 1));
  ExpectViolation(ranks, {.micro_batches = 2}, {"rank 1", "recv-act 1 <- 0", "no matching send"});
}

TEST(PipelineValidateTest, FindsWrongPeer) {
  Ranks ranks = BuildAll(ScheduleKind::kGpipe, 3, 2);
  ranks[1][Find(ranks[1], ActionKind::kSendActivation, 0)].peer = 0;
  ExpectViolation(ranks, {.micro_batches = 2}, {"rank 1", "peer should be rank 2"});
}

TEST(PipelineValidateTest, FindsBackwardsOutOfOrder) {
  Ranks ranks = BuildAll(ScheduleKind::kGpipe, 1, 3);
  std::swap(ranks[0][Find(ranks[0], ActionKind::kBackward, 0)],
            ranks[0][Find(ranks[0], ActionKind::kBackward, 1)]);
  ExpectViolation(ranks, {.micro_batches = 3}, {"rank 0", "B1", "ascending"});
}

// ZB-H1 on 2 stages: rank 1 defers its first W (rank 0 runs each W right after its B, fused).
TEST(PipelineValidateTest, FindsWeightPassBeforeItsInputPass) {
  Ranks ranks = BuildAll(ScheduleKind::kZeroBubbleH1, 2, 2);
  std::swap(ranks[1][Find(ranks[1], ActionKind::kBackwardInput, 0)],
            ranks[1][Find(ranks[1], ActionKind::kBackwardWeight, 0)]);
  ExpectViolation(ranks, {.micro_batches = 2}, {"rank 1", "W0", "before its B pass"});
}

// A fused backward adds its weight gradients at once: every earlier W of the chunk must be done.
TEST(PipelineValidateTest, FindsFusedBackwardBeforeAnEarlierWeightPass) {
  Ranks ranks = BuildAll(ScheduleKind::kZeroBubbleH1, 2, 2);
  // Rank 1: ... B0 ... B1 W0 W1: fusing B1 with W1 would add micro-batch 1 before W0.
  const size_t b1 = Find(ranks[1], ActionKind::kBackwardInput, 1);
  ranks[1][b1].kind = ActionKind::kBackward;
  ranks[1].erase(ranks[1].begin() + Find(ranks[1], ActionKind::kBackwardWeight, 1));
  ExpectViolation(ranks, {.micro_batches = 2},
                  {"rank 1", "B1", "fused backward before the W pass of an earlier"});
}

TEST(PipelineValidateTest, FindsBackwardBeforeForward) {
  Ranks ranks = BuildAll(ScheduleKind::kGpipe, 1, 1);
  std::swap(ranks[0][0], ranks[0][1]);
  ExpectViolation(ranks, {.micro_batches = 1}, {"B0", "before its forward"});
}

TEST(PipelineValidateTest, FindsMissingWorkAndMissingStep) {
  Ranks ranks = BuildAll(ScheduleKind::kZeroBubbleH1, 2, 2);
  ranks[1].erase(ranks[1].begin() + Find(ranks[1], ActionKind::kBackwardWeight, 1));
  ExpectViolation(ranks, {.micro_batches = 2}, {"reduce-grads", "no W pass of micro-batch 1"});

  ranks = BuildAll(ScheduleKind::kOneFOneB, 2, 2);
  ranks[1].pop_back();
  ExpectViolation(ranks, {.micro_batches = 2}, {"rank 1", "must end with"});
}

TEST(PipelineValidateTest, FindsBrokenGroups) {
  Ranks ranks = BuildAll(ScheduleKind::kOneFOneB, 2, 3);
  // Split a send/recv pair apart by giving the send a fresh, out-of-order group id.
  const size_t send = Find(ranks[0], ActionKind::kSendActivation, 1);
  ASSERT_EQ(ranks[0][send + 1].group, ranks[0][send].group);
  ranks[0][send + 1].group = 0;
  ExpectViolation(ranks, {.micro_batches = 3}, {"rank 0", "not adjacent"});

  ranks = BuildAll(ScheduleKind::kOneFOneB, 2, 3);
  ranks[0][0].group = 7;  // a compute action inside a group
  ExpectViolation(ranks, {.micro_batches = 3}, {"only sends and receives"});
}

TEST(PipelineValidateTest, LimitsActivationsHeld) {
  const Ranks ranks = BuildAll(ScheduleKind::kOneFOneB, 4, 8);
  EXPECT_TRUE(ValidateSchedules(ranks, {.micro_batches = 8, .max_activations = 4}).ok());
  ExpectViolation(ranks, {.micro_batches = 8, .max_activations = 3},
                  {"rank 0", "F3", "holds 4 micro-batches", "limit 3"});
  ExpectViolation(BuildAll(ScheduleKind::kGpipe, 4, 8), {.micro_batches = 8, .max_activations = 4},
                  {"rank 0", "F4", "holds 5"});
}

}  // namespace
}  // namespace deepnet
