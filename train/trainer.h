// Trainer: the single-process training loop (one rank holds every unit).
//
// A step, as in llm.c:
//   zero grads; loss_scale = 1 / (non-pad target tokens of the whole step)
//   for each micro-batch: Model::ForwardBackward        (parameter gradients accumulate)
//   SumTiedGradients; global grad norm, clip, Adam(W) update with the scheduled learning rate
// A step takes train.micro_batches batches from the batcher (gradient accumulation), each split
// into parallel.micro_batches micro-batches, numbered 0.. within the step for the dropout streams.
//
// Everything that influences the numbers — parameters, moments, update count, data position, seed
// — is in the checkpoint, so training k steps, restarting the process from the checkpoint and
// training k more is bit-identical to 2k uninterrupted steps.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "configs/deepnet.pb.h"
#include "model/model.h"
#include "runtime/atomic_file.h"
#include "runtime/status.h"
#include "text/batcher.h"
#include "text/shard.h"
#include "train/checkpoint.h"
#include "train/lr_schedule.h"
#include "train/optimizer.h"
#include "train/run_setup.h"

namespace deepnet {

struct StepResult {
  double loss_sum = 0.0;    // Σ token losses (label-smoothed) of the step
  int64_t loss_tokens = 0;  // non-pad target tokens of the step
  double lr = 0.0;
  OptimizerStepStats optimizer;
};

class Trainer {
 public:
  // Opens the shards in data.data_dir, builds the model (model.vocab_size 0 = the shard's) and the
  // optimizer, and — with checkpoint.resume — continues from the newest checkpoint in
  // checkpoint.dir if there is one.
  static StatusOr<std::unique_ptr<Trainer>> Create(const config::RunConfig& config,
                                                   FileSystem& fs = LocalFileSystem());
  ~Trainer();

  // Trains up to train.max_steps with progress lines, validation and checkpoints (and a final
  // checkpoint when checkpoint.dir is set). After SIGUSR1 / SIGTERM (train/signals.h) it saves a
  // checkpoint at the end of the current step and returns StoppedForRequeue.
  Status Run();

  StatusOr<StepResult> TrainStep();
  // Mean loss per target token over the validation shard, dropout off. NotFound without one.
  StatusOr<double> ValidationLoss();
  Status SaveCheckpoint();

  int64_t step() const { return step_; }
  Model& model() { return *model_; }
  Optimizer& optimizer() { return *optimizer_; }
  // The run's config with model.vocab_size resolved.
  const config::RunConfig& config() const { return config_; }
  TrainingState State() const;

 private:
  explicit Trainer(const config::RunConfig& config, FileSystem& fs);
  Status OpenData();
  Status BuildModel();
  Status Restore(const std::string& checkpoint_dir);
  Status StopForRequeue();
  StatusOr<std::vector<MicroBatch>> NextStepMicroBatches();
  StepContext Context(bool training) const;
  std::vector<Unit*> Units();

  config::RunConfig config_;
  FileSystem& fs_;
  const Backend* backend_ = nullptr;
  std::unique_ptr<ShardReader> train_shard_;
  std::unique_ptr<ShardReader> valid_shard_;  // null without validation data
  std::optional<Batcher> batcher_;
  std::vector<std::vector<int64_t>> valid_plan_;  // example ids of each validation batch
  std::unique_ptr<Model> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::optional<LrSchedule> schedule_;
  LocalGradNormReducer reducer_;
  int64_t step_ = 0;
  int64_t last_saved_step_ = -1;
};

}  // namespace deepnet
