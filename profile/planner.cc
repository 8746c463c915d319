// Planner search (see the header).
#include "profile/planner.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "configs/stage_units.h"
#include "profile/prediction.h"

namespace deepnet {
namespace {

int64_t Nanoseconds(double seconds) { return std::llround(seconds * 1e9); }

std::string GiB(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  return text;
}

// Every kind of the schedule list, in its order.
std::vector<ScheduleKind> ListedSchedules() {
  std::vector<ScheduleKind> kinds;
  for (const ScheduleKindInfo& info : AllScheduleKinds()) kinds.push_back(info.kind);
  return kinds;
}

// Chunks per rank to try: the options' list where the schedule takes chunks, else 1.
std::vector<int> ChunkCountsFor(ScheduleKind kind, const PlannerOptions& options) {
  if (!InfoOf(kind).takes_virtual_chunks) return {1};
  std::vector<int> counts;
  for (const int v : options.virtual_chunks) {
    if (v > 1) counts.push_back(v);
  }
  return counts;
}

std::string ChoiceName(ScheduleKind kind, int v, int m) {
  std::string name(ScheduleKindName(kind));
  if (v > 1) name += " v=" + std::to_string(v);
  return name + " m=" + std::to_string(m);
}

// Simulates splits of one (schedule, m, v); remembers the best that fits and the leanest overall.
class SplitEvaluator {
 public:
  SplitEvaluator(const PlanCosts& costs, ScheduleKind kind, int v, const PlannerOptions& options,
                 std::vector<std::vector<Action>> actions, ChunkPlacement placement)
      : costs_(costs),
        kind_(kind),
        v_(v),
        options_(options),
        actions_(std::move(actions)),
        placement_(std::move(placement)),
        held_(PeakActivationsPerChunk(actions_, placement_)) {}

  // The choice for `segment_units`, or nullopt when the split is not valid for the schedule.
  std::optional<PlanChoice> Evaluate(const std::vector<int>& segment_units,
                                     const std::string& seed) {
    // No limit here: the planner compares rank totals.
    StatusOr<PartitionPlan> plan = PartitionChunks(costs_.costs.units, placement_, held_,
                                                   /*memory_limit_bytes=*/0, segment_units);
    if (!plan.ok()) return std::nullopt;
    SimulationCosts simulation_costs = ChunkCosts(*plan, costs_.costs, costs_.send_s);
    simulation_costs.cores = options_.cores;
    StatusOr<Simulation> simulation = Simulate(actions_, simulation_costs, placement_);
    if (!simulation.ok()) return std::nullopt;
    ++simulated_;
    PlanChoice choice;
    choice.kind = kind_;
    choice.virtual_chunks = v_;
    choice.micro_batches = costs_.micro_batches;
    choice.segment_units = segment_units;
    choice.seed = seed;
    choice.plan = std::move(plan).value();
    choice.simulation = std::move(simulation).value();
    choice.step_s = choice.simulation.makespan_s;
    choice.bubble = choice.simulation.bubble_fraction;
    choice.data_step_s = choice.step_s;
    choice.rank_bytes.assign(options_.ranks, 0);
    for (const StagePlan& stage : choice.plan.stages) {
      choice.rank_bytes[stage.rank] += stage.memory_bytes;
    }
    choice.peak_rank_bytes = *std::max_element(choice.rank_bytes.begin(), choice.rank_bytes.end());
    return choice;
  }

  // The mean simulated step of `choice`'s split over costs_.step_costs; step_s without them.
  double MeanOverSteps(const PlanChoice& choice) const {
    if (costs_.step_costs.empty()) return choice.step_s;
    double sum = 0.0;
    for (const ProfiledCosts& step : costs_.step_costs) {
      StatusOr<PartitionPlan> plan =
          PartitionChunks(step.units, placement_, held_,
                          /*memory_limit_bytes=*/0, choice.segment_units);
      if (!plan.ok()) return choice.step_s;
      SimulationCosts simulation_costs = ChunkCosts(*plan, step, costs_.send_s);
      simulation_costs.cores = options_.cores;
      StatusOr<Simulation> simulation = Simulate(actions_, simulation_costs, placement_);
      if (!simulation.ok()) return choice.step_s;
      sum += simulation->makespan_s;
    }
    return sum / static_cast<double>(costs_.step_costs.size());
  }

  bool Fits(const PlanChoice& choice) const {
    return options_.memory_limit_bytes <= 0 ||
           choice.peak_rank_bytes <= options_.memory_limit_bytes;
  }

  int simulated() const { return simulated_; }

 private:
  const PlanCosts& costs_;
  ScheduleKind kind_;
  int v_;
  const PlannerOptions& options_;
  std::vector<std::vector<Action>> actions_;
  ChunkPlacement placement_;
  std::vector<int> held_;  // peak activations per model chunk of actions_
  int simulated_ = 0;
};

// A fitting choice beats a non-fitting one; among non-fitting ones the leaner wins.
struct Ranking {
  const std::vector<ScheduleKind>& order;
  const SplitEvaluator& evaluator;
  bool Better(const PlanChoice& a, const PlanChoice& b) const {
    const bool fits_a = evaluator.Fits(a), fits_b = evaluator.Fits(b);
    if (fits_a != fits_b) return fits_a;
    if (!fits_a && a.peak_rank_bytes != b.peak_rank_bytes) {
      return a.peak_rank_bytes < b.peak_rank_bytes;
    }
    return RanksBefore(a, b, order);
  }
};

std::vector<int> CountsOf(const PartitionPlan& plan) {
  std::vector<int> counts;
  for (const StagePlan& stage : plan.stages) counts.push_back(stage.end_unit - stage.first_unit);
  return counts;
}

// Min-max split of units [first, end) into `budgets`, as counts; empty when there is none.
std::vector<int> MinMaxCounts(const std::vector<UnitCost>& units, int first, int end,
                              const std::vector<SegmentBudget>& budgets) {
  if (budgets.empty() || end - first < static_cast<int>(budgets.size())) return {};
  const std::vector<UnitCost> range(units.begin() + first, units.begin() + end);
  StatusOr<PartitionPlan> plan = PartitionSegments(range, budgets);
  return plan.ok() ? CountsOf(*plan) : std::vector<int>{};
}

// Seed splits for one combination: name → unit counts per chunk.
std::vector<std::pair<std::string, std::vector<int>>> SeedSplits(const PlanCosts& costs,
                                                                 ScheduleKind kind, int v,
                                                                 const PlannerOptions& options) {
  std::vector<std::pair<std::string, std::vector<int>>> seeds;
  PartitionOptions partition;
  partition.stages = options.ranks;
  partition.virtual_chunks = v;
  partition.micro_batches = costs.micro_batches;
  partition.schedule = kind;
  partition.pass_costs = options.pass_costs;
  const std::vector<UnitCost>& units = costs.costs.units;
  StatusOr<PartitionPlan> min_max = PartitionUnits(units, partition);
  if (!min_max.ok()) return seeds;
  seeds.emplace_back("min-max", CountsOf(*min_max));
  if (options.memory_limit_bytes > 0) {
    partition.memory_limit_bytes = options.memory_limit_bytes;
    StatusOr<PartitionPlan> limited = PartitionUnits(units, partition);
    if (limited.ok()) seeds.emplace_back("min-max under the limit", CountsOf(*limited));
  }
  std::vector<SegmentBudget> budgets;
  for (const StagePlan& stage : min_max->stages) {
    budgets.push_back({.activations_held = stage.activations_held});
  }
  const int n = static_cast<int>(units.size());
  const int chunks = static_cast<int>(budgets.size());
  auto add = [&](const std::string& name, int first, int end, std::vector<int> head,
                 const std::vector<int>& tail) {
    const std::vector<SegmentBudget> inner(budgets.begin() + static_cast<int>(head.size()),
                                           budgets.end() - static_cast<int>(tail.size()));
    std::vector<int> middle = MinMaxCounts(units, first, end, inner);
    if (middle.empty()) return;
    head.insert(head.end(), middle.begin(), middle.end());
    head.insert(head.end(), tail.begin(), tail.end());
    seeds.emplace_back(name, std::move(head));
  };
  if (chunks >= 2) {
    add("embedding alone", 1, n, {1}, {});
    add("output alone", 0, n - 1, {}, {1});
  }
  if (chunks >= 3) add("embedding and output alone", 1, n - 1, {1}, {1});
  return seeds;
}

// Steepest descent over single boundary moves of ±1, ±2, ±4, … units.
PlanChoice Refine(PlanChoice best, SplitEvaluator& evaluator, const Ranking& ranking,
                  std::set<std::vector<int>>& seen, int max_rounds) {
  const int chunks = static_cast<int>(best.segment_units.size());
  const std::string refined_name = best.seed + ", refined";
  for (int round = 0; round < max_rounds; ++round) {
    std::optional<PlanChoice> improved;
    for (int boundary = 1; boundary < chunks; ++boundary) {
      const int left = best.segment_units[boundary - 1];
      const int right = best.segment_units[boundary];
      for (int step = 1; step < std::max(left, right); step *= 2) {
        for (const int move : {-step, step}) {  // > 0 moves units from right to left
          if (left + move < 1 || right - move < 1) continue;
          std::vector<int> counts = best.segment_units;
          counts[boundary - 1] += move;
          counts[boundary] -= move;
          if (!seen.insert(counts).second) continue;
          std::optional<PlanChoice> candidate = evaluator.Evaluate(counts, refined_name);
          if (!candidate) continue;
          const PlanChoice& current = improved ? *improved : best;
          if (ranking.Better(*candidate, current)) improved = std::move(candidate);
        }
      }
    }
    if (!improved) break;
    best = std::move(*improved);
  }
  return best;
}

}  // namespace

bool RanksBefore(const PlanChoice& a, const PlanChoice& b, const std::vector<ScheduleKind>& order) {
  auto place = [&](ScheduleKind kind) {
    return std::find(order.begin(), order.end(), kind) - order.begin();
  };
  return std::make_tuple(Nanoseconds(a.data_step_s), Nanoseconds(a.step_s), a.peak_rank_bytes,
                         place(a.kind), a.micro_batches, a.virtual_chunks, a.segment_units) <
         std::make_tuple(Nanoseconds(b.data_step_s), Nanoseconds(b.step_s), b.peak_rank_bytes,
                         place(b.kind), b.micro_batches, b.virtual_chunks, b.segment_units);
}

StatusOr<PlanSearch> SearchPlans(const std::vector<PlanCosts>& candidates,
                                 const PlannerOptions& options) {
  if (options.ranks < 1) return InvalidArgument("ranks must be >= 1");
  if (candidates.empty()) return InvalidArgument("no micro-batch count to plan for");
  const std::vector<ScheduleKind> order =
      options.schedules.empty() ? ListedSchedules() : options.schedules;
  int total = 0;
  for (const ScheduleKind kind : order) {
    total += static_cast<int>(ChunkCountsFor(kind, options).size() * candidates.size());
  }
  PlanSearch search;
  std::optional<PlanChoice> leanest;  // over the limit, least peak memory
  for (const ScheduleKind kind : order) {
    for (const PlanCosts& costs : candidates) {
      for (const int v : ChunkCountsFor(kind, options)) {
        ++search.combinations;
        const std::string name = ChoiceName(kind, v, costs.micro_batches);
        const std::string counter =
            "[" + std::to_string(search.combinations) + "/" + std::to_string(total) + "] ";
        ScheduleOptions schedule{.stages = options.ranks,
                                 .micro_batches = costs.micro_batches,
                                 .virtual_chunks = v,
                                 .pass_costs = options.pass_costs};
        StatusOr<std::vector<std::vector<Action>>> actions = BuildAllSchedules(kind, schedule);
        StatusOr<ChunkPlacement> placement = PlacementOf(kind, schedule);
        if (!actions.ok() || !placement.ok()) {
          const Status why = actions.ok() ? placement.status() : actions.status();
          search.skipped.push_back(name + ": " + why.message());
          if (options.progress) options.progress(counter + name + ": no such schedule");
          continue;
        }
        SplitEvaluator evaluator(costs, kind, v, options, std::move(actions).value(),
                                 std::move(placement).value());
        const Ranking ranking{order, evaluator};
        std::set<std::vector<int>> seen;
        std::optional<PlanChoice> best;
        for (const auto& [seed_name, counts] : SeedSplits(costs, kind, v, options)) {
          if (!seen.insert(counts).second) continue;
          std::optional<PlanChoice> seed = evaluator.Evaluate(counts, seed_name);
          if (!seed) continue;
          PlanChoice refined =
              Refine(std::move(*seed), evaluator, ranking, seen, options.max_refine_rounds);
          if (!best || ranking.Better(refined, *best)) best = std::move(refined);
        }
        search.splits_simulated += evaluator.simulated();
        std::string line = counter + name + ": ";
        if (!best) {
          search.skipped.push_back(name + ": too few units for its chunks");
          line += "too few units for its chunks";
        } else if (!evaluator.Fits(*best)) {
          line += "over the memory limit (needs " + GiB(best->peak_rank_bytes) + ")";
          if (!leanest || best->peak_rank_bytes < leanest->peak_rank_bytes) leanest = *best;
        } else {
          best->data_step_s = evaluator.MeanOverSteps(*best);
          line += FormatPassTime(best->data_step_s);
          search.choices.push_back(std::move(*best));
        }
        if (options.progress) {
          options.progress(line + " (" + std::to_string(evaluator.simulated()) + " splits)");
        }
      }
    }
  }
  if (search.choices.empty() && leanest) {
    return ResourceExhausted(
        "no plan fits the memory limit of " + GiB(options.memory_limit_bytes) + " (" +
        std::to_string(options.memory_limit_bytes) + " bytes) per rank: the leanest, " +
        ChoiceName(leanest->kind, leanest->virtual_chunks, leanest->micro_batches) + " split \"" +
        FormatStageUnits(leanest->segment_units) + "\", needs " + GiB(leanest->peak_rank_bytes) +
        " on its fullest rank, " + GiB(leanest->peak_rank_bytes - options.memory_limit_bytes) +
        " (" + std::to_string(leanest->peak_rank_bytes - options.memory_limit_bytes) +
        " bytes) over");
  }
  if (search.choices.empty()) {
    std::string reasons;
    for (const std::string& reason : search.skipped) reasons += "\n  " + reason;
    return InvalidArgument("no schedule can run on " + std::to_string(options.ranks) +
                           " ranks with these micro-batch counts:" + reasons);
  }
  std::sort(search.choices.begin(), search.choices.end(),
            [&](const PlanChoice& a, const PlanChoice& b) { return RanksBefore(a, b, order); });
  return search;
}

std::string FormatPlanTable(const PlanSearch& search, int top, int64_t tokens_per_step) {
  std::string text =
      "  #  schedule      v   m  tokens/mb  step time   at mean mb  bubble  peak/rank   split "
      "(units per chunk)    peak memory per rank\n";
  char line[512];
  const int shown = std::min<int>(top, static_cast<int>(search.choices.size()));
  for (int i = 0; i < shown; ++i) {
    const PlanChoice& c = search.choices[i];
    std::string ranks;
    for (size_t r = 0; r < c.rank_bytes.size(); ++r) {
      ranks += (r > 0 ? " " : "") + FormatMiB(c.rank_bytes[r]);
    }
    std::snprintf(line, sizeof(line),
                  "%3d  %-12s %2d %3d  %9lld  %-10s  %-10s %6.1f%%  %-10s  %-24s  %s\n", i + 1,
                  std::string(ScheduleKindName(c.kind)).c_str(), c.virtual_chunks, c.micro_batches,
                  static_cast<long long>(tokens_per_step / c.micro_batches),
                  FormatPassTime(c.data_step_s).c_str(), FormatPassTime(c.step_s).c_str(),
                  100.0 * c.bubble, FormatMiB(c.peak_rank_bytes).c_str(),
                  FormatStageUnits(c.segment_units).c_str(), ranks.c_str());
    text += line;
  }
  return text;
}

std::string ConfigScheduleName(ScheduleKind kind) { return std::string(InfoOf(kind).config_name); }

std::string PlanConfigFragment(const PlanChoice& choice, int ranks, int64_t tokens_per_step) {
  return "parallel { pipeline_stages: " + std::to_string(ranks) +
         " schedule: " + ConfigScheduleName(choice.kind) +
         " micro_batches: " + std::to_string(choice.micro_batches) +
         " virtual_chunks: " + std::to_string(choice.virtual_chunks) + " stage_units: \"" +
         FormatStageUnits(choice.segment_units) + "\" } data { max_tokens_per_batch: " +
         std::to_string(tokens_per_step / choice.micro_batches) + " }";
}

}  // namespace deepnet
