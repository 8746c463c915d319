// The shared run loop (see the header).
#include "train/run_loop.h"

#include <algorithm>

#include "train/progress.h"
#include "train/signals.h"

namespace deepnet {

Status RunTrainingLoop(const config::RunConfig& config, bool leader, LoopTrainer& trainer) {
  const int64_t max_steps = config.train().max_steps();
  const int64_t log_every = std::max<int64_t>(1, config.logging().log_every());
  const int64_t valid_every = config.train().valid_every();
  const int64_t checkpoint_every = config.checkpoint().every_steps();
  const bool checkpoints = !config.checkpoint().dir().empty();
  ASSIGN_OR_RETURN(MetricsWriter metrics,
                   MetricsWriter::Open(leader ? config.logging().json_metrics() : ""));
  InstallStopSignalHandlers();  // SIGUSR1 / SIGTERM: checkpoint after this step, then stop
  ProgressMeter meter(trainer.step(), max_steps);
  while (trainer.step() < max_steps) {
    ASSIGN_OR_RETURN(const StepResult result, trainer.TrainStep());
    const int64_t step = trainer.step();
    meter.AddStep(result.loss_sum, result.loss_tokens, result.lr, result.optimizer.grad_norm);
    if (step % log_every == 0 || step == max_steps) {
      const ProgressRecord record = meter.TakeRecord(step);
      LOG_IF(INFO, leader) << FormatProgressLine(record, max_steps);
      RETURN_IF_ERROR(metrics.WriteProgress(record));
    }
    if (valid_every > 0 && trainer.has_validation() && step % valid_every == 0) {
      ASSIGN_OR_RETURN(const double valid_loss, trainer.ValidationLoss());
      LOG_IF(INFO, leader) << "step " << step << " | valid loss " << valid_loss;
      RETURN_IF_ERROR(metrics.WriteValidation(step, valid_loss));
    }
    if (checkpoints && checkpoint_every > 0 && step % checkpoint_every == 0) {
      RETURN_IF_ERROR(trainer.SaveCheckpoint());
    }
    if (trainer.stop_requested() && step < max_steps) return trainer.StopForRequeue();
  }
  if (checkpoints && trainer.last_saved_step() != trainer.step()) {
    RETURN_IF_ERROR(trainer.SaveCheckpoint());
  }
  return OkStatus();
}

}  // namespace deepnet
