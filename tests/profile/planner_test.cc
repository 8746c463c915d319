// The planner's search on synthetic costs: known optima, the memory limit excluding a choice,
// deterministic tie-breaking, the error when nothing fits, the --set fragment; and the given split
// (parallel.stage_units) it relies on in the partitioner.
// Letters: p ranks, m micro-batches; unit times in seconds, F forward, B backward.
#include "profile/planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "configs/config.h"
#include "parallel/partitioner.h"

namespace deepnet {
namespace {

// Units with forward f and backward 2f each (B = W = f), `activation` bytes per micro-batch and
// `param` bytes of parameters (gradients and optimizer state none).
PlanCosts Units(const std::vector<double>& forward, int micro_batches, int64_t activation = 0,
                int64_t param = 0) {
  PlanCosts costs;
  costs.micro_batches = micro_batches;
  for (size_t i = 0; i < forward.size(); ++i) {
    UnitCost unit;
    unit.name = "unit." + std::to_string(i);
    unit.forward_s = forward[i];
    unit.backward_s = 2 * forward[i];
    unit.activation_bytes = activation;
    unit.param_bytes = param;
    costs.costs.units.push_back(unit);
    costs.costs.backward_input_s.push_back(forward[i]);
    costs.costs.backward_weight_s.push_back(forward[i]);
  }
  return costs;
}

// The same work per step split into m micro-batches: each costs 1/m of it.
PlanCosts SplitWork(const std::vector<double>& forward_per_step, int m, int64_t activation = 0) {
  std::vector<double> forward;
  for (const double f : forward_per_step) forward.push_back(f / m);
  return Units(forward, m, activation);
}

PlannerOptions Options(int ranks, std::vector<ScheduleKind> schedules) {
  PlannerOptions options;
  options.ranks = ranks;
  options.schedules = std::move(schedules);
  return options;
}

TEST(PlannerTest, FirstStageTakesMoreUnderOneFOneB) {
  // Six units of F = 1, B = 2 on p = 2, m = 2. By hand: {3, 3} ends at 27 (stage 0's second
  // backward waits for stage 1's), {4, 2} at 26 (stage 1's shorter passes hide under stage 0's),
  // {5, 1} at 30, {2, 4} and {1, 5} later still. The min-max split is {3, 3}: refining must move.
  const StatusOr<PlanSearch> search =
      SearchPlans({Units({1, 1, 1, 1, 1, 1}, 2)}, Options(2, {ScheduleKind::kOneFOneB}));
  ASSERT_TRUE(search.ok()) << search.status();
  const PlanChoice& best = search->choices.front();
  EXPECT_EQ(best.segment_units, (std::vector<int>{4, 2}));
  EXPECT_DOUBLE_EQ(best.step_s, 26.0);
  EXPECT_EQ(best.seed, "min-max, refined");
}

TEST(PlannerTest, HeavyLastUnitGetsAShortLastStage) {
  // Sum 10: {5, 2} has both stages at 5 (the optimum); {6, 1} would leave 6 on stage 0.
  const StatusOr<PlanSearch> search =
      SearchPlans({Units({1, 1, 1, 1, 1, 1, 4}, 4)}, Options(2, {ScheduleKind::kOneFOneB}));
  ASSERT_TRUE(search.ok()) << search.status();
  EXPECT_EQ(search->choices.front().segment_units, (std::vector<int>{5, 2}));
}

TEST(PlannerTest, EmbeddingAloneWhenItIsTheHeaviestUnit) {
  // A unit of 6 then six of 1 on 3 ranks: nothing beats the first unit alone (bottleneck 6).
  const StatusOr<PlanSearch> search =
      SearchPlans({Units({6, 1, 1, 1, 1, 1, 1}, 4)}, Options(3, {ScheduleKind::kOneFOneB}));
  ASSERT_TRUE(search.ok()) << search.status();
  EXPECT_EQ(search->choices.front().segment_units.front(), 1);
}

TEST(PlannerTest, MoreMicroBatchesWinWhenTheWorkPerStepIsFixed) {
  // p = 2, same work per step: 1F1B takes (m + 1)/m of the per-step stage time; m = 4 wins.
  const std::vector<double> step = {4, 4, 4, 4};
  const StatusOr<PlanSearch> search =
      SearchPlans({SplitWork(step, 1), SplitWork(step, 2), SplitWork(step, 4)},
                  Options(2, {ScheduleKind::kOneFOneB}));
  ASSERT_TRUE(search.ok()) << search.status();
  ASSERT_EQ(search->choices.size(), 3u);
  EXPECT_EQ(search->choices[0].micro_batches, 4);
  EXPECT_EQ(search->choices[1].micro_batches, 2);
  EXPECT_EQ(search->choices[2].micro_batches, 1);
  EXPECT_DOUBLE_EQ(search->choices[0].step_s, 5.0 / 4.0 * 2 * 12);  // (m + 1) · (F + B) / m
}

TEST(PlannerTest, MemoryLimitExcludesGpipe) {
  // p = 2, m = 4, 100 bytes of activations per unit and micro-batch, 2 units per stage: GPipe
  // holds 4 micro-batches (800 bytes), 1F1B at most 2 on stage 0 (400 bytes).
  const PlanCosts costs = Units({1, 1, 1, 1}, 4, /*activation=*/100);
  PlannerOptions options = Options(2, {ScheduleKind::kGpipe, ScheduleKind::kOneFOneB});
  StatusOr<PlanSearch> unlimited = SearchPlans({costs}, options);
  ASSERT_TRUE(unlimited.ok()) << unlimited.status();
  ASSERT_EQ(unlimited->choices.size(), 2u);
  EXPECT_EQ(unlimited->choices[1].peak_rank_bytes, 800);

  options.memory_limit_bytes = 500;
  StatusOr<PlanSearch> limited = SearchPlans({costs}, options);
  ASSERT_TRUE(limited.ok()) << limited.status();
  ASSERT_EQ(limited->choices.size(), 1u);
  EXPECT_EQ(limited->choices[0].kind, ScheduleKind::kOneFOneB);
  EXPECT_LE(limited->choices[0].peak_rank_bytes, 500);
}

TEST(PlannerTest, NothingFitsSaysByHowMuch) {
  PlannerOptions options = Options(2, {ScheduleKind::kOneFOneB});
  options.memory_limit_bytes = 1000;
  // Every unit holds 1000 bytes of parameters: a rank needs at least 2000.
  const StatusOr<PlanSearch> search =
      SearchPlans({Units({1, 1, 1, 1}, 2, 0, /*param=*/1000)}, options);
  ASSERT_FALSE(search.ok());
  EXPECT_EQ(search.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(search.status().message().find("1000 bytes) over"), std::string::npos)
      << search.status();
  EXPECT_NE(search.status().message().find("\"2,2\""), std::string::npos) << search.status();
}

TEST(PlannerTest, TiesBreakByMemoryThenScheduleOrder) {
  // Equal unit costs, no activations: GPipe and 1F1B predict the same step and memory, so the
  // schedule list order decides, whichever way round, and every run agrees.
  const PlanCosts costs = Units({1, 1, 1, 1}, 4);
  for (const auto& order : {std::vector{ScheduleKind::kGpipe, ScheduleKind::kOneFOneB},
                            std::vector{ScheduleKind::kOneFOneB, ScheduleKind::kGpipe}}) {
    const StatusOr<PlanSearch> first = SearchPlans({costs}, Options(2, order));
    const StatusOr<PlanSearch> again = SearchPlans({costs}, Options(2, order));
    ASSERT_TRUE(first.ok() && again.ok());
    ASSERT_EQ(first->choices.size(), 2u);
    EXPECT_DOUBLE_EQ(first->choices[0].step_s, first->choices[1].step_s);
    EXPECT_EQ(first->choices[0].kind, order[0]);
    EXPECT_EQ(again->choices[0].kind, order[0]);
    EXPECT_EQ(again->choices[0].segment_units, first->choices[0].segment_units);
  }
  // With activations, 1F1B holds fewer micro-batches than GPipe: it wins the tie in time.
  const StatusOr<PlanSearch> with_memory = SearchPlans(
      {Units({1, 1, 1, 1}, 4, 100)}, Options(2, {ScheduleKind::kGpipe, ScheduleKind::kOneFOneB}));
  ASSERT_TRUE(with_memory.ok());
  EXPECT_EQ(with_memory->choices[0].kind, ScheduleKind::kOneFOneB);
}

// Scales every unit's times by `scale[u]` (the data's steps as ScaledToStep would give them).
ProfiledCosts Scaled(const ProfiledCosts& costs, const std::vector<double>& scale) {
  ProfiledCosts scaled = costs;
  for (size_t u = 0; u < scale.size(); ++u) {
    scaled.units[u].forward_s *= scale[u];
    scaled.units[u].backward_s *= scale[u];
    scaled.backward_input_s[u] *= scale[u];
    scaled.backward_weight_s[u] *= scale[u];
  }
  return scaled;
}

TEST(PlannerTest, StepsOfTheDataAreSimulatedOneByOne) {
  // Four units of F = 1 (B = 2) on p = 2, m = 2 under 1F1B. At the mean, split {2, 2} (stage
  // F = 2, B = 4) ends at 18, tied with {3, 1}; the split order picks {2, 2}. The data's two steps
  // load the halves 1.5x and 0.5x in turn (their mean is the mean shape). Front-heavy, stage 0
  // F = 3, B = 6 beside F = 1, B = 2: F0 0-3, F1 3-6, stage 1 F0 3-4, B0 4-6, then stage 0 B0
  // 6-12, B1 12-18: 18. Back-heavy: stage 0 F0 0-1, F1 1-2; stage 1 F0 1-4, B0 4-10, F1 10-13,
  // B1 13-19; stage 0 B0 10-12, B1 19-21: 21. Mean 19.5, longer than the 18 at the mean.
  PlanCosts costs = Units({1, 1, 1, 1}, 2);
  const PlannerOptions options = Options(2, {ScheduleKind::kOneFOneB});
  const StatusOr<PlanSearch> mean_only = SearchPlans({costs}, options);
  ASSERT_TRUE(mean_only.ok()) << mean_only.status();
  EXPECT_EQ(mean_only->choices.front().segment_units, (std::vector<int>{2, 2}));
  EXPECT_DOUBLE_EQ(mean_only->choices.front().step_s, 18.0);
  EXPECT_DOUBLE_EQ(mean_only->choices.front().data_step_s, 18.0);  // no steps: the mean

  costs.step_costs = {costs.costs, costs.costs};  // steps like the mean: the same prediction
  const StatusOr<PlanSearch> same = SearchPlans({costs}, options);
  ASSERT_TRUE(same.ok());
  EXPECT_DOUBLE_EQ(same->choices.front().data_step_s, 18.0);

  costs.step_costs = {Scaled(costs.costs, {1.5, 1.5, 0.5, 0.5}),
                      Scaled(costs.costs, {0.5, 0.5, 1.5, 1.5})};
  const StatusOr<PlanSearch> uneven = SearchPlans({costs}, options);
  ASSERT_TRUE(uneven.ok());
  const PlanChoice& best = uneven->choices.front();
  EXPECT_EQ(best.segment_units, (std::vector<int>{2, 2}));  // the split is searched at the mean
  EXPECT_DOUBLE_EQ(best.step_s, 18.0);
  EXPECT_DOUBLE_EQ(best.data_step_s, 19.5);
}

TEST(PlannerTest, DataStepRanksBeforeTheStepAtTheMean) {
  PlanChoice a, b;
  a.step_s = 1.0;
  a.data_step_s = 2.0;
  b.step_s = 1.5;
  b.data_step_s = 1.8;
  EXPECT_TRUE(RanksBefore(b, a, {ScheduleKind::kOneFOneB}));
  EXPECT_FALSE(RanksBefore(a, b, {ScheduleKind::kOneFOneB}));
}

TEST(PlannerTest, ImpossibleCombinationsAreSkippedWithTheReason) {
  // Interleaved needs m a multiple of p or m <= p: p = 2, m = 3 has no such schedule.
  PlannerOptions options = Options(2, {ScheduleKind::kInterleaved1F1B, ScheduleKind::kOneFOneB});
  options.virtual_chunks = {2};
  const StatusOr<PlanSearch> search = SearchPlans({Units({1, 1, 1, 1, 1, 1}, 3)}, options);
  ASSERT_TRUE(search.ok()) << search.status();
  ASSERT_EQ(search->choices.size(), 1u);
  EXPECT_EQ(search->choices[0].kind, ScheduleKind::kOneFOneB);
  ASSERT_EQ(search->skipped.size(), 1u);
  EXPECT_NE(search->skipped[0].find("interleaved v=2 m=3"), std::string::npos);
}

TEST(PlannerTest, EveryListedScheduleIsTriedByDefault) {
  const StatusOr<PlanSearch> search =
      SearchPlans({Units({1, 1, 1, 1, 1, 1, 1, 1}, 4)}, Options(2, /*schedules=*/{}));
  ASSERT_TRUE(search.ok()) << search.status();
  int expected = 0;
  for (const ScheduleKindInfo& info : AllScheduleKinds()) {
    expected += info.takes_virtual_chunks ? 3 : 1;  // v = 2, 3, 4
  }
  EXPECT_EQ(search->combinations, expected);
  EXPECT_TRUE(search->skipped.empty());
  for (const ScheduleKindInfo& info : AllScheduleKinds()) {
    EXPECT_TRUE(std::any_of(search->choices.begin(), search->choices.end(),
                            [&](const PlanChoice& c) { return c.kind == info.kind; }))
        << info.name;
  }
}

TEST(PlannerTest, FragmentLoadsAsAConfig) {
  const StatusOr<PlanSearch> search =
      SearchPlans({Units({1, 1, 1, 1, 1, 1}, 4)}, Options(2, {ScheduleKind::kZeroBubbleH1}));
  ASSERT_TRUE(search.ok()) << search.status();
  const std::string fragment = PlanConfigFragment(search->choices[0], 2, 1024);
  EXPECT_EQ(fragment,
            "parallel { pipeline_stages: 2 schedule: ZERO_BUBBLE_H1 micro_batches: 4 "
            "virtual_chunks: 1 stage_units: \"3,3\" } data { max_tokens_per_batch: 256 }");
  const StatusOr<config::RunConfig> config = config::LoadConfigFromText("", "empty", {fragment});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->parallel().stage_units(), "3,3");
  EXPECT_EQ(config->parallel().schedule(), config::ParallelConfig::ZERO_BUBBLE_H1);
}

TEST(GivenSplitTest, PartitionerTakesTheSplitAndChecksIt) {
  const PlanCosts costs = Units({1, 1, 1, 1, 1}, 2, 10, 100);
  PartitionOptions options;
  options.stages = 2;
  options.micro_batches = 2;
  options.segment_units = {1, 4};
  StatusOr<PartitionPlan> plan = PartitionUnits(costs.costs.units, options);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->stages[0].end_unit, 1);
  EXPECT_EQ(plan->stages[1].rank, 1);
  EXPECT_EQ(plan->stages[1].memory_bytes, 4 * 100 + 4 * 10);  // 1F1B: stage 1 holds 1

  options.segment_units = {2, 2};
  EXPECT_EQ(PartitionUnits(costs.costs.units, options).status().code(),
            StatusCode::kInvalidArgument);  // covers 4 of 5 units
  options.segment_units = {1, 1, 3};
  EXPECT_EQ(PartitionUnits(costs.costs.units, options).status().code(),
            StatusCode::kInvalidArgument);  // 3 chunks for 2
  options.segment_units = {4, 1};
  options.memory_limit_bytes = 400;  // stage 0: 4 · 100 + 2 · 4 · 10 = 480
  const Status over = PartitionUnits(costs.costs.units, options).status();
  EXPECT_EQ(over.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(over.message().find("rank 0"), std::string::npos) << over;
}

}  // namespace
}  // namespace deepnet
