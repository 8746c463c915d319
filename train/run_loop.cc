// The shared run loop (see the header).
#include "train/run_loop.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include "train/progress.h"
#include "train/signals.h"

namespace deepnet {
namespace {

// A value far above the recent median: a loss or gradient-norm spike worth a warning.
class SpikeWatch {
 public:
  static constexpr size_t kWindow = 50;
  static constexpr size_t kMinHistory = 3;  // no verdict before this many steps

  explicit SpikeWatch(double factor) : factor_(factor) {}

  // The median the value exceeds by more than the factor, or 0 when it is no spike.
  double Add(double value) {
    if (factor_ <= 0.0 || !std::isfinite(value)) return 0.0;
    double median = 0.0;
    if (recent_.size() >= kMinHistory) {
      std::vector<double> sorted(recent_.begin(), recent_.end());
      std::nth_element(sorted.begin(), sorted.begin() + sorted.size() / 2, sorted.end());
      median = sorted[sorted.size() / 2];
    }
    recent_.push_back(value);
    if (recent_.size() > kWindow) recent_.pop_front();
    return median > 0.0 && value > factor_ * median ? median : 0.0;
  }

 private:
  double factor_;
  std::deque<double> recent_;
};

std::string Number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.4g", value);
  return text;
}

}  // namespace

Status RunTrainingLoop(const config::RunConfig& config, bool leader, LoopTrainer& trainer) {
  const int64_t max_steps = config.train().max_steps();
  const int64_t log_every = std::max<int64_t>(1, config.logging().log_every());
  const int64_t valid_every = config.train().valid_every();
  const int64_t checkpoint_every = config.checkpoint().every_steps();
  const int64_t update_norm_every = config.train().update_norm_every();
  const bool checkpoints = !config.checkpoint().dir().empty();
  const int max_skips = std::max(1, config.train().max_consecutive_skips());
  if (trainer.step() > max_steps) {
    return FailedPrecondition("the run is at step " + std::to_string(trainer.step()) +
                              ", past train.max_steps " + std::to_string(max_steps) +
                              ": nothing to train; raise train.max_steps to continue");
  }
  LOG_IF(INFO, leader && trainer.step() == max_steps)
      << "already at train.max_steps " << max_steps << ": nothing to train";
  ASSIGN_OR_RETURN(MetricsWriter metrics,
                   MetricsWriter::Open(leader ? config.logging().json_metrics() : ""));
  InstallStopSignalHandlers();  // SIGUSR1 / SIGTERM: checkpoint after this step, then stop
  ProgressMeter meter(trainer.step(), max_steps);
  SpikeWatch loss_watch(config.train().spike_factor());
  SpikeWatch norm_watch(config.train().spike_factor());
  int consecutive_skips = 0;
  while (trainer.step() < max_steps) {
    ASSIGN_OR_RETURN(const StepResult result, trainer.TrainStep());
    const int64_t step = trainer.step();
    const OptimizerStepStats& update = result.optimizer;
    const double loss = result.loss_sum / static_cast<double>(std::max<int64_t>(1, result.loss_tokens));
    if (update.skipped) {
      ++consecutive_skips;
      LOG_IF(WARNING, leader) << "step " << step << ": gradients not finite (loss " << Number(loss)
                              << (update.loss_scale != 1.0
                                      ? ", loss scale " + Number(update.loss_scale) + " -> " +
                                            Number(update.next_loss_scale)
                                      : std::string())
                              << "): update skipped, " << consecutive_skips << " in a row, "
                              << update.skipped_steps << " in all";
      if (consecutive_skips >= max_skips) {
        return FailedPrecondition(
            "step " + std::to_string(step) + ": " + std::to_string(consecutive_skips) +
            " steps in a row had non-finite gradients (train.max_consecutive_skips): training "
            "diverged. No checkpoint was written during them; resume from the last one with a "
            "lower optimizer.lr or a train.clip_norm");
      }
    } else {
      consecutive_skips = 0;
      if (const double median = loss_watch.Add(loss); median > 0.0) {
        LOG_IF(WARNING, leader) << "step " << step << ": loss spike " << Number(loss) << " ("
                                << Number(loss / median) << "x the median " << Number(median)
                                << " of recent steps)";
      }
      if (const double median = norm_watch.Add(update.grad_norm); median > 0.0) {
        LOG_IF(WARNING, leader) << "step " << step << ": gradient-norm spike "
                                << Number(update.grad_norm) << " ("
                                << Number(update.grad_norm / median) << "x the median "
                                << Number(median) << " of recent steps)";
      }
    }
    meter.AddStep(result.loss_sum, result.loss_tokens, result.lr, update.grad_norm);
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
    if (update_norm_every > 0 && step % update_norm_every == 0) {
      ASSIGN_OR_RETURN(const double update_norm, trainer.UpdateNorm());
      LOG_IF(INFO, leader) << "step " << step << " | update norm " << Number(update_norm);
      RETURN_IF_ERROR(metrics.WriteUpdateNorm(step, update_norm));
    }
    if (checkpoints && checkpoint_every > 0 && step % checkpoint_every == 0) {
      // Inside a run of skipped steps the state is suspect (a diverging run's weights are finite
      // but wild): keep the last checkpoint from before it.
      if (consecutive_skips > 0) {
        LOG_IF(WARNING, leader) << "step " << step << ": no checkpoint while steps are skipped";
      } else {
        RETURN_IF_ERROR(trainer.SaveCheckpoint());
      }
    }
    if (trainer.stop_requested() && step < max_steps) return trainer.StopForRequeue();
  }
  if (checkpoints && trainer.last_saved_step() != trainer.step() && consecutive_skips == 0) {
    RETURN_IF_ERROR(trainer.SaveCheckpoint());
  }
  return OkStatus();
}

}  // namespace deepnet
