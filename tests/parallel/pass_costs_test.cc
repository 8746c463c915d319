// Schedules built for pass costs (ScheduleOptions::pass_costs): under costs other than
// F = B = W = 1 every B/W-split schedule is still valid, deadlock-free under rendezvous sends and
// within its memory; the list-scheduled ZB-V is never slower under its costs than the order
// built for unit costs; the fixed patterns do not depend on the costs; out-of-range
// costs are refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "parallel/schedule.h"
#include "parallel/schedules/compute_order.h"
#include "parallel/simulator.h"
#include "parallel/validate.h"

namespace deepnet {
namespace {

using Ranks = std::vector<std::vector<Action>>;

constexpr ScheduleKind kSplitKinds[] = {ScheduleKind::kZeroBubbleH1, ScheduleKind::kZeroBubbleH2,
                                        ScheduleKind::kZeroBubbleV};
constexpr PassCosts kCosts[] = {{.forward = 1, .backward_input = 2, .weight = 1},
                                {.forward = 2, .backward_input = 3, .weight = 1},
                                {.forward = 1, .backward_input = 1, .weight = 3}};

std::string Describe(ScheduleKind kind, const ScheduleOptions& o) {
  return std::string(ScheduleKindName(kind)) + " p=" + std::to_string(o.stages) +
         " m=" + std::to_string(o.micro_batches) +
         " F,B,W=" + std::to_string(o.pass_costs.forward) + "," +
         std::to_string(o.pass_costs.backward_input) + "," + std::to_string(o.pass_costs.weight);
}

// The schedule built for `built_for`, simulated under `run_at`; the makespan, or −1 on failure.
double Makespan(ScheduleKind kind, ScheduleOptions options, const PassCosts& built_for,
                const PassCosts& run_at) {
  options.pass_costs = built_for;
  StatusOr<Ranks> ranks = BuildAllSchedules(kind, options);
  EXPECT_TRUE(ranks.ok()) << ranks.status();
  if (!ranks.ok()) return -1;
  StatusOr<Simulation> simulation =
      Simulate(*ranks, SimulationCostsOf(run_at), *PlacementOf(kind, options));
  EXPECT_TRUE(simulation.ok()) << simulation.status();
  return simulation.ok() ? simulation->makespan_s : -1;
}

TEST(PassCostsTest, SplitSchedulesStayValidDeadlockFreeAndWithinTheirMemory) {
  for (const PassCosts& costs : kCosts) {
    for (int p = 1; p <= 8; ++p) {
      for (int m = 1; m <= 16; ++m) {
        const ScheduleOptions unit{.stages = p, .micro_batches = m};
        StatusOr<Ranks> one_f_one_b = BuildAllSchedules(ScheduleKind::kOneFOneB, unit);
        ASSERT_TRUE(one_f_one_b.ok());
        const std::vector<int> one_f_one_b_held =
            PeakActivationsPerChunk(*one_f_one_b, ChunkPlacement::Looped(p, 1));
        const int one_f_one_b_peak =
            *std::max_element(one_f_one_b_held.begin(), one_f_one_b_held.end());
        for (const ScheduleKind kind : kSplitKinds) {
          ScheduleOptions options = unit;
          options.pass_costs = costs;
          SCOPED_TRACE(Describe(kind, options));
          StatusOr<Ranks> ranks = BuildAllSchedules(kind, options);
          ASSERT_TRUE(ranks.ok()) << ranks.status();
          const ChunkPlacement placement = *PlacementOf(kind, options);
          const Status valid =
              ValidateSchedules(*ranks, {.micro_batches = m, .placement = placement});
          ASSERT_TRUE(valid.ok()) << valid;
          StatusOr<Simulation> simulation = Simulate(*ranks, SimulationCostsOf(costs), placement);
          ASSERT_TRUE(simulation.ok()) << simulation.status();  // no deadlock
          // Chunk activations held at once, in stages' worth: ZB-H1 and ZB-V as 1F1B's stage 0,
          // ZB-H2 at most twice that.
          const int chunks = placement.max_chunks_per_rank();
          const int limit = (kind == ScheduleKind::kZeroBubbleH2 ? 2 : 1) * one_f_one_b_peak;
          for (int r = 0; r < p; ++r) {
            EXPECT_LE(simulation->ranks[r].peak_activations, limit * chunks) << "rank " << r;
          }
        }
      }
    }
  }
}

// ZB-V's order comes from the list scheduler alone (zero_bubble_greedy.cc).
TEST(PassCostsTest, ListScheduledOrderIsNoSlowerUnderItsCosts) {
  const PassCosts unit_costs;
  int faster = 0;
  for (const PassCosts& costs : kCosts) {
    for (const auto& [p, m] : {std::pair{2, 4}, {2, 8}, {4, 8}, {4, 16}}) {
      const ScheduleKind kind = ScheduleKind::kZeroBubbleV;
      const ScheduleOptions options{.stages = p, .micro_batches = m};
      SCOPED_TRACE(Describe(kind, {.stages = p, .micro_batches = m, .pass_costs = costs}));
      const double built_for_costs = Makespan(kind, options, costs, costs);
      const double built_for_units = Makespan(kind, options, unit_costs, costs);
      EXPECT_LE(built_for_costs, built_for_units);
      if (built_for_costs < built_for_units) ++faster;
    }
  }
  EXPECT_GT(faster, 0) << "the costs should change some order for the better";
}

// The local search after the greedy list scheduler (zero_bubble_greedy.cc): ZB-V on p = 2, m = 4
// under (2, 5, 1) ends at 72 time units (greedy alone 74); under (1, 2, 1), FULL recompute's
// costs, at 34 half-stage units (bubble 5.9 %, the greedy order already; 1F1B's 20 whole units
// are 40 halves).
TEST(PassCostsTest, LocalSearchShortensZeroBubbleV) {
  const ScheduleOptions options{.stages = 2, .micro_batches = 4};
  const ScheduleKind kind = ScheduleKind::kZeroBubbleV;
  const PassCosts full_recompute{.forward = 1, .backward_input = 2, .weight = 1};
  EXPECT_DOUBLE_EQ(Makespan(kind, options, full_recompute, full_recompute), 34.0);
  const PassCosts heavy_b{.forward = 2, .backward_input = 5, .weight = 1};
  EXPECT_DOUBLE_EQ(Makespan(kind, options, heavy_b, heavy_b), 72.0);
}

// FuseAdjacentBackward (schedules/fused_backward.cc): a W right after its own B runs fused with it
// only where neither the step nor the period of overlapped steps gets longer.
TEST(PassCostsTest, FusesBAndWOnlyWhereNothingWaits) {
  using schedules::Step;
  std::vector<PassCosts> all_costs(std::begin(kCosts), std::end(kCosts));
  all_costs.push_back(PassCosts{});
  int fused_passes = 0;
  for (const PassCosts& costs : all_costs) {
    for (int p = 1; p <= 6; ++p) {
      for (int m = 1; m <= 8; ++m) {
        const ScheduleOptions options{.stages = p, .micro_batches = m, .pass_costs = costs};
        const ChunkPlacement looped = ChunkPlacement::Looped(p, 1);
        const ChunkPlacement v = ChunkPlacement::V(p);
        const std::vector<std::pair<std::vector<std::vector<Step>>, const ChunkPlacement*>>
            skeletons = {{schedules::EveryRank(schedules::ZeroBubbleH1Steps, options), &looped},
                         {schedules::ZeroBubbleH2Steps(options, looped), &looped},
                         {schedules::ZeroBubbleVSteps(options, v), &v}};
        for (const auto& [split, placement] : skeletons) {
          SCOPED_TRACE("p=" + std::to_string(p) + " m=" + std::to_string(m) + " chunks " +
                       std::to_string(placement->num_chunks()));
          const auto fused = schedules::FuseAdjacentBackward(split, options, *placement);
          const auto before = schedules::PostedTimingOf(split, options, *placement);
          const auto after = schedules::PostedTimingOf(fused, options, *placement);
          ASSERT_TRUE(before && after);
          EXPECT_LE(after->step_end, before->step_end + 1e-9);
          EXPECT_LE(after->period, before->period + 1e-9);
          for (const auto& steps : fused) {
            for (const Step& step : steps) {
              fused_passes += std::count_if(step.begin(), step.end(), [](const Action& a) {
                return a.kind == ActionKind::kBackward;
              });
            }
          }
        }
      }
    }
  }
  EXPECT_GT(fused_passes, 0);
}

// Where they fuse: ZB-H1's stage 0 defers no W and sends no gradient, so every backward there is
// fused; ZB-V on p = 2, m = 4 under FULL recompute's costs fuses 3 of the 4 backwards of rank 0's
// first chunk (model chunk 0, whose gradient nobody waits for) and still ends at 34.
TEST(PassCostsTest, FusedWhereTheSplitBuysNothing) {
  const ScheduleOptions h1{.stages = 3, .micro_batches = 4, .rank = 0};
  for (const Action& a : *BuildSchedule(ScheduleKind::kZeroBubbleH1, h1)) {
    EXPECT_NE(a.kind, ActionKind::kBackwardInput) << ToString(a);
    EXPECT_NE(a.kind, ActionKind::kBackwardWeight) << ToString(a);
  }
  const ScheduleOptions v{.stages = 2,
                          .micro_batches = 4,
                          .pass_costs = {.forward = 1, .backward_input = 2, .weight = 1}};
  const Ranks ranks = *BuildAllSchedules(ScheduleKind::kZeroBubbleV, v);
  int fused_first_chunk = 0;
  for (const Action& a : ranks[0]) {
    if (a.kind == ActionKind::kBackward && a.chunk == 0) ++fused_first_chunk;
  }
  EXPECT_EQ(fused_first_chunk, 3);
  EXPECT_DOUBLE_EQ(
      Simulate(ranks, SimulationCostsOf(v.pass_costs), ChunkPlacement::V(2))->makespan_s, 34.0);
}

TEST(PassCostsTest, FixedPatternsIgnoreTheCosts) {
  for (const ScheduleKind kind :
       {ScheduleKind::kGpipe, ScheduleKind::kOneFOneB, ScheduleKind::kInterleaved1F1B}) {
    const ScheduleOptions unit{.stages = 4,
                               .micro_batches = 8,
                               .virtual_chunks = InfoOf(kind).takes_virtual_chunks ? 2 : 1};
    ScheduleOptions costed = unit;
    costed.pass_costs = kCosts[1];
    EXPECT_EQ(*BuildAllSchedules(kind, unit), *BuildAllSchedules(kind, costed))
        << ScheduleKindName(kind);
  }
}

TEST(PassCostsTest, RefusesCostsOutsideWholeUnits) {
  for (const PassCosts& costs :
       {PassCosts{.forward = 0}, PassCosts{.backward_input = -1}, PassCosts{.weight = 65}}) {
    const Status status = CheckScheduleOptions(
        ScheduleKind::kZeroBubbleV, {.stages = 2, .micro_batches = 4, .pass_costs = costs});
    EXPECT_FALSE(status.ok());
    EXPECT_NE(status.message().find("pass costs must be whole units in [1, 64]"), std::string::npos)
        << status;
  }
}

}  // namespace
}  // namespace deepnet
