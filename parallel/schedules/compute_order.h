// Schedule skeletons and how communication is posted around them.
//
// Letters as in parallel/schedule.h (p stages, r rank, m micro-batches, v chunks per rank, model
// chunk k = c·p + r). A skeleton is the list of compute actions one rank runs, in order, cut into
// steps; a step is one or more compute actions run back to back. Generators assume
// CheckScheduleOptions passed.
#pragma once

#include <vector>

#include "parallel/schedule.h"

namespace deepnet::schedules {

using Step = std::vector<Action>;

inline Action Compute(ActionKind kind, int micro_batch, int chunk = 0) {
  return Action{.kind = kind, .micro_batch = micro_batch, .chunk = chunk};
}

std::vector<Step> GpipeSteps(const ScheduleOptions& options);
std::vector<Step> OneFOneBSteps(const ScheduleOptions& options);
std::vector<Step> Interleaved1F1BSteps(const ScheduleOptions& options);
std::vector<Step> ZeroBubbleH1Steps(const ScheduleOptions& options);

// Megatron's placement: between consecutive steps, one group with the sends of the step before
// and the receives of the step after (send_forward_recv_backward and friends).
std::vector<Action> PostBetweenSteps(const std::vector<Step>& steps,
                                     const ScheduleOptions& options);

// Placement by time, for every rank at once: in the skeletons' unit-cost timeline (F = B = W = 1,
// fused backward 2, transfers free), each transfer is posted by both ranks at the moment its
// producer finishes, all transfers of a rank at one moment forming one group. Every group then
// finds its peers ready, so with unit costs nothing waits beyond the data dependencies; with
// blocking sends, posting between steps would stall zero-bubble schedules, whose W passes shift
// neighbours out of step. Returns every rank's actions (no ReduceGradients / OptimizerStep yet).
std::vector<std::vector<Action>> PostAtProducerTime(const std::vector<std::vector<Step>>& ranks,
                                                    const ScheduleOptions& options);

}  // namespace deepnet::schedules
