// Schedule validator: checks every rank's action list against the others, without running
// anything. Letters as in schedule.h (p ranks = the number of lists, v chunks per rank, m
// micro-batches, model chunk k = c·p + r).
//
// Checked, in this order (the first violation is returned, naming rank, index and action):
// - fields: micro-batch in [0, m), chunk in [0, v), each send/recv addressed to the rank that
//   holds the neighbouring model chunk; compute actions outside groups, communication inside a
//   group, a group's actions adjacent and group ids ascending;
// - per rank, in list order: forward of (mb, c) after its recv-activation (except model chunk 0),
//   backward / B after the forward and after the recv-gradient (except the last model chunk),
//   W after B, sends after the compute that produces them; forwards, backwards and W passes of a
//   chunk in ascending micro-batch order; every (mb, c) forwarded, backwarded and, when split,
//   W-passed exactly once; ReduceGradients after all compute, OptimizerStep right after it;
// - activations held at once on a rank (forwards not yet released by backward or W, all chunks
//   together) within max_activations;
// - across ranks, every send has exactly one matching recv (same kind, micro-batch, model edge,
//   peers) and every recv a send.
// Deadlock freedom depends on timing and grouping, not just order: simulator.h checks it.
#pragma once

#include <vector>

#include "parallel/schedule.h"
#include "runtime/status.h"

namespace deepnet {

struct ValidateOptions {
  int micro_batches = 1;       // m
  int virtual_chunks = 1;      // v
  int max_activations = 0;     // most micro-batch activations a rank may hold; 0 = no limit
  bool optimizer_step = true;  // lists must end with ReduceGradients, OptimizerStep
};

Status ValidateSchedules(const std::vector<std::vector<Action>>& ranks,
                         const ValidateOptions& options);

}  // namespace deepnet
