// The micro-batch shape training will run: the mean over the first epoch of the trainer's own
// batcher (profile and plan measure units at it).
//
// Letters: B sentences per micro-batch, S source length, T target length.
#pragma once

#include <cstdint>
#include <string>

#include "configs/deepnet.pb.h"
#include "profile/unit_profiler.h"

namespace deepnet {

struct MicroBatchShape {
  ProfileShape shape;
  // The fewest rows of any global batch of the epoch (a step needs at least one row per
  // micro-batch); 0 when there is no shard to look at.
  int64_t fewest_rows = 0;
  // The mean rows per micro-batch before rounding to shape.batch (0: no shard): a unit's time
  // grows with its rows, so the profiler times both neighbours of a fractional mean.
  double mean_rows = 0.0;
  std::string source;  // where the shape came from, for the log
};

// Every global batch of epoch 0 split over the replicas and parallel.micro_batches, rows padded to
// the batch's longest source and target, averaged (rounded). Without a prepared shard: 32-token
// rows filling data.max_tokens_per_batch.
MicroBatchShape MeanMicroBatchShape(const config::RunConfig& config);

}  // namespace deepnet
