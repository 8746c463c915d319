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
  double rows = 0, source_len = 0, target_len = 0;
  int64_t fewest_rows = static_cast<int64_t>((*plan)[0].size());
  for (const std::vector<int64_t>& batch : *plan) {
    int32_t longest_source = 1, longest_target = 1;
    for (const int64_t e : batch) {
      longest_source = std::max(longest_source, source_lengths[e]);
      longest_target = std::max(longest_target, target_lengths[e]);
    }
    rows += static_cast<double>(batch.size()) / static_cast<double>(parts);
    fewest_rows = std::min(fewest_rows, static_cast<int64_t>(batch.size()));
    source_len += longest_source;
    target_len += longest_target;
  }
  const double batches = static_cast<double>(plan->size());
  result.mean_rows = rows / batches;
  shape.batch = std::max<int64_t>(1, std::llround(result.mean_rows));
  shape.source_len = std::max<int64_t>(1, std::llround(source_len / batches));
  shape.target_len = std::max<int64_t>(1, std::llround(target_len / batches));
  result.fewest_rows = fewest_rows;
  result.source = "the mean padded micro-batch of " + std::to_string(plan->size()) +
                  " training batches in " + TrainShardPath(config);
  return result;
}

}  // namespace deepnet
