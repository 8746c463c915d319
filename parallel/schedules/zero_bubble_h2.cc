// ZB-H2 (Qi et al., 2024, "Zero Bubble Pipeline Parallelism", handcrafted schedule 2).
//
// ZB-H1's B/W split with twice 1F1B's activation memory: stage r may hold 2·min(p, m)
// micro-batches (counted until W), so it runs about 2(p−r)−1 warm-up forwards, filling the time
// until its first B arrives, and the W passes then fill the tail. With F = B = W every rank is
// then busy without a gap from its first forward to its last W — the paper's parallelogram:
// rank r works in [r, r + 3m]. Within one synchronised step that ends where ZB-H1 does (the last
// stage's wait for its first input bounds both; parallel/README.md); with optimizer
// post-validation rank 0 starts the next step while the last rank finishes this one, and the
// bubble vanishes (SimulateIterations, simulator.h).
//
// Two candidates: that handcrafted order, and the greedy list scheduler's
// (zero_bubble_greedy.cc) under the same cap. Kept: the one the simulator ends first under the
// pass costs, then the one with the shorter period of overlapped steps (PostedTiming).
#include <algorithm>
#include <optional>

#include "parallel/schedules/compute_order.h"

namespace deepnet::schedules {
namespace {

// Rank r, d = p−1−r stages above the last: 2d+1 warm-up forwards (the time until its first B
// arrives); then each B is followed by the next forward (after a W when the rank already holds
// `cap`), or by a W once the forwards are done; the remaining W passes last.
std::vector<Step> ParallelogramSteps(const ScheduleOptions& options, int cap) {
  const int m = options.micro_batches;
  std::vector<Step> steps;
  int forward = 0;
  int backward = 0;
  int weight = 0;
  auto run = [&](ActionKind kind, int& next) { steps.push_back({Compute(kind, next++)}); };
  const int warmup = std::min({2 * (options.stages - 1 - options.rank) + 1, m, cap});
  while (forward < warmup) run(ActionKind::kForward, forward);
  while (backward < m) {
    run(ActionKind::kBackwardInput, backward);
    if (forward < m) {
      if (forward - weight == cap) run(ActionKind::kBackwardWeight, weight);
      run(ActionKind::kForward, forward);
    } else {
      run(ActionKind::kBackwardWeight, weight);
    }
  }
  while (weight < m) run(ActionKind::kBackwardWeight, weight);
  return steps;
}

}  // namespace

std::vector<std::vector<Step>> ZeroBubbleH2Steps(const ScheduleOptions& options,
                                                 const ChunkPlacement& placement) {
  const int cap = 2 * std::min(options.stages, options.micro_batches);
  std::vector<std::vector<Step>> greedy =
      GreedyZeroBubbleSteps(options, placement, std::vector<int>(options.stages, cap));
  std::vector<std::vector<Step>> parallelogram;
  for (int r = 0; r < options.stages; ++r) {
    ScheduleOptions rank_options = options;
    rank_options.rank = r;
    parallelogram.push_back(ParallelogramSteps(rank_options, cap));
  }
  const std::optional<PostedTiming> parallelogram_timing =
      PostedTimingOf(parallelogram, options, placement);
  const std::optional<PostedTiming> greedy_timing = PostedTimingOf(greedy, options, placement);
  if (parallelogram_timing &&
      (!greedy_timing || parallelogram_timing->NoWorseThan(*greedy_timing))) {
    return parallelogram;
  }
  return greedy;
}

}  // namespace deepnet::schedules
