// GPipe (Huang et al., 2019): every forward, then every backward. Holds all m micro-batches'
// activations at once. Backwards run in ascending micro-batch order (not GPipe's reverse order)
// so gradients accumulate in the single-process order; the bubble is the same either way.
#include "parallel/schedules/compute_order.h"

namespace deepnet::schedules {

std::vector<Step> GpipeSteps(const ScheduleOptions& options) {
  std::vector<Step> steps;
  for (int i = 0; i < options.micro_batches; ++i) {
    steps.push_back({Compute(ActionKind::kForward, i)});
  }
  for (int i = 0; i < options.micro_batches; ++i) {
    steps.push_back({Compute(ActionKind::kBackward, i)});
  }
  return steps;
}

}  // namespace deepnet::schedules
