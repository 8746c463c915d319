// Trainer: the single-process training loop (one rank holds every unit).
//
// A step, as in llm.c:
//   zero grads; loss_scale = 1 / (non-pad target tokens of the whole step)
//   for each micro-batch: Model::ForwardBackward        (parameter gradients accumulate)
//   SumTiedGradients; global grad norm, clip, Adam(W) update with the scheduled learning rate
// A step takes train.accumulation_steps batches from the batcher (gradient accumulation), each
// split into parallel.micro_batches micro-batches, numbered 0.. within the step for the dropout
// streams.
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
#include "train/run_loop.h"
#include "train/run_setup.h"
#include "train/update_norm.h"

namespace deepnet {

class Trainer final : public LoopTrainer {
 public:
  // Opens the shards in data.data_dir, builds the model (model.vocab_size 0 = the shard's) and the
  // optimizer, and — with checkpoint.resume — continues from the newest checkpoint in
  // checkpoint.dir if there is one.
  static StatusOr<std::unique_ptr<Trainer>> Create(const config::RunConfig& config,
                                                   FileSystem& fs = LocalFileSystem());
  ~Trainer() override;

  // Trains up to train.max_steps with progress lines, validation and checkpoints (and a final
  // checkpoint when checkpoint.dir is set). After SIGUSR1 / SIGTERM (train/signals.h) it saves a
  // checkpoint at the end of the current step and returns StoppedForRequeue.
  Status Run();

  StatusOr<StepResult> TrainStep() override;
  // Mean loss per target token over the validation shard, dropout off. NotFound without one.
  StatusOr<double> ValidationLoss() override;
  bool has_validation() const override { return data_.valid_shard != nullptr; }
  Status SaveCheckpoint() override;
  int64_t last_saved_step() const override { return last_saved_step_; }
  bool stop_requested() const override;
  Status StopForRequeue() override;
  StatusOr<double> UpdateNorm() override;

  int64_t step() const override { return step_; }
  Model& model() { return *model_; }
  Optimizer& optimizer() { return *optimizer_; }
  // The run's config with model.vocab_size resolved.
  const config::RunConfig& config() const { return config_; }
  TrainingState State() const;

 private:
  explicit Trainer(const config::RunConfig& config, FileSystem& fs);
  Status BuildModel();
  Status Restore(const std::string& checkpoint_dir);
  Status StartUpdateNorm();
  StatusOr<std::vector<MicroBatch>> NextStepMicroBatches();
  StepContext Context(bool training) const;
  std::vector<Unit*> Units();

  config::RunConfig config_;
  FileSystem& fs_;
  const Backend* backend_ = nullptr;
  TrainingData data_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Optimizer> optimizer_;
  std::optional<LrSchedule> schedule_;
  LocalGradNormReducer reducer_;
  int64_t step_ = 0;
  int64_t last_saved_step_ = -1;
  std::optional<UpdateNormProbe> update_norm_;  // train.update_norm_every > 0
};

}  // namespace deepnet
