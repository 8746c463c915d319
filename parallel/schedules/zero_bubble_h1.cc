// ZB-H1 (Qi et al., 2024, "Zero Bubble Pipeline Parallelism", handcrafted schedule 1).
//
// The backward is split into B (input gradient, on the critical path: the stage above waits for
// it) and W (weight gradient, needed only by the optimizer step). The skeleton is 1F1B's with B in
// place of the backward; stage r defers its first r W passes and runs them after its last B, where
// 1F1B leaves stage r idle. With F, B, W the pass times the bubble per stage shrinks from 1F1B's
// (p−1)(F+B+W) to (p−1)(F+B−W) — a third when F = B = W. Counting activations as held until W,
// every stage holds at most min(p, m) micro-batches: 1F1B's peak (that of its stage 0).
// W passes run in ascending micro-batch order, like B passes. Stage 0 defers none: each of its
// W passes follows its B and the two run fused (FuseAdjacentBackward, compute_order.h).
#include <algorithm>

#include "parallel/schedules/compute_order.h"

namespace deepnet::schedules {

std::vector<Step> ZeroBubbleH1Steps(const ScheduleOptions& options) {
  const int p = options.stages;
  const int m = options.micro_batches;
  const int r = options.rank;
  const int warmup = std::min(p - r - 1, m);
  const int steady = m - warmup;

  std::vector<Step> steps;
  int next_weight = 0;
  // After the B of micro-batch i, W runs for micro-batch i − r: r W passes stay deferred.
  auto backward = [&](int i) {
    steps.push_back({Compute(ActionKind::kBackwardInput, i)});
    if (i >= r) steps.push_back({Compute(ActionKind::kBackwardWeight, next_weight++)});
  };
  // Warm-up: as 1F1B.
  for (int i = 0; i < warmup; ++i) steps.push_back({Compute(ActionKind::kForward, i)});
  // Steady state: F, B, W.
  for (int i = 0; i < steady; ++i) {
    steps.push_back({Compute(ActionKind::kForward, warmup + i)});
    backward(i);
  }
  // Cool-down: B, W.
  for (int i = steady; i < m; ++i) backward(i);
  // Drain: the deferred W passes fill the tail that 1F1B leaves idle.
  while (next_weight < m) steps.push_back({Compute(ActionKind::kBackwardWeight, next_weight++)});
  return steps;
}

}  // namespace deepnet::schedules
