// The single-process training loop (see the header for the step).
#include "train/trainer.h"

#include <algorithm>

#include "train/micro_batch.h"
#include "train/run_steps.h"
#include "train/signals.h"

namespace deepnet {
namespace {

// What this trainer runs: one rank. Pipelines go through the pipeline engine.
Status CheckSingleProcess(const config::RunConfig& config) {
  const config::ParallelConfig& parallel = config.parallel();
  if (parallel.pipeline_stages() != 1 || parallel.data_parallel() != 1) {
    return FailedPrecondition(
        "the single-process trainer runs parallel.pipeline_stages = 1 and "
        "parallel.data_parallel = 1 (got " +
        std::to_string(parallel.pipeline_stages()) + " and " +
        std::to_string(parallel.data_parallel()) + ")");
  }
  return OkStatus();
}

}  // namespace

Trainer::Trainer(const config::RunConfig& config, FileSystem& fs) : config_(config), fs_(fs) {}

Trainer::~Trainer() = default;

StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const config::RunConfig& config,
                                                   FileSystem& fs) {
  RETURN_IF_ERROR(CheckSingleProcess(config));
  std::unique_ptr<Trainer> trainer(new Trainer(config, fs));
  // The device first: a CUDA request without a usable GPU fails here, before any data is read.
  ASSIGN_OR_RETURN(trainer->backend_, OpenBackend(BackendKindOf(config.parallel())));
  LOG(INFO) << "device: " << DescribeDevice(*trainer->backend_) << " on " << HostName()
            << ", precision "
            << config::ParallelConfig::Precision_Name(config.parallel().precision());
  ASSIGN_OR_RETURN(trainer->data_, OpenTrainingData(trainer->config_));
  RETURN_IF_ERROR(trainer->BuildModel());
  // Before any restore: the freshly built parameters are θ_0 (they depend only on the seed).
  if (config.train().update_norm_every() > 0) RETURN_IF_ERROR(trainer->StartUpdateNorm());
  ASSIGN_OR_RETURN(const std::optional<std::string> resume,
                   CheckpointToResume(config, /*leader=*/true));
  if (resume.has_value()) RETURN_IF_ERROR(trainer->Restore(*resume));
  return trainer;
}

Status Trainer::BuildModel() {
  ModelBuildOptions options;
  options.seed = config_.train().seed();
  options.dtype = DType::kF32;
  options.compute_dtype = ComputeDTypeOf(config_.parallel());
  options.backend = backend_;
  options.pad_id = data_.train_shard->special_ids().pad;
  ASSIGN_OR_RETURN(model_, Model::Build(config_.model(), options));
  ASSIGN_OR_RETURN(ParameterUpdate update, CreateParameterUpdate(config_, Units(), *backend_));
  optimizer_ = std::move(update.optimizer);
  schedule_.emplace(update.schedule);
  return OkStatus();
}

std::vector<Unit*> Trainer::Units() {
  std::vector<Unit*> units;
  for (auto& unit : model_->units()) units.push_back(unit.get());
  return units;
}

Status Trainer::Restore(const std::string& checkpoint_dir) {
  ASSIGN_OR_RETURN(step_, RestoreCheckpoint(checkpoint_dir, config_, Units(), *optimizer_,
                                            *backend_, *data_.batcher));
  last_saved_step_ = step_;
  LOG(INFO) << "resumed from " << checkpoint_dir << " at step " << step_;
  return OkStatus();
}

Status Trainer::StartUpdateNorm() {
  if (data_.valid_plan.empty()) {
    return FailedPrecondition("train.update_norm_every: no validation data in " +
                              ValidShardPath(config_) + " to measure the update norm on");
  }
  const Batch probe = MakeBatch(*data_.valid_shard, data_.valid_plan.front());
  ASSIGN_OR_RETURN(UpdateNormProbe started,
                   UpdateNormProbe::Create(*model_, probe, Context(/*training=*/false)));
  update_norm_.emplace(std::move(started));
  return OkStatus();
}

StatusOr<double> Trainer::UpdateNorm() {
  if (!update_norm_.has_value()) return FailedPrecondition("train.update_norm_every is 0");
  return update_norm_->Measure(*model_);
}

StepContext Trainer::Context(bool training) const {
  return RunStepContext(config_, data_, *backend_, step_, training);
}

StatusOr<std::vector<MicroBatch>> Trainer::NextStepMicroBatches() {
  ASSIGN_OR_RETURN(std::vector<std::vector<MicroBatch>> flushes,
                   NextStepFlushes(config_, data_, config_.parallel().micro_batches(), *backend_));
  std::vector<MicroBatch> micro_batches;
  for (std::vector<MicroBatch>& flush : flushes) {
    for (MicroBatch& part : flush) micro_batches.push_back(std::move(part));
  }
  return micro_batches;
}

StatusOr<StepResult> Trainer::TrainStep() {
  ASSIGN_OR_RETURN(std::vector<MicroBatch> micro_batches, NextStepMicroBatches());
  int64_t step_tokens = 0;
  for (const MicroBatch& mb : micro_batches) step_tokens += mb.num_target_tokens;
  if (step_tokens == 0) return Internal("step " + std::to_string(step_) + " has no target tokens");

  StepContext ctx = Context(/*training=*/true);
  ctx.loss_scale = optimizer_->loss_scale() / static_cast<double>(step_tokens);
  model_->ZeroGrads();
  StepResult result;
  for (const MicroBatch& mb : micro_batches) {
    const Stream out = model_->ForwardBackward(ctx, mb);
    result.loss_sum += out.loss_sum;
    result.loss_tokens += out.loss_tokens;
  }
  model_->SumTiedGradients();
  result.lr = schedule_->LearningRate(step_);
  ASSIGN_OR_RETURN(result.optimizer, optimizer_->Step(result.lr, reducer_));
  ++step_;
  return result;
}

StatusOr<double> Trainer::ValidationLoss() {
  const StepContext ctx = Context(/*training=*/false);
  ASSIGN_OR_RETURN(const LossTotals totals,
                   SumValidationLoss(config_, data_, *backend_, /*replica=*/0, /*replicas=*/1,
                                     [&](const MicroBatch& mb) -> StatusOr<Stream> {
                                       return model_->Forward(ctx, mb);
                                     }));
  return MeanValidationLoss(totals.loss_sum, static_cast<double>(totals.loss_tokens));
}

TrainingState Trainer::State() const { return RunTrainingState(config_, data_, step_); }

Status Trainer::SaveCheckpoint() {
  const std::string& root = config_.checkpoint().dir();
  if (root.empty()) return FailedPrecondition("checkpoint.dir is empty");
  RETURN_IF_ERROR(optimizer_->CheckFinite().WithContext("not saving step " +
                                                        std::to_string(step_)));
  RETURN_IF_ERROR(deepnet::SaveCheckpoint(root, State(), Units(), *optimizer_, *backend_,
                                          config_.checkpoint().keep_last(), fs_));
  last_saved_step_ = step_;
  LOG(INFO) << "saved checkpoint " << root << "/" << CheckpointDirName(step_);
  return OkStatus();
}

Status Trainer::StopForRequeue() {
  return CheckpointForRequeue(config_, step_, last_saved_step_, /*leader=*/true,
                              [this] { return SaveCheckpoint(); });
}

bool Trainer::stop_requested() const { return StopRequested(); }

Status Trainer::Run() {
  LOG(INFO) << "training " << model_->num_parameters() << " parameters in "
            << model_->units().size() << " units on " << data_.train_shard->num_examples()
            << " examples, steps " << step_ << " -> " << config_.train().max_steps();
  return RunTrainingLoop(config_, /*leader=*/true, *this);
}

}  // namespace deepnet
