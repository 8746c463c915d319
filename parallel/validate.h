// Schedule validator: checks every rank's action list against the others, without running
// anything. Letters as in schedule.h (p ranks = the number of lists, m micro-batches); local chunk
// c of rank r is model chunk placement.ModelChunk(r, c).
//
// Checked, in this order (the first violation is returned, naming rank, index and action):
// - fields: micro-batch in [0, m), chunk among the rank's chunks, each send/recv addressed to the
//   rank that holds the neighbouring model chunk (none between two chunks of one rank); compute
//   actions outside groups, communication inside a group, a group's actions adjacent and group ids
//   ascending;
// - per rank, in list order: forward of (mb, c) after its recv-activation (except model chunk 0;
//   after the forward of chunk k−1 when that is on the same rank), backward / B after the forward
//   and after the recv-gradient (except the last model chunk; after B of chunk k+1 when local),
//   W after B, sends after the compute that produces them; forwards, backwards and W passes of a
//   chunk in ascending micro-batch order; every (mb, c) forwarded, backwarded and, when split,
//   W-passed exactly once; ReduceGradients after all compute, OptimizerStep right after it;
// - activations held at once on a rank (forwards not yet released by backward or W, all chunks
//   together) within max_activations;
// - across ranks, every send has exactly one matching recv (same kind, micro-batch, model edge,
//   peers) and every recv a send.
// Deadlock freedom depends on timing and grouping, not just order: simulator.h checks it.
#pragma once

#include <optional>
#include <vector>

#include "parallel/schedule.h"
#include "runtime/status.h"

namespace deepnet {

struct ValidateOptions {
  int micro_batches = 1;   // m
  int virtual_chunks = 1;  // v, for the default placement
  // Where the model chunks live; unset = ChunkPlacement::Looped(p, virtual_chunks).
  std::optional<ChunkPlacement> placement;
  int max_activations = 0;     // most micro-batch activations a rank may hold; 0 = no limit
  bool optimizer_step = true;  // lists must end with ReduceGradients, OptimizerStep
};

Status ValidateSchedules(const std::vector<std::vector<Action>>& ranks,
                         const ValidateOptions& options);

}  // namespace deepnet
