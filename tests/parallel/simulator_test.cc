// Simulator: every schedule runs without deadlock for p = 1..8, m = 1..16 and reaches the bubble
// the papers give; ZB-H2 and ZB-V beat ZB-H1 within their memory; deadlocks are found and
// explained; the timeline renders.
//
// Cost convention: forward F = 1, input-gradient pass B = 1, weight-gradient pass W = 1, so a
// fused backward costs B + W = 2 (the usual "backward = 2 × forward"); transfers are free. With
// v chunks per rank each chunk costs 1/v of that, so a rank's work per micro-batch stays 3.
#include "parallel/simulator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "parallel/timeline.h"
#include "parallel/validate.h"

namespace deepnet {
namespace {

using Ranks = std::vector<std::vector<Action>>;

struct SimulatedStep {
  Simulation simulation;
  double idle = 0.0;  // per rank; the final collective makes it equal on every rank
};

// F = B = W = 1 per stage: a rank's chunks share its stage's work, each costs 1/chunks of it.
SimulationCosts StageShareCosts(const ChunkPlacement& placement) {
  const double share = 1.0 / placement.max_chunks_per_rank();
  SimulationCosts costs;
  costs.forward_s = {share};
  costs.backward_input_s = {share};
  costs.backward_weight_s = {share};
  return costs;
}

// Builds, validates and simulates; fails the test on any error.
SimulatedStep BuildAndSimulate(ScheduleKind kind, int p, int m, int v = 1) {
  const ScheduleOptions options{.stages = p, .micro_batches = m, .virtual_chunks = v};
  StatusOr<Ranks> ranks = BuildAllSchedules(kind, options);
  EXPECT_TRUE(ranks.ok()) << ranks.status();
  if (!ranks.ok()) return {};
  const ChunkPlacement placement = *PlacementOf(kind, options);
  const Status valid = ValidateSchedules(*ranks, {.micro_batches = m, .placement = placement});
  EXPECT_TRUE(valid.ok()) << valid;
  StatusOr<Simulation> simulation = Simulate(*ranks, StageShareCosts(placement), placement);
  EXPECT_TRUE(simulation.ok()) << simulation.status();
  if (!simulation.ok()) return {};
  SimulatedStep run{.simulation = *simulation, .idle = simulation->ranks[0].idle_s};
  for (const RankTimeline& rank : simulation->ranks) {
    EXPECT_NEAR(rank.busy_s, 3.0 * m, 1e-9);
    EXPECT_NEAR(rank.idle_s, run.idle, 1e-9);
  }
  return run;
}

TEST(PipelineSimulatorTest, GpipeAndOneFOneBBubbleIsPMinusOneOverMPlusPMinusOne) {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) {
      SCOPED_TRACE("p=" + std::to_string(p) + " m=" + std::to_string(m));
      const double bubble = (p - 1.0) / (m + p - 1.0);
      const SimulatedStep gpipe = BuildAndSimulate(ScheduleKind::kGpipe, p, m);
      const SimulatedStep one_f_one_b = BuildAndSimulate(ScheduleKind::kOneFOneB, p, m);
      EXPECT_NEAR(gpipe.simulation.bubble_fraction, bubble, 1e-12);
      EXPECT_NEAR(one_f_one_b.simulation.bubble_fraction, bubble, 1e-12);
      EXPECT_NEAR(one_f_one_b.idle, 3.0 * (p - 1), 1e-9);  // (p−1)(F + B + W)
      for (int r = 0; r < p; ++r) {
        EXPECT_EQ(gpipe.simulation.ranks[r].peak_activations, m);
        EXPECT_EQ(one_f_one_b.simulation.ranks[r].peak_activations, std::min(p - r, m));
      }
    }
  }
}

TEST(PipelineSimulatorTest, ZeroBubbleH1CutsTheBubbleToAThird) {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) {
      SCOPED_TRACE("p=" + std::to_string(p) + " m=" + std::to_string(m));
      const SimulatedStep zb = BuildAndSimulate(ScheduleKind::kZeroBubbleH1, p, m);
      if (m >= p) {
        // Qi et al.: (p−1)(F + B − W) against 1F1B's (p−1)(F + B + W), a third when F = B = W.
        EXPECT_NEAR(zb.idle, (p - 1) * (1.0 + 1.0 - 1.0), 1e-9);
      } else {
        // Too few micro-batches to fill the steady state: the forward and backward chains of one
        // micro-batch (2p passes) bound the step, idle (p−1) + (p−m).
        EXPECT_NEAR(zb.idle, (p - 1.0) + (p - m), 1e-9);
      }
      EXPECT_NEAR(zb.simulation.bubble_fraction, zb.idle / (3.0 * m + zb.idle), 1e-12);
      for (int r = 0; r < p; ++r) {
        EXPECT_EQ(zb.simulation.ranks[r].peak_activations, std::min(p, m));
      }
    }
  }
}

// Most chunk activations any rank holds, in stages' worth (a chunk is 1/chunks of a stage).
double PeakStagesHeld(const SimulatedStep& run, int chunks_per_rank) {
  int most = 0;
  for (const RankTimeline& rank : run.simulation.ranks)
    most = std::max(most, rank.peak_activations);
  return static_cast<double>(most) / chunks_per_rank;
}

TEST(PipelineSimulatorTest, ZeroBubbleH2AndVBeatH1WithinTheirMemory) {
  // The bar: p = 4, m = 8, F = B = W, one step ending in a synchronised optimizer step.
  const SimulatedStep one_f_one_b = BuildAndSimulate(ScheduleKind::kOneFOneB, 4, 8);
  const SimulatedStep h1 = BuildAndSimulate(ScheduleKind::kZeroBubbleH1, 4, 8);
  const SimulatedStep h2 = BuildAndSimulate(ScheduleKind::kZeroBubbleH2, 4, 8);
  const SimulatedStep v = BuildAndSimulate(ScheduleKind::kZeroBubbleV, 4, 8);
  EXPECT_NEAR(one_f_one_b.simulation.bubble_fraction, 3.0 / 11.0, 1e-12);  // 27.3 %
  EXPECT_NEAR(h1.simulation.bubble_fraction, 1.0 / 9.0, 1e-12);            // 11.1 %
  // With one chunk per rank the last stage waits (p−1)F for its first input and then has 3m of
  // work, so no such schedule ends a synchronised step sooner: ZB-H1 already reaches that bound
  // when F = B = W, and ZB-H2 (which wins when W < F or across overlapping steps) ties it.
  EXPECT_LE(h2.simulation.bubble_fraction, h1.simulation.bubble_fraction);
  EXPECT_NEAR(h2.simulation.bubble_fraction, 1.0 / 9.0, 1e-12);
  // ZB-V's chunks are half a stage: the wait halves to (p−1)F/2, idle 1.5 of 25.5 (5.9 %).
  EXPECT_LT(v.simulation.bubble_fraction, h1.simulation.bubble_fraction);
  EXPECT_NEAR(v.simulation.bubble_fraction, 1.5 / 25.5, 1e-12);
  EXPECT_LE(PeakStagesHeld(v, 2), PeakStagesHeld(one_f_one_b, 1));
  EXPECT_LE(PeakStagesHeld(h2, 1), 2 * PeakStagesHeld(one_f_one_b, 1));
}

TEST(PipelineSimulatorTest, ZeroBubbleH2AndVRunEverywhereWithinTheirMemory) {
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) {
      SCOPED_TRACE("p=" + std::to_string(p) + " m=" + std::to_string(m));
      const SimulatedStep one_f_one_b = BuildAndSimulate(ScheduleKind::kOneFOneB, p, m);
      const SimulatedStep h1 = BuildAndSimulate(ScheduleKind::kZeroBubbleH1, p, m);
      const SimulatedStep h2 = BuildAndSimulate(ScheduleKind::kZeroBubbleH2, p, m);
      const SimulatedStep v = BuildAndSimulate(ScheduleKind::kZeroBubbleV, p, m);
      EXPECT_LE(h2.idle, h1.idle + 1e-9);
      if (m >= p) EXPECT_LE(v.idle, h1.idle + 1e-9);
      EXPECT_LE(PeakStagesHeld(v, 2), PeakStagesHeld(one_f_one_b, 1));
      EXPECT_LE(PeakStagesHeld(h2, 1), 2 * PeakStagesHeld(one_f_one_b, 1));
    }
  }
}

// Unit passes plus a send latency, an all-reduce and an optimizer step.
SimulationCosts LatencyReduceAndStepCosts() {
  SimulationCosts costs;
  costs.send_latency_s = 0.5;
  costs.reduce_s = 0.25;
  costs.optimizer_s = {0.125};
  return costs;
}

// `steps` consecutive steps of the schedule under StageShareCosts; fails the test on any error.
IterationsSimulation SimulateSteps(ScheduleKind kind, int p, int m, int steps,
                                   bool post_validation) {
  const ScheduleOptions options{.stages = p, .micro_batches = m};
  StatusOr<Ranks> ranks = BuildAllSchedules(kind, options);
  EXPECT_TRUE(ranks.ok()) << ranks.status();
  if (!ranks.ok()) return {};
  const ChunkPlacement placement = *PlacementOf(kind, options);
  StatusOr<IterationsSimulation> run =
      SimulateIterations(*ranks, StageShareCosts(placement), placement,
                         {.iterations = steps, .post_validation = post_validation});
  EXPECT_TRUE(run.ok()) << run.status();
  return run.ok() ? *run : IterationsSimulation{};
}

constexpr ScheduleKind kComparedKinds[] = {ScheduleKind::kOneFOneB, ScheduleKind::kZeroBubbleH1,
                                           ScheduleKind::kZeroBubbleH2, ScheduleKind::kZeroBubbleV};

TEST(SimulateIterationsTest, SynchronisedStepsRepeatTheStep) {
  for (const ScheduleKind kind : kComparedKinds) {
    SCOPED_TRACE(ScheduleKindName(kind));
    const SimulatedStep one = BuildAndSimulate(kind, 4, 8);
    const IterationsSimulation four = SimulateSteps(kind, 4, 8, 4, /*post_validation=*/false);
    ASSERT_EQ(four.iteration_end_s.size(), 4u);
    for (int i = 0; i < 4; ++i) {
      EXPECT_NEAR(four.iteration_end_s[i], (i + 1) * one.simulation.makespan_s, 1e-9);
    }
    EXPECT_NEAR(four.period_s, one.simulation.makespan_s, 1e-9);
    EXPECT_NEAR(four.bubble_fraction, one.simulation.bubble_fraction, 1e-12);
    EXPECT_EQ(four.micro_batches, 8);
  }
}

TEST(SimulateIterationsTest, OneStepIsTheSimulatedStep) {
  for (const ScheduleKind kind : kComparedKinds) {
    for (const bool post_validation : {false, true}) {
      SCOPED_TRACE(std::string(ScheduleKindName(kind)) + (post_validation ? " post" : " sync"));
      const SimulatedStep one = BuildAndSimulate(kind, 4, 8);
      const IterationsSimulation steps = SimulateSteps(kind, 4, 8, 1, post_validation);
      EXPECT_NEAR(steps.period_s, one.simulation.makespan_s, 1e-9);
      EXPECT_NEAR(steps.bubble_fraction, one.simulation.bubble_fraction, 1e-12);
      ASSERT_EQ(steps.iteration_end_s.size(), 1u);
      EXPECT_NEAR(steps.iteration_end_s[0], one.simulation.makespan_s, 1e-9);
    }
  }
}

TEST(SimulateIterationsTest, PostValidationOverlapsWhereTheFirstRankFinishesFirst) {
  // p = 4, m = 8, F = B = W, 8 steps. 1F1B and ZB-H1 end every step on rank 0 (its last B or W
  // waits for the ranks above), so starting the next step there early gains nothing.
  const IterationsSimulation one_f_one_b = SimulateSteps(ScheduleKind::kOneFOneB, 4, 8, 8, true);
  EXPECT_NEAR(one_f_one_b.period_s, 33.0, 1e-9);
  EXPECT_NEAR(one_f_one_b.bubble_fraction, 3.0 / 11.0, 1e-12);  // 27.3 %
  const IterationsSimulation h1 = SimulateSteps(ScheduleKind::kZeroBubbleH1, 4, 8, 8, true);
  EXPECT_NEAR(h1.period_s, 27.0, 1e-9);
  EXPECT_NEAR(h1.bubble_fraction, 1.0 / 9.0, 1e-12);  // 11.1 %
  // ZB-H2 is a parallelogram: rank r works without a gap in [r, r + 3m], so rank 0 starts the
  // next step while the last rank finishes this one, and nothing is idle (the bar: below ZB-H1).
  const IterationsSimulation h2 = SimulateSteps(ScheduleKind::kZeroBubbleH2, 4, 8, 8, true);
  EXPECT_NEAR(h2.period_s, 24.0, 1e-9);
  EXPECT_NEAR(h2.bubble_fraction, 0.0, 1e-12);
  EXPECT_LT(h2.bubble_fraction, h1.bubble_fraction);
  EXPECT_NEAR(h2.iteration_end_s[0], 27.0, 1e-9);  // the first step ends as ZB-H1's does
  // ZB-V's first and last chunk share rank 0: it starts and ends every step, as in one step.
  const IterationsSimulation v = SimulateSteps(ScheduleKind::kZeroBubbleV, 4, 8, 8, true);
  EXPECT_NEAR(v.period_s, 25.5, 1e-9);
  EXPECT_NEAR(v.bubble_fraction, 1.5 / 25.5, 1e-12);  // 5.9 %
  // Every step's actions are on the timeline, micro-batch j of step i as i·m + j.
  const RankTimeline& rank0 = h1.simulation.ranks[0];
  const size_t per_step = rank0.actions.size() / 8;
  EXPECT_EQ(rank0.actions[per_step].action.kind, ActionKind::kForward);
  EXPECT_EQ(rank0.actions[per_step].action.micro_batch, 8);
  EXPECT_NEAR(rank0.actions[per_step].start_s, 27.0, 1e-9);
}

TEST(SimulateIterationsTest, ZeroBubbleH2SteadyStateIdlesOnlyWhileRankZeroLacksForwards) {
  // Rank 0's first B returns 2p − 1 passes after its first forward; with m ≥ 2p − 1 its warm-up
  // forwards fill that wait and overlapped steps idle nowhere, with fewer it idles 2p − 1 − m per
  // step. ZB-H1 keeps its one-step period 3m + p − 1.
  for (int p = 1; p <= 8; ++p) {
    for (int m = 1; m <= 16; ++m) {
      SCOPED_TRACE("p=" + std::to_string(p) + " m=" + std::to_string(m));
      const IterationsSimulation h1 = SimulateSteps(ScheduleKind::kZeroBubbleH1, p, m, 8, true);
      const IterationsSimulation h2 = SimulateSteps(ScheduleKind::kZeroBubbleH2, p, m, 8, true);
      EXPECT_NEAR(h2.period_s, 3.0 * m + std::max(0, 2 * p - 1 - m), 1e-9);
      EXPECT_LE(h2.period_s, h1.period_s + 1e-9);
      if (m >= p) EXPECT_NEAR(h1.period_s, 3.0 * m + p - 1, 1e-9);
    }
  }
}

TEST(SimulateIterationsTest, PostValidatedReductionDoesNotWaitForTheOtherRanks) {
  const Ranks ranks = *BuildAllSchedules(ScheduleKind::kOneFOneB, {.stages = 2});
  const SimulationCosts costs = LatencyReduceAndStepCosts();
  const ChunkPlacement placement = ChunkPlacement::Looped(2, 1);
  // F0 on rank 0 [0, 1], activation lands at 1.5, F0 + B0 on rank 1 [1.5, 4.5], its gradient
  // sent at 5: rank 1 reduces [5, 5.25] and steps until 5.375 without waiting for rank 0, whose
  // B0 runs [5, 7].
  StatusOr<IterationsSimulation> post =
      SimulateIterations(ranks, costs, placement, {.iterations = 2, .post_validation = true});
  ASSERT_TRUE(post.ok()) << post.status();
  const std::vector<TimedAction>& rank1 = post->simulation.ranks[1].actions;
  const size_t per_step = ranks[1].size();
  EXPECT_EQ(rank1[per_step - 1].action.kind, ActionKind::kOptimizerStep);
  EXPECT_DOUBLE_EQ(rank1[per_step - 1].end_s, 5.375);
  // Rank 0 reduces [7, 7.25] and steps until 7.375, then starts step 2: 7.375 per step, as in
  // the synchronised step, since rank 0 both starts and ends the chain.
  EXPECT_DOUBLE_EQ(post->iteration_end_s[0], 7.375);
  EXPECT_DOUBLE_EQ(post->iteration_end_s[1], 14.75);
  EXPECT_DOUBLE_EQ(post->period_s, 7.375);
  StatusOr<IterationsSimulation> sync =
      SimulateIterations(ranks, costs, placement, {.iterations = 2, .post_validation = false});
  ASSERT_TRUE(sync.ok()) << sync.status();
  EXPECT_DOUBLE_EQ(sync->simulation.ranks[1].actions[per_step - 1].end_s, 7.375);
}

TEST(SimulateIterationsTest, RefusesNoStepsAndNoRanks) {
  const Ranks ranks = *BuildAllSchedules(ScheduleKind::kOneFOneB, {.stages = 2});
  const ChunkPlacement placement = ChunkPlacement::Looped(2, 1);
  EXPECT_EQ(SimulateIterations(ranks, {}, placement, {.iterations = 0}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(SimulateIterations({}, {}, placement, {.iterations = 2}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(PipelineSimulatorTest, InterleavedBubbleShrinksByTheChunkCount) {
  for (int v : {2, 3}) {
    for (int p = 2; p <= 8; ++p) {
      for (int m = 1; m <= 16; ++m) {
        if (m > p && m % p != 0) continue;  // not supported: CheckScheduleOptions rejects it
        SCOPED_TRACE("p=" + std::to_string(p) + " m=" + std::to_string(m) +
                     " v=" + std::to_string(v));
        const SimulatedStep run = BuildAndSimulate(ScheduleKind::kInterleaved1F1B, p, m, v);
        for (int r = 0; r < p; ++r) {
          const int warmup = m <= p ? v * m : std::min(2 * (p - r - 1) + (v - 1) * p + 1, v * m);
          EXPECT_EQ(run.simulation.ranks[r].peak_activations, warmup);
        }
        if (m % p != 0) continue;  // m < p runs GPipe-like: only deadlock-free and valid
        // Narayanan et al. 2021: bubble time (p−1)(F + B)/v, i.e. (p−1)/(v·m) of the ideal time.
        EXPECT_NEAR(run.idle, 3.0 * (p - 1) / v, 1e-9);
        EXPECT_NEAR(run.idle / (3.0 * m), (p - 1.0) / (v * m), 1e-9);
        EXPECT_NEAR(run.simulation.bubble_fraction, (p - 1.0) / (v * m + p - 1.0), 1e-9);
      }
    }
  }
}

TEST(PipelineSimulatorTest, ReportsDeadlockWithWhatEachRankWaitsFor) {
  // Both ranks first wait to receive from each other.
  const Ranks ranks = {
      {{ActionKind::kRecvGradient, 0, 0, 1, 0}, {ActionKind::kForward, 0, 0, -1, -1}},
      {{ActionKind::kRecvActivation, 0, 0, 0, 0}, {ActionKind::kForward, 0, 0, -1, -1}},
  };
  const StatusOr<Simulation> simulation = Simulate(ranks, {});
  ASSERT_FALSE(simulation.ok());
  const std::string& message = simulation.status().message();
  EXPECT_NE(message.find("deadlock"), std::string::npos) << message;
  EXPECT_NE(message.find("rank 0 at action 0 waits for rank 1 to post send-grad 0 -> 0"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("rank 1 at action 0 waits for rank 0 to post send-act 0 -> 1"),
            std::string::npos)
      << message;
}

TEST(PipelineSimulatorTest, APassDoesNotWaitForAReceiveItDoesNotUse) {
  // Rank 1 posts its receive of micro-batch 1 before B0, which needs nothing from rank 0; rank 0
  // (forward 3) sends micro-batch 1 only at 6. B0 runs at 4 and F1 waits for the data until 6.
  const Ranks ranks = {
      {{ActionKind::kForward, 0, 0, -1, -1},
       {ActionKind::kSendActivation, 0, 0, 1, 0},
       {ActionKind::kForward, 1, 0, -1, -1},
       {ActionKind::kSendActivation, 1, 0, 1, 1}},
      {{ActionKind::kRecvActivation, 0, 0, 0, 0},
       {ActionKind::kForward, 0, 0, -1, -1},
       {ActionKind::kRecvActivation, 1, 0, 0, 1},
       {ActionKind::kBackward, 0, 0, -1, -1},
       {ActionKind::kForward, 1, 0, -1, -1},
       {ActionKind::kBackward, 1, 0, -1, -1}},
  };
  SimulationCosts costs;
  costs.forward_s = {3.0, 1.0};
  const StatusOr<Simulation> simulation = Simulate(ranks, costs);
  ASSERT_TRUE(simulation.ok()) << simulation.status();
  const std::vector<TimedAction>& rank1 = simulation->ranks[1].actions;
  EXPECT_DOUBLE_EQ(rank1[2].start_s, 4.0);  // posted after F0
  EXPECT_DOUBLE_EQ(rank1[2].end_s, 6.0);    // landed when rank 0 sent it
  EXPECT_DOUBLE_EQ(rank1[3].start_s, 4.0);  // B0 did not wait for it
  EXPECT_DOUBLE_EQ(rank1[4].start_s, 6.0);  // F1 did
  EXPECT_DOUBLE_EQ(simulation->makespan_s, 9.0);
}

TEST(PipelineSimulatorTest, ARanksTransfersCompleteInPostOrder) {
  // Rank 1 posts a receive from rank 0 (sent at 3), then one from rank 2 (sent at 0). Its second
  // group starts only when the first has completed (one link, as on NCCL), so the gradient lands
  // at 3, not 0, and B0 waits for it.
  const Ranks ranks = {
      {{ActionKind::kForward, 0, 0, -1, -1}, {ActionKind::kSendActivation, 0, 0, 1, 0}},
      {{ActionKind::kRecvActivation, 0, 0, 0, 0},
       {ActionKind::kRecvGradient, 0, 0, 2, 1},
       {ActionKind::kBackward, 0, 0, -1, -1}},
      {{ActionKind::kSendGradient, 0, 0, 1, 0}},
  };
  SimulationCosts costs;
  costs.forward_s = {3.0, 1.0, 1.0};
  const StatusOr<Simulation> simulation = Simulate(ranks, costs);
  ASSERT_TRUE(simulation.ok()) << simulation.status();
  const std::vector<TimedAction>& rank1 = simulation->ranks[1].actions;
  EXPECT_DOUBLE_EQ(rank1[1].start_s, 0.0);
  EXPECT_DOUBLE_EQ(rank1[1].end_s, 3.0);
  EXPECT_DOUBLE_EQ(rank1[2].start_s, 3.0);
  EXPECT_DOUBLE_EQ(simulation->ranks[2].actions[0].end_s, 3.0);
}

TEST(PipelineSimulatorTest, SendsBlockUntilTheReceiverPosts) {
  // Rank 0 sends micro-batch 0 then 1 in separate groups; rank 1 receives 1 before 0. With
  // rendezvous sends neither can finish its first group.
  const Ranks ranks = {
      {{ActionKind::kForward, 0, 0, -1, -1},
       {ActionKind::kSendActivation, 0, 0, 1, 0},
       {ActionKind::kForward, 1, 0, -1, -1},
       {ActionKind::kSendActivation, 1, 0, 1, 1}},
      {{ActionKind::kRecvActivation, 1, 0, 0, 0}, {ActionKind::kRecvActivation, 0, 0, 0, 1}},
  };
  EXPECT_EQ(Simulate(ranks, {}).status().code(), StatusCode::kFailedPrecondition);
}

TEST(PipelineSimulatorTest, CountsLatencyReductionAndOptimizerStep) {
  const Ranks ranks = *BuildAllSchedules(ScheduleKind::kOneFOneB, {.stages = 2});
  const SimulationCosts costs = LatencyReduceAndStepCosts();
  const StatusOr<Simulation> simulation = Simulate(ranks, costs);
  ASSERT_TRUE(simulation.ok()) << simulation.status();
  // F0 on rank 0 [0, 1], activation lands at 1.5, F0 + B0 on rank 1 [1.5, 4.5], gradient lands
  // at 5, B0 on rank 0 [5, 7], all-reduce until 7.25, optimizer step until 7.375.
  EXPECT_DOUBLE_EQ(simulation->makespan_s, 7.375);
  EXPECT_DOUBLE_EQ(simulation->ranks[0].busy_s, 3.125);
  EXPECT_DOUBLE_EQ(simulation->ranks[1].idle_s, 7.375 - 3.125);
  const TimedAction& f0 = simulation->ranks[1].actions[1];
  EXPECT_EQ(f0.action.kind, ActionKind::kForward);
  EXPECT_DOUBLE_EQ(f0.start_s, 1.5);
}

TEST(PipelineSimulatorTest, OptimizerStepCostsPerRank) {
  const Ranks ranks = *BuildAllSchedules(ScheduleKind::kOneFOneB, {.stages = 2});
  SimulationCosts costs;
  costs.optimizer_s = {0.5, 2.0};  // rank 1 holds more parameters
  const StatusOr<Simulation> simulation = Simulate(ranks, costs);
  ASSERT_TRUE(simulation.ok()) << simulation.status();
  // F0 on rank 0 [0, 1], F0 + B0 on rank 1 [1, 4], B0 on rank 0 [4, 6]: the reduction completes
  // at 6 on both ranks, then each takes its own optimizer step.
  EXPECT_DOUBLE_EQ(simulation->makespan_s, 8.0);
  EXPECT_DOUBLE_EQ(simulation->ranks[0].actions.back().end_s, 6.5);
  EXPECT_DOUBLE_EQ(simulation->ranks[1].actions.back().end_s, 8.0);

  costs.optimizer_s = {0.5, 2.0, 1.0};  // more entries than ranks is fine
  EXPECT_TRUE(Simulate(ranks, costs).ok());
  const Ranks three = *BuildAllSchedules(ScheduleKind::kOneFOneB, {.stages = 3});
  costs.optimizer_s = {0.5, 2.0};
  EXPECT_EQ(Simulate(three, costs).status().code(), StatusCode::kInvalidArgument);
}

TEST(PipelineSimulatorTest, TakesCostsPerModelChunk) {
  const Ranks ranks = *BuildAllSchedules(ScheduleKind::kGpipe, {.stages = 2, .micro_batches = 1});
  SimulationCosts costs;
  costs.forward_s = {1.0, 3.0};
  costs.backward_s = {2.0, 4.0};
  const StatusOr<Simulation> simulation = Simulate(ranks, costs);
  ASSERT_TRUE(simulation.ok()) << simulation.status();
  EXPECT_DOUBLE_EQ(simulation->makespan_s, 1.0 + 3.0 + 4.0 + 2.0);
  // A table needs one entry, or one per model chunk.
  costs = SimulationCosts{};
  costs.forward_s = {1.0, 2.0, 3.0};
  EXPECT_TRUE(Simulate(ranks, costs).ok());
  costs.backward_weight_s.clear();
  EXPECT_EQ(Simulate(ranks, costs).status().code(), StatusCode::kInvalidArgument);
}

TEST(PipelineTimelineTest, RendersOneRowPerRankOneColumnPerTimeUnit) {
  const Ranks ranks =
      *BuildAllSchedules(ScheduleKind::kOneFOneB, {.stages = 2, .micro_batches = 3});
  const StatusOr<Simulation> simulation = Simulate(ranks, {});
  ASSERT_TRUE(simulation.ok());
  EXPECT_EQ(RenderTimeline(*simulation),
            "rank 0  | F0 F1 .  .  B0 -- F2 B1 -- .  B2 --\n"
            "rank 1  | .  F0 B0 -- F1 B1 -- F2 B2 -- .  .\n");
  EXPECT_EQ(RenderTimeline(*simulation, {.max_columns = 4}),
            "rank 0  | F0 F1 .  . ...\n"
            "rank 1  | .  F0 B0 -- ...\n");
}

TEST(PipelineTimelineTest, RendersAWholePlanForTheCommandLine) {
  const StatusOr<std::string> text =
      RenderSchedulePlan(ScheduleKind::kZeroBubbleH1, {.stages = 4, .micro_batches = 8});
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_NE(text->find("zb-h1: 4 stages, 8 micro-batches"), std::string::npos) << *text;
  EXPECT_NE(text->find("rank 3  | .  .  .  F0 B0 F1 B1 F2 B2 F3 B3 W0 F4"), std::string::npos)
      << *text;
  EXPECT_NE(text->find("makespan 27  bubble 11.11% (idle / total)"), std::string::npos) << *text;
  // Stage 0 runs each W right after its B, fused: the legend says what a long B is.
  EXPECT_NE(text->find("rank 0  | F0 F1 F2 F3 .  .  .  B0 -- F4"), std::string::npos) << *text;
  EXPECT_NE(text->find("a B spanning B + W is a fused backward"), std::string::npos) << *text;
  EXPECT_EQ(RenderSchedulePlan(ScheduleKind::kOneFOneB, {.stages = 4, .micro_batches = 8})
                ->find("fused backward"),
            std::string::npos);
  EXPECT_FALSE(RenderSchedulePlan(ScheduleKind::kGpipe, {.stages = 0}).ok());
}

}  // namespace
}  // namespace deepnet

namespace deepnet {
namespace {

// With a core per rank, the shared-core clock gives exactly the dedicated timeline.
TEST(SharedCoresSimulatorTest, ACorePerRankIsTheDedicatedTimeline) {
  for (const ScheduleKind kind : {ScheduleKind::kGpipe, ScheduleKind::kOneFOneB,
                                  ScheduleKind::kInterleaved1F1B, ScheduleKind::kZeroBubbleH1}) {
    for (int p = 1; p <= 4; ++p) {
      for (const int m : {1, 3, 8}) {
        const ScheduleOptions options{
            .stages = p,
            .micro_batches = m,
            .virtual_chunks = kind == ScheduleKind::kInterleaved1F1B ? 2 : 1};
        if (!CheckScheduleOptions(kind, options).ok()) continue;
        SCOPED_TRACE(std::string(ScheduleKindName(kind)) + " p=" + std::to_string(p) +
                     " m=" + std::to_string(m));
        const auto ranks = *BuildAllSchedules(kind, options);
        SimulationCosts costs;
        costs.forward_s = {1.0};
        costs.backward_input_s = {1.5};
        costs.backward_weight_s = {0.75};
        costs.send_latency_s = 0.125;
        costs.optimizer_s = {0.5};
        const Simulation dedicated = *Simulate(ranks, costs);
        costs.cores = p;
        const StatusOr<Simulation> shared = Simulate(ranks, costs);
        ASSERT_TRUE(shared.ok()) << shared.status();
        EXPECT_DOUBLE_EQ(shared->makespan_s, dedicated.makespan_s);
        for (int r = 0; r < p; ++r) {
          ASSERT_EQ(shared->ranks[r].actions.size(), dedicated.ranks[r].actions.size());
          for (size_t i = 0; i < dedicated.ranks[r].actions.size(); ++i) {
            EXPECT_DOUBLE_EQ(shared->ranks[r].actions[i].end_s,
                             dedicated.ranks[r].actions[i].end_s);
          }
        }
      }
    }
  }
}

// One core and free transfers: some rank always computes, so the step is all the work in a row.
TEST(SharedCoresSimulatorTest, OneCoreRunsAllTheWorkInARow) {
  for (const ScheduleKind kind : {ScheduleKind::kOneFOneB, ScheduleKind::kZeroBubbleH1}) {
    const auto ranks = *BuildAllSchedules(kind, {.stages = 4, .micro_batches = 8});
    SimulationCosts costs;
    costs.forward_s = {1.0, 2.0, 1.0, 3.0};
    costs.optimizer_s = {0.25};
    costs.cores = 1;
    const StatusOr<Simulation> shared = Simulate(ranks, costs);
    ASSERT_TRUE(shared.ok()) << shared.status();
    // F (1 + 2 + 1 + 3) + B 4·1 + W 4·1 per micro-batch, then four optimizer steps.
    EXPECT_NEAR(shared->makespan_s, 8 * (7 + 4 + 4) + 4 * 0.25, 1e-9);
    // A rank's busy time is the wall time of its passes, stretched while others compute too.
    SimulationCosts own_cores = costs;
    own_cores.cores = 0;
    const Simulation dedicated = *Simulate(ranks, own_cores);
    for (int r = 0; r < 4; ++r) {
      EXPECT_GE(shared->ranks[r].busy_s, dedicated.ranks[r].busy_s - 1e-9);
    }
  }
}

// Two ranks on one core: while both compute, each goes at half speed.
TEST(SharedCoresSimulatorTest, TwoPassesAtOnceShareTheCore) {
  const auto ranks = *BuildAllSchedules(ScheduleKind::kGpipe, {.stages = 2, .micro_batches = 2});
  SimulationCosts costs;
  costs.cores = 2;
  const double dedicated = Simulate(ranks, costs)->makespan_s;
  costs.cores = 1;
  const double shared = Simulate(ranks, costs)->makespan_s;
  EXPECT_DOUBLE_EQ(dedicated, 9.0);  // (m + p − 1)·(F + B) with F 1, B 2
  EXPECT_DOUBLE_EQ(shared, 12.0);    // all the work: 2 ranks · 2 micro-batches · 3
  costs.cores = -1;
  EXPECT_EQ(Simulate(ranks, costs).status().code(), StatusCode::kInvalidArgument);
}

TEST(SharedCoresSimulatorTest, DeadlockIsStillReported) {
  std::vector<std::vector<Action>> ranks(2);
  ranks[0].push_back({.kind = ActionKind::kRecvActivation, .micro_batch = 0, .peer = 1});
  ranks[1].push_back({.kind = ActionKind::kRecvActivation, .micro_batch = 0, .peer = 0});
  SimulationCosts costs;
  costs.cores = 1;
  const StatusOr<Simulation> shared = Simulate(ranks, costs);
  EXPECT_EQ(shared.status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace deepnet
