// The trainer's mean micro-batch shape (see the header).
#include "profile/micro_batch_shape.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "text/batcher.h"
#include "text/shard.h"
#include "train/run_setup.h"

namespace deepnet {
namespace {

constexpr int64_t kDefaultLength = 32;

}  // namespace

MicroBatchShape MeanMicroBatchShape(const config::RunConfig& config) {
  MicroBatchShape result;
  ProfileShape& shape = result.shape;
  shape.source_len = shape.target_len = kDefaultLength;
  shape.batch = std::max<int64_t>(1, config.data().max_tokens_per_batch() / (2 * kDefaultLength));
  result.source = "default lengths (no shard at " + TrainShardPath(config) + ")";
  StatusOr<ShardReader> shard = ShardReader::Open(TrainShardPath(config));
  if (!shard.ok() || shard->num_examples() == 0) return result;
  const std::vector<int32_t> source_lengths = shard->source_lengths();
  const std::vector<int32_t> target_lengths = shard->target_lengths();
  StatusOr<std::vector<std::vector<int64_t>>> plan =
      PlanEpoch(source_lengths, target_lengths, TrainBatcherOptions(config), 0);
  if (!plan.ok() || plan->empty()) return result;
  const int64_t parts = int64_t{std::max(1, config.parallel().micro_batches())} *
                        std::max(1, config.parallel().data_parallel());
  // One global batch as a step: rows per micro-batch, padded to its longest source and target.
  auto step_of = [&](const std::vector<int64_t>& batch) {
    StepShape step{.rows = static_cast<double>(batch.size()) / static_cast<double>(parts),
                   .source_len = 1,
                   .target_len = 1};
    for (const int64_t e : batch) {
      step.source_len = std::max<int64_t>(step.source_len, source_lengths[e]);
      step.target_len = std::max<int64_t>(step.target_len, target_lengths[e]);
    }
    return step;
  };
  // Means over the batches of b·S, b·S², b·T and b·T² (b = rows per micro-batch).
  double bs = 0, bss = 0, bt = 0, btt = 0;
  int64_t fewest_rows = static_cast<int64_t>((*plan)[0].size());
  for (const std::vector<int64_t>& batch : *plan) {
    const StepShape step = step_of(batch);
    const double b = step.rows, s = static_cast<double>(step.source_len),
                 t = static_cast<double>(step.target_len);
    bs += b * s;
    bss += b * s * s;
    bt += b * t;
    btt += b * t * t;
    fewest_rows = std::min(fewest_rows, static_cast<int64_t>(batch.size()));
  }
  // Rows b* and length S* with b*·S* = E[b·S] and b*·S*² = E[b·S²]: S* = E[b·S²] / E[b·S],
  // b* = E[b·S] / S*; the same for T; the rows are the mean of the two b*.
  const double source = bss / bs, target = btt / bt;
  result.mean_rows = 0.5 * (bs / source + bt / target) / static_cast<double>(plan->size());
  result.mean_source_tokens = bs / static_cast<double>(plan->size());
  result.mean_target_tokens = bt / static_cast<double>(plan->size());
  shape.batch = std::max<int64_t>(1, std::llround(result.mean_rows));
  shape.source_len = std::max<int64_t>(1, std::llround(source));
  shape.target_len = std::max<int64_t>(1, std::llround(target));
  result.fewest_rows = fewest_rows;
  const size_t count = std::min(plan->size(), static_cast<size_t>(kSampledSteps));
  for (size_t i = 0; i < count; ++i) {
    result.sampled_steps.push_back(step_of((*plan)[i * plan->size() / count]));
  }
  result.source = "the work-weighted mean micro-batch of " + std::to_string(plan->size()) +
                  " training batches in " + TrainShardPath(config);
  return result;
}

}  // namespace deepnet
