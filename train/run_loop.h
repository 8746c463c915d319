// The run loop both trainers share: steps to train.max_steps with progress lines, validation,
// checkpoints, and a clean stop (checkpoint, then StoppedForRequeue) when a stop was requested.
#pragma once

#include <cstdint>

#include "configs/deepnet.pb.h"
#include "runtime/status.h"
#include "train/optimizer.h"

namespace deepnet {

struct StepResult {
  double loss_sum = 0.0;    // Σ token losses (label-smoothed) of the step
  int64_t loss_tokens = 0;  // non-pad target tokens of the step
  double lr = 0.0;
  OptimizerStepStats optimizer;
};

// What the loop drives. For a pipeline every call is collective: all ranks run the same loop.
class LoopTrainer {
 public:
  virtual ~LoopTrainer() = default;
  virtual int64_t step() const = 0;
  virtual StatusOr<StepResult> TrainStep() = 0;
  virtual bool has_validation() const = 0;
  virtual StatusOr<double> ValidationLoss() = 0;
  virtual Status SaveCheckpoint() = 0;
  virtual int64_t last_saved_step() const = 0;
  // After the step just taken: a stop was requested (every rank agrees on the answer).
  virtual bool stop_requested() const = 0;
  // Saves a checkpoint unless the step is saved already; returns StoppedForRequeue.
  virtual Status StopForRequeue() = 0;
  // ||F(x; θ_t) − F(x; θ_0)|| on the fixed probe batch (train.update_norm_every,
  // train/update_norm.h).
  virtual StatusOr<double> UpdateNorm() {
    return Unimplemented("train.update_norm_every: this trainer does not measure the update norm");
  }
};

// Runs `trainer` from its step to config.train().max_steps, then saves a final checkpoint when
// checkpoint.dir is set. Only the leader logs and writes logging.json_metrics. A step with
// non-finite gradients (skipped by the optimizer) is logged; train.max_consecutive_skips of them
// in a row stop the run with an error. A loss or gradient norm above train.spike_factor times the
// median of the last 50 steps is logged as a spike. Every train.update_norm_every steps the
// update norm is logged. A run already past max_steps is an error.
Status RunTrainingLoop(const config::RunConfig& config, bool leader, LoopTrainer& trainer);

}  // namespace deepnet
