// 1F1B (PipeDream-flush; Megatron-LM's forward_backward_pipelining_without_interleaving).
//
// Stage r runs W_r = min(p−r−1, m) warm-up forwards, then alternates one forward and one backward
// (steady state), then runs the W_r backwards left over (cool-down). Stage r never holds more than
// min(p−r, m) micro-batches of activations; the bubble equals GPipe's.
#include <algorithm>

#include "parallel/schedules/compute_order.h"

namespace deepnet::schedules {

std::vector<Step> OneFOneBSteps(const ScheduleOptions& options) {
  const int p = options.stages;
  const int m = options.micro_batches;
  const int warmup = std::min(p - options.rank - 1, m);
  const int steady = m - warmup;

  std::vector<Step> steps;
  // Warm-up: forwards that fill the stages below this one.
  for (int i = 0; i < warmup; ++i) steps.push_back({Compute(ActionKind::kForward, i)});
  // Steady 1F1B: forward of micro-batch warmup+i, then backward of micro-batch i.
  for (int i = 0; i < steady; ++i) {
    steps.push_back({Compute(ActionKind::kForward, warmup + i)});
    steps.push_back({Compute(ActionKind::kBackward, i)});
  }
  // Cool-down: the backwards of the last `warmup` micro-batches.
  for (int i = steady; i < m; ++i) steps.push_back({Compute(ActionKind::kBackward, i)});
  return steps;
}

}  // namespace deepnet::schedules
