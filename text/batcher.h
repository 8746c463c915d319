// Batcher: token-budget batches over a shard, bucketed by length, deterministic and resumable.
//
// Letters: B examples in a batch, S source length and T target length (padded to the longest row).
//
// An epoch's plan is a pure function of (lengths, options, epoch): the examples are permuted by a
// Philox stream of (seed, epoch), cut into windows of `sort_window` examples, each window sorted
// by (source, target) length (stable, so ties keep the random order), packed greedily into
// batches while B * (S + T) <= max_tokens, and the batch order is permuted again. Replica r of R
// takes global batches r, r + R, r + 2R, ...; the plan first splits its largest batches until
// the count divides by R, so every replica gets the same number of batches and every example
// appears exactly once per epoch. The position (epoch, batch) saved after a step and restored
// with Seek() gives back exactly the batches that would have come next.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/status.h"
#include "text/shard.h"

namespace deepnet {

struct Batch {
  int64_t batch_size = 0;                // B
  int64_t source_len = 0;                // S
  int64_t target_len = 0;                // T
  std::vector<int32_t> source;           // (B, S) pieces + </s>, then pad
  std::vector<uint8_t> source_pad_mask;  // (B, S) 1 where source is pad
  std::vector<int32_t> decoder_input;    // (B, T) <s> + pieces, then pad
  std::vector<int32_t> target;           // (B, T) pieces + </s>, then pad
  std::vector<int64_t> example_ids;      // (B) shard index of each row
  std::vector<int32_t> source_lengths;   // (B) non-pad tokens of each source row
  std::vector<int32_t> target_lengths;   // (B) non-pad tokens of each target row
  int64_t num_source_tokens = 0;         // non-pad entries of source
  int64_t num_target_tokens = 0;         // non-pad entries of target (the loss normaliser)
};

struct BatcherOptions {
  int64_t max_tokens = 4096;  // padded budget per batch: B * S + B * T
  int64_t max_sentences = 0;  // cap on B; 0 = none
  int64_t sort_window = 0;    // examples sorted together; 0 = the whole epoch (least padding)
  bool shuffle = true;        // false: file order into the sort, batches in length order
  uint64_t seed = 1;
  int replica = 0;  // data-parallel rank in [0, num_replicas)
  int num_replicas = 1;
};

// Where a replica is in the data: the next batch to hand out is `batch` of `epoch`.
struct BatchPosition {
  int64_t epoch = 0;
  int64_t batch = 0;  // index among this replica's batches of the epoch
  bool operator==(const BatchPosition&) const = default;
};

// Example ids of every global batch of `epoch` (all replicas), in hand-out order.
StatusOr<std::vector<std::vector<int64_t>>> PlanEpoch(std::span<const int32_t> source_lengths,
                                                      std::span<const int32_t> target_lengths,
                                                      const BatcherOptions& options, int64_t epoch);

// Pads the examples into one batch (rows in the given order).
Batch MakeBatch(const ShardReader& shard, std::span<const int64_t> example_ids);

// Splits along B into `num_micro_batches` consecutive parts as equal as possible (the first
// B % m get one more row), each with its own token counts. Every part keeps the parent's S and
// T, so all micro-batches of a step share one shape.
StatusOr<std::vector<Batch>> SplitBatch(const Batch& batch, int num_micro_batches);

class Batcher {
 public:
  // `shard` must outlive the batcher.
  static StatusOr<Batcher> Create(const ShardReader* shard, const BatcherOptions& options);

  // The next batch of this replica; moves to the next epoch after the last one.
  StatusOr<Batch> Next();

  // This replica's batches in the current epoch (the same on every replica; with a sort window
  // smaller than the epoch it can differ slightly between epochs).
  int64_t batches_in_epoch() const { return static_cast<int64_t>(plan_.size()) / replicas(); }
  const BatchPosition& position() const { return position_; }
  // Restores a saved position; batch may equal batches_in_epoch() (the epoch is finished).
  Status Seek(const BatchPosition& position);

 private:
  Batcher(const ShardReader* shard, const BatcherOptions& options);
  Status LoadEpoch(int64_t epoch);
  int64_t replicas() const { return options_.num_replicas; }

  const ShardReader* shard_;
  BatcherOptions options_;
  std::vector<int32_t> source_lengths_;  // (E)
  std::vector<int32_t> target_lengths_;  // (E)
  BatchPosition position_;
  int64_t plan_epoch_ = -1;
  std::vector<std::vector<int64_t>> plan_;  // global batches of plan_epoch_
};

}  // namespace deepnet
