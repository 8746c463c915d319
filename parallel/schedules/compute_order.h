// Schedule skeletons and how communication is posted around them.
//
// Letters as in parallel/schedule.h (p stages, r rank, m micro-batches, v chunks per rank); local
// chunk c of rank r is model chunk placement.ModelChunk(r, c). A skeleton is the list of compute
// actions one rank runs, in order, cut into steps; a step is one or more compute actions run back
// to back. Generators assume CheckScheduleOptions passed.
#pragma once

#include <optional>
#include <vector>

#include "parallel/schedule.h"

namespace deepnet::schedules {

using Step = std::vector<Action>;

inline Action Compute(ActionKind kind, int micro_batch, int chunk = 0) {
  return Action{.kind = kind, .micro_batch = micro_batch, .chunk = chunk};
}

// Per rank (options.rank).
std::vector<Step> GpipeSteps(const ScheduleOptions& options);
std::vector<Step> OneFOneBSteps(const ScheduleOptions& options);
std::vector<Step> Interleaved1F1BSteps(const ScheduleOptions& options);
std::vector<Step> ZeroBubbleH1Steps(const ScheduleOptions& options);
// Every rank at once (indexed by rank).
std::vector<std::vector<Step>> ZeroBubbleH2Steps(const ScheduleOptions& options,
                                                 const ChunkPlacement& placement);
std::vector<std::vector<Step>> ZeroBubbleVSteps(const ScheduleOptions& options,
                                                const ChunkPlacement& placement);

// A per-rank generator run for every rank.
std::vector<std::vector<Step>> EveryRank(std::vector<Step> (*steps)(const ScheduleOptions&),
                                         const ScheduleOptions& options);

// Greedy list scheduling in the pass-cost timeline (options.pass_costs, transfers free), for
// B/W-split schedules: at each time a free rank runs, in this order of preference, a ready B pass,
// a ready forward if it then holds at most `max_held[r]` micro-batch·chunks (counted until W), a
// pending W pass; among ready passes the deepest model chunk first, then the oldest micro-batch. A
// new micro-batch enters a rank's first chunk only if its later chunks will still fit, so the cap
// never starves a chunk that the backward waits for. Per chunk every pass kind ascends.
std::vector<std::vector<Step>> GreedyZeroBubbleSteps(const ScheduleOptions& options,
                                                     const ChunkPlacement& placement,
                                                     const std::vector<int>& max_held);

// End time of every compute action (per rank, in list order) in the pass-cost timeline
// (options.pass_costs, transfers free) when each starts as soon as its rank is free and its input
// has been produced: activations flow k → k+1, gradients k+1 → k. FAILED_PRECONDITION when some
// pass can never run (its input is never produced before it).
StatusOr<std::vector<std::vector<double>>> PassCostEndTimes(
    const std::vector<std::vector<Action>>& computes, const ScheduleOptions& options,
    const ChunkPlacement& placement);

// Megatron's posting, per rank: between consecutive steps, one group with the sends of the step
// before and the receives of the step after (send_forward_recv_backward and friends).
std::vector<std::vector<Action>> PostBetweenSteps(const std::vector<std::vector<Step>>& ranks,
                                                  const ScheduleOptions& options,
                                                  const ChunkPlacement& placement);

// Posting by time, for every rank at once: in the skeletons' pass-cost timeline
// (options.pass_costs; a fused backward costs B + W; transfers free), each transfer is posted by
// both ranks at the moment its producer finishes, all transfers of a rank at one moment forming one
// group. Every group then finds its peers ready, so when passes take their costs nothing waits
// beyond the data dependencies; with rendezvous sends, posting between steps would stall
// zero-bubble schedules, whose W passes shift neighbours out of step. Returns every rank's actions
// (no ReduceGradients / OptimizerStep yet). Model chunks on one rank hand over locally: no
// transfer. FAILED_PRECONDITION when some pass can never run (its input is never produced before
// it).
StatusOr<std::vector<std::vector<Action>>> PostAtProducerTime(
    const std::vector<std::vector<Step>>& ranks, const ScheduleOptions& options,
    const ChunkPlacement& placement);

// The simulated end of one step of `ranks` posted by PostAtProducerTime, under
// options.pass_costs; −1 when it cannot run.
double PostedStepEnd(const std::vector<std::vector<Step>>& ranks, const ScheduleOptions& options,
                     const ChunkPlacement& placement);

// One step of a posted order and its steady period when steps overlap (optimizer
// post-validation, SimulateIterations), under the pass costs.
struct PostedTiming {
  double step_end = 0.0;
  double period = 0.0;

  // Ends the step sooner, or as soon and overlaps at least as well.
  bool NoWorseThan(const PostedTiming& other) const;
  // Neither the step nor the period is longer (stricter: no trading one for the other).
  bool NotLongerThan(const PostedTiming& other) const;
};
// nullopt when the order cannot run.
std::optional<PostedTiming> PostedTimingOf(const std::vector<std::vector<Step>>& ranks,
                                           const ScheduleOptions& options,
                                           const ChunkPlacement& placement);

// B/W-split skeletons: each W that directly follows the B of its micro-batch and chunk becomes,
// with that B, one fused backward (kBackward) wherever the posted step then ends no later under
// the pass costs (a fused pass sends its input gradient only when done, so a B that another rank
// waits for stays split), and the period of overlapped steps is no longer. In practice the fused
// pass is the cheaper one (fused_backward.cc).
std::vector<std::vector<Step>> FuseAdjacentBackward(std::vector<std::vector<Step>> ranks,
                                                    const ScheduleOptions& options,
                                                    const ChunkPlacement& placement);

}  // namespace deepnet::schedules
