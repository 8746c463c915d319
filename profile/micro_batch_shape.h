// The micro-batch shape training will run: the work-weighted mean over the first epoch of the
// trainer's own batcher (profile and plan measure units at it).
//
// Letters: B sentences per micro-batch, S source length, T target length.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "configs/deepnet.pb.h"
#include "profile/unit_profiler.h"

namespace deepnet {

// One step of the data: rows per micro-batch (global rows / (micro-batches × replicas), so
// fractional) and the padded lengths every micro-batch of the step shares.
struct StepShape {
  double rows = 0.0;
  int64_t source_len = 0;
  int64_t target_len = 0;
};

// Steps of epoch 0 that MicroBatchShape samples (evenly spaced) for predictions over the data.
inline constexpr int kSampledSteps = 64;

struct MicroBatchShape {
  ProfileShape shape;
  // The fewest rows of any global batch of the epoch (a step needs at least one row per
  // micro-batch); 0 when there is no shard to look at.
  int64_t fewest_rows = 0;
  // The work-weighted rows per micro-batch before rounding to shape.batch (0: no shard): a unit's
  // time grows with its rows, so the profiler times both neighbours of a fractional count.
  double mean_rows = 0.0;
  // Mean padded source and target tokens (rows × length) per micro-batch; 0 without a shard.
  double mean_source_tokens = 0.0;
  double mean_target_tokens = 0.0;
  // Up to kSampledSteps steps of epoch 0, evenly spaced, in order; empty without a shard.
  std::vector<StepShape> sampled_steps;
  std::string source;  // where the shape came from, for the log
};

// Every global batch of epoch 0 split over the replicas and parallel.micro_batches, rows padded to
// the batch's longest source and target (all micro-batches of a step share that shape). Not the
// plain means: batches are packed by tokens, so long rows come in few-row batches, and
// mean rows × mean length overstates the mean tokens (by 14 % for the 1,000-layer config). The
// shape is the one whose work matches the epoch's mean work in its linear terms (rows × length:
// projections, FFN, norms) and its quadratic ones (rows × length²: attention): length L* =
// E[b·L²] / E[b·L] for the source and the target, rows = E[b·L] / L* (the mean of the two). Without
// a prepared shard: 32-token rows filling data.max_tokens_per_batch.
MicroBatchShape MeanMicroBatchShape(const config::RunConfig& config);

}  // namespace deepnet
