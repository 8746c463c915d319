// Step batches, validation loss and the stop for requeue, shared by both trainers.
#include "train/run_steps.h"

#include <glog/logging.h>

#include <string>
#include <utility>

#include "train/micro_batch.h"
#include "train/signals.h"

namespace deepnet {

StatusOr<std::vector<std::vector<MicroBatch>>> NextStepFlushes(const config::RunConfig& config,
                                                               TrainingData& data,
                                                               int parts_per_flush,
                                                               const Backend& backend) {
  std::vector<std::vector<MicroBatch>> flushes;
  for (int flush = 0; flush < config.train().accumulation_steps(); ++flush) {
    ASSIGN_OR_RETURN(Batch batch, data.batcher->Next());
    ASSIGN_OR_RETURN(std::vector<MicroBatch> parts,
                     ToMicroBatches(batch, parts_per_flush, flush * parts_per_flush, backend));
    flushes.push_back(std::move(parts));
  }
  return flushes;
}

StatusOr<LossTotals> SumValidationLoss(
    const config::RunConfig& config, const TrainingData& data, const Backend& backend, int replica,
    int replicas, const std::function<StatusOr<Stream>(const MicroBatch&)>& forward) {
  if (data.valid_shard == nullptr) {
    return NotFound("no validation data in " + ValidShardPath(config));
  }
  LossTotals totals;
  for (size_t b = 0; b < data.valid_plan.size(); ++b) {
    if (static_cast<int>(b % replicas) != replica) continue;
    const MicroBatch mb =
        ToMicroBatch(MakeBatch(*data.valid_shard, data.valid_plan[b]), 0, backend);
    ASSIGN_OR_RETURN(const Stream out, forward(mb));
    totals.loss_sum += out.loss_sum;
    totals.loss_tokens += out.loss_tokens;
  }
  return totals;
}

StatusOr<double> MeanValidationLoss(double loss_sum, double loss_tokens) {
  if (loss_tokens == 0) return NotFound("the validation shard has no target tokens");
  return loss_sum / loss_tokens;
}

Status CheckpointForRequeue(const config::RunConfig& config, int64_t step, int64_t last_saved_step,
                            bool leader, const std::function<Status()>& save) {
  if (leader) {
    LOG(WARNING) << "stop requested at step " << step
                 << ": saving a checkpoint and exiting for requeue"
                 << (StopSignal() != 0 ? " (signal " + std::to_string(StopSignal()) + " here)"
                                       : std::string());
  }
  if (config.checkpoint().dir().empty()) {
    LOG_IF(WARNING, leader) << "checkpoint.dir is empty: nothing saved";
  } else if (last_saved_step != step) {
    RETURN_IF_ERROR(save());
  }
  return StoppedForRequeue(step);
}

}  // namespace deepnet
