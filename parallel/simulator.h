// Schedule simulator: runs every rank's action list against a cost per action and reports the
// timeline, per-rank busy and idle time, the makespan, the bubble and the activations held.
// Letters as in schedule.h (p ranks); local chunk c of rank r is model chunk
// placement.ModelChunk(r, c).
//
// Semantics (those of the engine):
// - A rank runs its list in order. Compute actions take their cost.
// - The sends and receives of one group are posted together at the rank's current time and the
//   rank goes on. It waits only where it needs a transfer: a pass for the receive it consumes,
//   ReduceGradients and the end of the list for every transfer it posted (the engine completes
//   its sends there).
// - A rank's groups go through one link in post order (NCCL runs them on one stream): a group
//   starts when posted and the rank's previous group has completed. A transfer completes when
//   the groups holding its send and its receive have both started, plus the send latency; a
//   group when all its transfers have. Sends thus block the link like receives (rendezvous), so
//   a schedule that passes here cannot deadlock on any transport.
// - ReduceGradients is a collective: it completes when every rank has posted it, plus reduce_s
//   (except between overlapped steps, SimulateIterations with post-validation).
// - With SimulationCosts::cores below p, ranks share the cores (see there): the simulation then
//   runs on one global clock, and a pass lasts longer while other ranks compute too.
// - If no rank can move and some have not finished, that is a deadlock: the Status names each
//   stuck rank and the receives, sends or ranks it waits for.
#pragma once

#include <vector>

#include "parallel/schedule.h"
#include "runtime/status.h"

namespace deepnet {

// Seconds per pass. Each vector is indexed by model chunk k, or holds one value for
// every chunk. Convention used in the tests: forward 1, B 1, W 1, so a fused backward costs 2.
struct SimulationCosts {
  std::vector<double> forward_s{1.0};
  std::vector<double> backward_s;  // fused backward; empty = backward_input_s + backward_weight_s
  std::vector<double> backward_input_s{1.0};   // B
  std::vector<double> backward_weight_s{1.0};  // W
  double send_latency_s = 0.0;
  double reduce_s = 0.0;
  std::vector<double> optimizer_s;  // per rank, or one value for every rank; empty = free
  // Compute slots the ranks share (CPU ranks oversubscribing one node); 0 = one per rank. When
  // more ranks compute at once than there are cores, each computes at cores/computing speed
  // (processor sharing); waiting ranks take no core.
  int cores = 0;
};

// The costs of the timeline a schedule was built in (ScheduleOptions::pass_costs), one time
// unit = one second.
SimulationCosts SimulationCostsOf(const PassCosts& costs);

struct TimedAction {
  Action action;
  double start_s = 0.0;  // compute: start; communication: when posted
  double end_s = 0.0;    // compute: end; communication: when its group completed (the rank
                         // may have gone on computing meanwhile)
};

struct RankTimeline {
  std::vector<TimedAction> actions;  // in list order
  double busy_s = 0.0;  // in passes, optimizer step included (wall time: longer on shared cores)
  double idle_s = 0.0;  // makespan − busy
  int peak_activations = 0;  // most micro-batch·chunks held at once (forward not yet released)
};

struct Simulation {
  std::vector<RankTimeline> ranks;
  double makespan_s = 0.0;
  double bubble_fraction = 0.0;  // Σ idle / (p · makespan)
};

StatusOr<Simulation> Simulate(const std::vector<std::vector<Action>>& ranks,
                              const SimulationCosts& costs, const ChunkPlacement& placement);

// Consecutive steps (iterations) of the same per-rank lists.
struct IterationOptions {
  int iterations = 1;
  // Optimizer post-validation (Qi et al. 2024): the global checks of the update (gradient-norm
  // clipping, non-finite gradients) are validated after it, so ReduceGradients takes reduce_s on
  // each rank without waiting for the others, and a rank starts step i+1 as soon as its own step
  // i ends; transfers still pair up within each step. (Assumes the checks pass: no rollback.)
  // False: every step ends in the synchronising collective, as the engine runs it.
  bool post_validation = true;
};

struct IterationsSimulation {
  // Every step on one timeline; micro-batch j of step i appears as i·m + j.
  Simulation simulation;
  int micro_batches = 0;                // m: the lists' micro-batches per step
  std::vector<double> iteration_end_s;  // per step: when its last rank finishes it
  // Steady state, over the last half of the steps (at least one spacing): the mean spacing of
  // their ends, and 1 − (busy per rank per step, averaged over ranks) / period. One step: its
  // makespan and bubble.
  double period_s = 0.0;
  double bubble_fraction = 0.0;
};

StatusOr<IterationsSimulation> SimulateIterations(const std::vector<std::vector<Action>>& ranks,
                                                  const SimulationCosts& costs,
                                                  const ChunkPlacement& placement,
                                                  const IterationOptions& options);
// With the looped placement of as many chunks per rank as the lists use.
StatusOr<Simulation> Simulate(const std::vector<std::vector<Action>>& ranks,
                              const SimulationCosts& costs);

}  // namespace deepnet
