// The pieces of a training run that both trainers (train/trainer.h and parallel/'s pipeline
// trainer) take the same way: the batches of a step, the validation loss over the validation
// batches, and the checkpoint before a stop for requeue.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "configs/deepnet.pb.h"
#include "kernels/backend.h"
#include "model/unit.h"
#include "runtime/status.h"
#include "train/run_setup.h"

namespace deepnet {

// The micro-batches of one training step: train.accumulation_steps flushes (gradients summed
// before one update), each one batch of the training batcher split into `parts_per_flush`
// micro-batches, numbered through the step (the numbers key the dropout streams).
StatusOr<std::vector<std::vector<MicroBatch>>> NextStepFlushes(const config::RunConfig& config,
                                                               TrainingData& data,
                                                               int parts_per_flush,
                                                               const Backend& backend);

struct LossTotals {
  double loss_sum = 0.0;    // Σ token losses
  int64_t loss_tokens = 0;  // non-pad target tokens
};

// The validation batches of data.valid_plan that `replica` of `replicas` owns (batch b goes to
// replica b mod replicas), each through `forward`, summed in order. NotFound without a
// validation shard.
StatusOr<LossTotals> SumValidationLoss(
    const config::RunConfig& config, const TrainingData& data, const Backend& backend, int replica,
    int replicas, const std::function<StatusOr<Stream>(const MicroBatch&)>& forward);

// loss_sum / loss_tokens of the whole validation set; NotFound when it has no target tokens.
StatusOr<double> MeanValidationLoss(double loss_sum, double loss_tokens);

// On a requested stop: saves a checkpoint through `save` unless `step` is saved already (or
// checkpoint.dir is empty: nothing to save, said), then returns StoppedForRequeue. Only the
// leader logs.
Status CheckpointForRequeue(const config::RunConfig& config, int64_t step, int64_t last_saved_step,
                            bool leader, const std::function<Status()>& save);

}  // namespace deepnet
