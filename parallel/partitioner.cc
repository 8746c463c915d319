// Pipeline partitioner: exact min-max contiguous split under per-segment memory limits.
#include "parallel/partitioner.h"

#include <algorithm>
#include <cstdio>
#include <limits>

namespace deepnet {
namespace {

constexpr int64_t kNoLimit = -1;

std::string FormatBytes(int64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  return text;
}

// Feasibility sweeps over one unit sequence, for a fixed activations-held count per segment.
class SplitSearch {
 public:
  SplitSearch(const std::vector<UnitCost>& units, std::vector<int> held)
      : n_(static_cast<int>(units.size())),
        held_(std::move(held)),
        time_(n_ + 1, 0.0),
        static_(n_ + 1, 0),
        activation_(n_ + 1, 0) {
    for (int i = 0; i < n_; ++i) {
      time_[i + 1] = time_[i] + units[i].time_s();
      static_[i + 1] = static_[i] + units[i].static_bytes();
      activation_[i + 1] = activation_[i] + units[i].activation_bytes;
    }
  }

  int segments() const { return static_cast<int>(held_.size()); }
  int held(int segment) const { return held_[segment]; }
  double Time(int first, int end) const { return time_[end] - time_[first]; }
  int64_t Memory(int segment, int first, int end) const {
    return static_[end] - static_[first] + held_[segment] * (activation_[end] - activation_[first]);
  }
  double TotalTime() const { return time_[n_]; }
  int64_t MemoryUpperBound() const {
    return static_[n_] + *std::max_element(held_.begin(), held_.end()) * activation_[n_];
  }

  // Whether a split exists with every segment's time ≤ max_time and memory ≤ its limit
  // (kNoLimit: none). Leaves the tables Boundaries() reads.
  bool Feasible(double max_time, const std::vector<int64_t>& limits);
  // After Feasible returned true: the S+1 segment boundaries of one such split.
  std::vector<int> Boundaries() const;
  // The largest unit-range time strictly below `time`, or −1 when there is none.
  double LargestRangeTimeBelow(double time) const;

 private:
  int n_;
  std::vector<int> held_;
  std::vector<double> time_;  // prefix sums
  std::vector<int64_t> static_;
  std::vector<int64_t> activation_;
  std::vector<std::vector<int>> furthest_;  // [segment][first]: largest fitting end (first: none)
  std::vector<std::vector<char>> reached_;  // [segments done][position]
};

bool SplitSearch::Feasible(double max_time, const std::vector<int64_t>& limits) {
  const int S = segments();
  furthest_.assign(S, std::vector<int>(n_ + 1, 0));
  reached_.assign(S + 1, std::vector<char>(n_ + 1, 0));
  reached_[0][0] = 1;
  for (int j = 0; j < S; ++j) {
    auto fits = [&](int first, int end) {
      return Time(first, end) <= max_time &&
             (limits[j] == kNoLimit || Memory(j, first, end) <= limits[j]);
    };
    // A sub-range of a fitting range fits, so the furthest end never moves back (two pointers).
    int end = 0;
    for (int first = 0; first <= n_; ++first) {
      end = std::max(end, first);
      while (end < n_ && fits(first, end + 1)) ++end;
      furthest_[j][first] = end;
    }
    std::vector<int> cover(n_ + 2, 0);  // difference array over reachable ends
    for (int first = 0; first < n_; ++first) {
      if (!reached_[j][first] || furthest_[j][first] == first) continue;
      ++cover[first + 1];
      --cover[furthest_[j][first] + 1];
    }
    for (int pos = 0, open = 0; pos <= n_; ++pos) {
      open += cover[pos];
      reached_[j + 1][pos] = open > 0;
    }
  }
  return reached_[S][n_];
}

std::vector<int> SplitSearch::Boundaries() const {
  const int S = segments();
  std::vector<int> bounds(S + 1, n_);
  for (int j = S - 1; j >= 0; --j) {
    int first = 0;
    while (!reached_[j][first] || furthest_[j][first] < bounds[j + 1]) ++first;
    bounds[j] = first;
  }
  return bounds;
}

double SplitSearch::LargestRangeTimeBelow(double time) const {
  double best = -1.0;
  for (int first = 0; first < n_; ++first) {
    // Range times from `first` grow with the end: find the last end still below `time`.
    auto it = std::lower_bound(time_.begin() + first + 1, time_.end(), time,
                               [&](double prefix, double t) { return prefix - time_[first] < t; });
    const int end = static_cast<int>(it - time_.begin()) - 1;
    if (end > first) best = std::max(best, Time(first, end));
  }
  return best;
}

std::vector<int64_t> Limits(const std::vector<SegmentBudget>& budgets) {
  std::vector<int64_t> limits;
  for (const SegmentBudget& b : budgets) {
    limits.push_back(b.memory_limit_bytes > 0 ? b.memory_limit_bytes : kNoLimit);
  }
  return limits;
}

// Least M such that a split fits with every segment's memory ≤ M (integer bisection).
int64_t LeastUniformMemory(SplitSearch& search) {
  const double no_time_limit = std::numeric_limits<double>::infinity();
  int64_t lo = 0;  // infeasible unless every unit is free
  int64_t hi = search.MemoryUpperBound();
  if (search.Feasible(no_time_limit, std::vector<int64_t>(search.segments(), lo))) return lo;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (search.Feasible(no_time_limit, std::vector<int64_t>(search.segments(), mid))) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return hi;
}

Status CheckUnits(const std::vector<UnitCost>& units, size_t segments) {
  if (segments == 0) return InvalidArgument("no pipeline segments to fill");
  if (units.size() < segments) {
    return InvalidArgument(std::to_string(units.size()) + " units cannot fill " +
                           std::to_string(segments) + " pipeline segments (each needs one)");
  }
  return OkStatus();
}

PartitionPlan MakePlan(const SplitSearch& search, const std::vector<int>& bounds) {
  PartitionPlan plan;
  for (int j = 0; j < search.segments(); ++j) {
    StagePlan stage{.rank = j,
                    .first_unit = bounds[j],
                    .end_unit = bounds[j + 1],
                    .activations_held = search.held(j)};
    stage.time_s = search.Time(bounds[j], bounds[j + 1]);
    stage.memory_bytes = search.Memory(j, bounds[j], bounds[j + 1]);
    plan.bottleneck_s = std::max(plan.bottleneck_s, stage.time_s);
    plan.stages.push_back(stage);
  }
  for (StagePlan& stage : plan.stages) {
    stage.share_of_slowest = plan.bottleneck_s > 0 ? stage.time_s / plan.bottleneck_s : 1.0;
  }
  return plan;
}

// The split of `segment_units` (one count per model chunk) under `placement`; the memory limit
// applies to each rank's total.
StatusOr<PartitionPlan> GivenSplit(const std::vector<UnitCost>& units,
                                   const ChunkPlacement& placement, const std::vector<int>& held,
                                   const std::vector<int>& segment_units,
                                   int64_t memory_limit_bytes) {
  if (segment_units.size() != held.size()) {
    return InvalidArgument("the given split has " + std::to_string(segment_units.size()) +
                           " chunks; the schedule has " + std::to_string(held.size()));
  }
  std::vector<int> bounds{0};
  for (const int count : segment_units) {
    if (count < 1) return InvalidArgument("every chunk needs at least one unit");
    bounds.push_back(bounds.back() + count);
  }
  if (bounds.back() != static_cast<int>(units.size())) {
    return InvalidArgument("the given split covers " + std::to_string(bounds.back()) +
                           " units; the model has " + std::to_string(units.size()));
  }
  PartitionPlan plan = MakePlan(SplitSearch(units, held), bounds);
  std::vector<int64_t> rank_bytes(placement.ranks(), 0);
  for (size_t k = 0; k < plan.stages.size(); ++k) {
    StagePlan& stage = plan.stages[k];
    stage.rank = placement.RankOf(static_cast<int>(k));
    stage.chunk = placement.LocalOf(static_cast<int>(k));
    rank_bytes[stage.rank] += stage.memory_bytes;
  }
  for (int r = 0; r < placement.ranks(); ++r) {
    if (memory_limit_bytes > 0 && rank_bytes[r] > memory_limit_bytes) {
      return ResourceExhausted("the given split needs " + FormatBytes(rank_bytes[r]) + " on rank " +
                               std::to_string(r) + ", " +
                               FormatBytes(rank_bytes[r] - memory_limit_bytes) +
                               " over the memory limit " + FormatBytes(memory_limit_bytes));
    }
  }
  return plan;
}

}  // namespace

StatusOr<int64_t> MinimumPeakMemory(const std::vector<UnitCost>& units,
                                    const std::vector<int>& activations_held) {
  RETURN_IF_ERROR(CheckUnits(units, activations_held.size()));
  SplitSearch search(units, activations_held);
  return LeastUniformMemory(search);
}

StatusOr<PartitionPlan> PartitionSegments(const std::vector<UnitCost>& units,
                                          const std::vector<SegmentBudget>& budgets) {
  RETURN_IF_ERROR(CheckUnits(units, budgets.size()));
  std::vector<int> held;
  for (const SegmentBudget& b : budgets) held.push_back(b.activations_held);
  SplitSearch search(units, held);
  const std::vector<int64_t> limits = Limits(budgets);

  double hi = search.TotalTime();
  if (!search.Feasible(hi, limits)) {
    const int64_t needed = LeastUniformMemory(search);
    return ResourceExhausted("no split of " + std::to_string(units.size()) + " units into " +
                             std::to_string(budgets.size()) +
                             " pipeline segments fits the memory limits; the best split needs " +
                             FormatBytes(needed) + " (" + std::to_string(needed) +
                             " bytes) on its fullest segment");
  }
  // Bisection on the bottleneck time; Feasible is monotone in it.
  double lo = 0.0;
  if (search.Feasible(lo, limits)) hi = lo;
  for (int i = 0; i < 200 && lo < hi; ++i) {
    const double mid = lo + (hi - lo) / 2;
    if (mid <= lo || mid >= hi) break;
    (search.Feasible(mid, limits) ? hi : lo) = mid;
  }
  search.Feasible(hi, limits);
  std::vector<int> bounds = search.Boundaries();
  // Snap: the optimum is a unit-range time. While a smaller range time is still feasible, take it.
  for (;;) {
    const PartitionPlan plan = MakePlan(search, bounds);
    const double below = search.LargestRangeTimeBelow(plan.bottleneck_s);
    if (below < 0 || !search.Feasible(below, limits)) return plan;
    bounds = search.Boundaries();
  }
}

StatusOr<PartitionPlan> PartitionUnits(const std::vector<UnitCost>& units,
                                       const PartitionOptions& options) {
  ScheduleOptions schedule{.stages = options.stages,
                           .micro_batches = options.micro_batches,
                           .virtual_chunks = options.virtual_chunks,
                           .pass_costs = options.pass_costs};
  ASSIGN_OR_RETURN(const std::vector<int> held,
                   PeakActivationsPerChunk(options.schedule, schedule));
  ASSIGN_OR_RETURN(const ChunkPlacement placement, PlacementOf(options.schedule, schedule));
  return PartitionChunks(units, placement, held, options.memory_limit_bytes,
                         options.segment_units);
}

StatusOr<PartitionPlan> PartitionChunks(const std::vector<UnitCost>& units,
                                        const ChunkPlacement& placement,
                                        const std::vector<int>& held, int64_t memory_limit_bytes,
                                        const std::vector<int>& segment_units) {
  if (!segment_units.empty()) {
    return GivenSplit(units, placement, held, segment_units, memory_limit_bytes);
  }
  if (held.size() != static_cast<size_t>(placement.num_chunks())) {
    return InvalidArgument("peak activations for " + std::to_string(held.size()) +
                           " chunks, the placement has " +
                           std::to_string(placement.num_chunks()));
  }
  const int v = placement.max_chunks_per_rank();
  std::vector<SegmentBudget> budgets;
  for (int count : held) {
    budgets.push_back({.activations_held = count, .memory_limit_bytes = memory_limit_bytes / v});
  }
  StatusOr<PartitionPlan> plan = PartitionSegments(units, budgets);
  if (!plan.ok()) {
    if (plan.status().code() != StatusCode::kResourceExhausted) return plan.status();
    std::string message = "memory limit " + FormatBytes(memory_limit_bytes) +
                          " per rank: " + plan.status().message();
    if (v > 1) {
      ASSIGN_OR_RETURN(int64_t needed, MinimumPeakMemory(units, held));
      message += "; with " + std::to_string(v) +
                 " chunks per rank sharing the limit equally, set it to at least " +
                 FormatBytes(needed * v) + " per rank";
    }
    return ResourceExhausted(message);
  }
  for (size_t k = 0; k < plan->stages.size(); ++k) {
    plan->stages[k].rank = placement.RankOf(static_cast<int>(k));
    plan->stages[k].chunk = placement.LocalOf(static_cast<int>(k));
  }
  return plan;
}

std::string FormatPartition(const PartitionPlan& plan, const std::vector<UnitCost>& units) {
  std::string text = "rank chunk  units         time (s)    memory      held  % of slowest\n";
  char line[256];
  for (const StagePlan& s : plan.stages) {
    const std::string range =
        "[" + std::to_string(s.first_unit) + ", " + std::to_string(s.end_unit) + ")";
    std::snprintf(line, sizeof(line), "%4d %5d  %-12s  %-10.4g  %-10s  %4d  %5.1f%%  %s..%s\n",
                  s.rank, s.chunk, range.c_str(), s.time_s, FormatBytes(s.memory_bytes).c_str(),
                  s.activations_held, 100.0 * s.share_of_slowest, units[s.first_unit].name.c_str(),
                  units[s.end_unit - 1].name.c_str());
    text += line;
  }
  return text;
}

}  // namespace deepnet
