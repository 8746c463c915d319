// PipelineTrainer checkpoints: per-stage files, one commit by rank 0, resume on every rank.
#include <filesystem>

#include "parallel/pipeline_trainer.h"
#include "train/checkpoint.h"

namespace deepnet {

TrainingState PipelineTrainer::State() const { return RunTrainingState(config_, data_, step_); }

Status PipelineTrainer::SaveCheckpoint() {
  const std::string& root = config_.checkpoint().dir();
  if (root.empty()) return FailedPrecondition("checkpoint.dir is empty");
  const std::filesystem::path dir = std::filesystem::path(root) / CheckpointDirName(step_);
  // Poisoned state is never saved: every rank checks its own parameters and moments first.
  Status local = optimizer_->CheckFinite().WithContext("not saving step " + std::to_string(step_));
  RETURN_IF_ERROR(AllRanksOk(world_, local).WithContext("checkpoint"));
  // A one-process checkpoint of the same step would shadow the stage files: remove it first,
  // with what interrupted saves left behind.
  if (world_.rank() == 0) {
    local = RemoveStaleCheckpointFiles(root, step_);
    for (const char* name : {kParamsFileName, kOptimizerFileName}) {
      if (local.ok() && std::filesystem::exists(dir / name)) {
        local = fs_.DeleteFile((dir / name).string());
      }
    }
  }
  RETURN_IF_ERROR(AllRanksOk(world_, local).WithContext("checkpoint"));
  if (grid_->replica() == 0) {
    local = SaveStageFiles(root, step_, grid_->stage(), Units(), *optimizer_, *backend_, fs_);
  }
  RETURN_IF_ERROR(AllRanksOk(world_, local).WithContext("checkpoint, stage files"));
  if (world_.rank() == 0) {
    local = CommitCheckpoint(root, State(), config_.checkpoint().keep_last(), fs_);
  }
  RETURN_IF_ERROR(AllRanksOk(world_, local).WithContext("checkpoint, commit"));
  last_saved_step_ = step_;
  LOG_IF(INFO, world_.rank() == 0) << "saved checkpoint " << dir.string();
  return OkStatus();
}

Status PipelineTrainer::Restore(const std::string& checkpoint_dir) {
  ASSIGN_OR_RETURN(step_, RestoreCheckpoint(checkpoint_dir, config_, Units(), *optimizer_,
                                            *backend_, *data_.batcher));
  last_saved_step_ = step_;
  LOG_IF(INFO, world_.rank() == 0) << "resumed from " << checkpoint_dir << " at step " << step_;
  return OkStatus();
}

Status PipelineTrainer::MaybeResume() {
  const StatusOr<std::optional<std::string>> resume =
      CheckpointToResume(config_, /*leader=*/world_.rank() == 0);
  Status local = resume.status();
  if (resume.ok() && resume->has_value()) local = Restore(**resume);
  return AllRanksOk(world_, local).WithContext("resume");
}

}  // namespace deepnet
