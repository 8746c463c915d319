// Partitioner: exact against brute force over every split of small models (random costs and
// limits, infeasible cases included), and fast on the 1,000-layer model.
#include "parallel/partitioner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace deepnet {
namespace {

struct BruteForce {
  bool feasible = false;
  double best_time = std::numeric_limits<double>::infinity();
  int64_t least_memory = std::numeric_limits<int64_t>::max();  // limits ignored
};

double RangeTime(const std::vector<UnitCost>& units, int first, int end) {
  double time = 0;
  for (int i = first; i < end; ++i) time += units[i].time_s();
  return time;
}

int64_t RangeMemory(const std::vector<UnitCost>& units, int first, int end, int held) {
  int64_t bytes = 0;
  for (int i = first; i < end; ++i)
    bytes += units[i].static_bytes() + held * units[i].activation_bytes;
  return bytes;
}

// Tries every split of n units into budgets.size() non-empty contiguous segments.
BruteForce Solve(const std::vector<UnitCost>& units, const std::vector<SegmentBudget>& budgets) {
  const int n = static_cast<int>(units.size());
  const int S = static_cast<int>(budgets.size());
  BruteForce result;
  std::vector<int> bounds(S + 1, 0);
  bounds[S] = n;
  auto visit = [&](auto&& self, int j) -> void {
    if (j == S) {
      double time = 0;
      int64_t memory = 0;
      bool fits = true;
      for (int k = 0; k < S; ++k) {
        time = std::max(time, RangeTime(units, bounds[k], bounds[k + 1]));
        const int64_t bytes =
            RangeMemory(units, bounds[k], bounds[k + 1], budgets[k].activations_held);
        memory = std::max(memory, bytes);
        if (budgets[k].memory_limit_bytes > 0 && bytes > budgets[k].memory_limit_bytes) {
          fits = false;
        }
      }
      result.least_memory = std::min(result.least_memory, memory);
      if (fits) {
        result.feasible = true;
        result.best_time = std::min(result.best_time, time);
      }
      return;
    }
    for (int end = bounds[j] + 1; end <= n - (S - j - 1); ++end) {
      if (j == S - 1 && end != n) continue;
      bounds[j + 1] = end;
      self(self, j + 1);
    }
  };
  visit(visit, 0);
  return result;
}

// Checks that `plan` is a split of `units` that respects `budgets`.
void ExpectValidPlan(const PartitionPlan& plan, const std::vector<UnitCost>& units,
                     const std::vector<SegmentBudget>& budgets) {
  ASSERT_EQ(plan.stages.size(), budgets.size());
  int next = 0;
  double slowest = 0;
  for (size_t j = 0; j < plan.stages.size(); ++j) {
    const StagePlan& s = plan.stages[j];
    EXPECT_EQ(s.first_unit, next);
    EXPECT_LT(s.first_unit, s.end_unit);
    next = s.end_unit;
    EXPECT_NEAR(s.time_s, RangeTime(units, s.first_unit, s.end_unit), 1e-9);
    EXPECT_EQ(s.memory_bytes,
              RangeMemory(units, s.first_unit, s.end_unit, budgets[j].activations_held));
    if (budgets[j].memory_limit_bytes > 0) {
      EXPECT_LE(s.memory_bytes, budgets[j].memory_limit_bytes);
    }
    slowest = std::max(slowest, s.time_s);
  }
  EXPECT_EQ(next, static_cast<int>(units.size()));
  EXPECT_DOUBLE_EQ(plan.bottleneck_s, slowest);
}

TEST(PipelinePartitionerTest, MatchesBruteForceOnSmallModels) {
  std::mt19937 rng(12345);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  int infeasible = 0;
  for (int trial = 0; trial < 600; ++trial) {
    const int S = uniform(1, 4);
    const int n = uniform(S, 10);
    std::vector<UnitCost> units(n);
    for (UnitCost& u : units) {
      // Integer times in half of the trials make ties likely; fractional ones in the others.
      u.forward_s = trial % 2 ? uniform(1, 5) : std::uniform_real_distribution<>(0.1, 5)(rng);
      u.backward_s = 2 * u.forward_s;
      u.param_bytes = uniform(0, 100);
      u.activation_bytes = uniform(0, 50);
    }
    std::vector<SegmentBudget> budgets(S);
    for (SegmentBudget& b : budgets) {
      b.activations_held = uniform(1, 4);
      b.memory_limit_bytes = uniform(0, 3) == 0 ? 0 : uniform(50, 600);
    }
    SCOPED_TRACE("trial " + std::to_string(trial));
    const BruteForce expected = Solve(units, budgets);
    const StatusOr<PartitionPlan> plan = PartitionSegments(units, budgets);
    std::vector<int> held;
    for (const SegmentBudget& b : budgets) held.push_back(b.activations_held);
    EXPECT_EQ(*MinimumPeakMemory(units, held), expected.least_memory);
    if (!expected.feasible) {
      ++infeasible;
      ASSERT_EQ(plan.status().code(), StatusCode::kResourceExhausted) << plan.status();
      EXPECT_NE(
          plan.status().message().find("(" + std::to_string(expected.least_memory) + " bytes)"),
          std::string::npos)
          << plan.status();
      continue;
    }
    ASSERT_TRUE(plan.ok()) << plan.status();
    ExpectValidPlan(*plan, units, budgets);
    EXPECT_NEAR(plan->bottleneck_s, expected.best_time, 1e-9 * expected.best_time);
  }
  EXPECT_GT(infeasible, 30);  // the random limits exercise both outcomes
}

TEST(PipelinePartitionerTest, NeedsAUnitPerSegment) {
  const std::vector<UnitCost> units(3);
  EXPECT_EQ(PartitionSegments(units, std::vector<SegmentBudget>(4)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(PartitionSegments(units, std::vector<SegmentBudget>(3)).ok());  // all-zero costs
}

TEST(PipelinePartitionerTest, MemoryLimitMovesLayersOffTheFirstStages) {
  // Equal layers; under 1F1B stage 0 holds p micro-batches of activations, the last stage one.
  std::vector<UnitCost> units(40);
  for (UnitCost& u : units) {
    u.forward_s = 1;
    u.backward_s = 2;
    u.param_bytes = 10;
    u.activation_bytes = 10;
  }
  PartitionOptions options{.stages = 4, .micro_batches = 8};
  const StatusOr<PartitionPlan> balanced = PartitionUnits(units, options);
  ASSERT_TRUE(balanced.ok()) << balanced.status();
  EXPECT_DOUBLE_EQ(balanced->bottleneck_s, 30.0);  // 10 layers per stage
  EXPECT_EQ(balanced->stages[0].activations_held, 4);
  EXPECT_EQ(balanced->stages[3].activations_held, 1);

  options.memory_limit_bytes = 400;  // stage 0: 10 + 4·10 = 50 bytes per layer → 8 layers
  const StatusOr<PartitionPlan> limited = PartitionUnits(units, options);
  ASSERT_TRUE(limited.ok()) << limited.status();
  EXPECT_LE(limited->stages[0].end_unit, 8);
  EXPECT_GT(limited->bottleneck_s, 30.0);
  for (const StagePlan& s : limited->stages) EXPECT_LE(s.memory_bytes, 400);
  EXPECT_NE(FormatPartition(*limited, units).find("% of slowest"), std::string::npos);

  options.memory_limit_bytes = 100;  // 4 stages cannot hold 40 layers
  const StatusOr<PartitionPlan> none = PartitionUnits(units, options);
  EXPECT_EQ(none.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(none.status().message().find("the best split needs"), std::string::npos);
}

TEST(PipelinePartitionerTest, InterleavedSplitsIntoModelChunks) {
  std::vector<UnitCost> units(16);
  for (UnitCost& u : units) u.forward_s = 1, u.backward_s = 2;
  const StatusOr<PartitionPlan> plan =
      PartitionUnits(units, {.stages = 2,
                             .virtual_chunks = 2,
                             .micro_batches = 4,
                             .schedule = ScheduleKind::kInterleaved1F1B});
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->stages.size(), 4u);
  EXPECT_EQ(plan->stages[1].rank, 1);
  EXPECT_EQ(plan->stages[2].rank, 0);
  EXPECT_EQ(plan->stages[2].chunk, 1);
  EXPECT_DOUBLE_EQ(plan->bottleneck_s, 12.0);
}

TEST(PipelinePartitionerTest, SplitsTheThousandLayerModelFast) {
  const ModelShape shape{.arch = ModelShape::Arch::kEncoderDecoder,
                         .encoder_layers = 500,
                         .decoder_layers = 500,
                         .d_model = 512,
                         .heads = 8,
                         .ffn_dim = 2048,
                         .vocab = 64000};
  const std::vector<UnitCost> units =
      EstimateUnitCosts(shape, {.batch = 16, .source_len = 64, .target_len = 64});
  ASSERT_EQ(units.size(), 1002u);
  for (int p : {2, 4, 8, 16}) {
    for (bool limited : {false, true}) {
      PartitionOptions options{.stages = p, .micro_batches = 2 * p};
      std::vector<int> held = *PeakActivationsPerChunk(
          options.schedule, {.stages = p, .micro_batches = options.micro_batches});
      if (limited) options.memory_limit_bytes = *MinimumPeakMemory(units, held) * 11 / 10;
      const auto start = std::chrono::steady_clock::now();
      const StatusOr<PartitionPlan> plan = PartitionUnits(units, options);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ASSERT_TRUE(plan.ok()) << plan.status();
      EXPECT_LT(seconds, 1.0) << p << " stages";
      std::vector<SegmentBudget> budgets;
      for (int count : held) budgets.push_back({count, options.memory_limit_bytes});
      ExpectValidPlan(*plan, units, budgets);
      // The bottleneck is within one unit of the average: nothing better exists.
      double total = 0, largest = 0;
      for (const UnitCost& u : units) total += u.time_s(), largest = std::max(largest, u.time_s());
      if (!limited) {
        EXPECT_LE(plan->bottleneck_s, total / p + largest);
      }
    }
  }
}

}  // namespace
}  // namespace deepnet
