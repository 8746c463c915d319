// ZB-H2 (Qi et al., 2024, "Zero Bubble Pipeline Parallelism", handcrafted schedule 2).
//
// ZB-H1's B/W split with twice 1F1B's activation memory: stage r may hold 2·min(p, m)
// micro-batches (counted until W), so it runs about 2(p−r)−1 warm-up forwards, filling the time
// until its first B arrives, and the W passes then fill the tail. With F = B = W the bubble is
// only the start and end ramps; within one synchronised step with F = B = W that equals ZB-H1's
// (the last stage's wait for its first input bounds both; parallel/README.md).
// The order comes from the greedy list scheduler (zero_bubble_greedy.cc) under that cap.
#include <algorithm>

#include "parallel/schedules/compute_order.h"

namespace deepnet::schedules {

std::vector<std::vector<Step>> ZeroBubbleH2Steps(const ScheduleOptions& options,
                                                 const ChunkPlacement& placement) {
  const int cap = 2 * std::min(options.stages, options.micro_batches);
  return GreedyZeroBubbleSteps(options, placement, std::vector<int>(options.stages, cap));
}

}  // namespace deepnet::schedules
