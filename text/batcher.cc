#include "text/batcher.h"

#include <algorithm>
#include <numeric>

#include "runtime/philox.h"

namespace deepnet {
namespace {

// Philox streams of one epoch: one to order the examples, one to order the batches.
constexpr uint32_t kExampleStream = 1;
constexpr uint32_t kBatchStream = 2;

// A uniform index in [0, n) for draw `i` of `stream`; 64 random bits make the modulo bias
// negligible for any n that fits in memory.
uint64_t UniformIndex(uint64_t seed, int64_t epoch, uint32_t stream, uint64_t i, uint64_t n) {
  const Philox4x32 bits =
      Philox4x32_10({{static_cast<uint32_t>(i), static_cast<uint32_t>(i >> 32),
                      static_cast<uint32_t>(epoch), stream}},
                    static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  const uint64_t word = (static_cast<uint64_t>(bits.v[0]) << 32) | bits.v[1];
  return word % n;
}

// Fisher-Yates with the epoch's Philox stream: the same permutation on every machine.
template <typename T>
void Shuffle(std::vector<T>* items, uint64_t seed, int64_t epoch, uint32_t stream) {
  for (size_t i = items->size(); i > 1; --i) {
    const uint64_t j = UniformIndex(seed, epoch, stream, i - 1, i);
    std::swap((*items)[i - 1], (*items)[j]);
  }
}

// Greedy packing of `order` (already sorted) under the padded token budget.
void PackBatches(const std::vector<int64_t>& order, std::span<const int32_t> source_lengths,
                 std::span<const int32_t> target_lengths, const BatcherOptions& options,
                 std::vector<std::vector<int64_t>>* batches) {
  std::vector<int64_t> current;
  int64_t max_source = 0, max_target = 0;
  for (const int64_t e : order) {
    const int64_t source = std::max<int64_t>(max_source, source_lengths[e]);
    const int64_t target = std::max<int64_t>(max_target, target_lengths[e]);
    const int64_t rows = static_cast<int64_t>(current.size()) + 1;
    const bool over_budget = rows * (source + target) > options.max_tokens;
    const bool over_rows = options.max_sentences > 0 && rows > options.max_sentences;
    if (!current.empty() && (over_budget || over_rows)) {
      batches->push_back(std::move(current));
      current.clear();
      max_source = max_target = 0;
    }
    current.push_back(e);
    max_source = std::max<int64_t>(max_source, source_lengths[e]);
    max_target = std::max<int64_t>(max_target, target_lengths[e]);
  }
  if (!current.empty()) batches->push_back(std::move(current));
}

// Splits the batch with the most rows (the first such) in two until the count divides by
// `replicas`. Halves of a batch within the budget are within the budget.
Status MakeDivisible(std::vector<std::vector<int64_t>>* batches, int replicas,
                     int64_t num_examples) {
  const int64_t count = static_cast<int64_t>(batches->size());
  const int64_t target = (count + replicas - 1) / replicas * replicas;
  if (target > num_examples) {
    return FailedPrecondition("cannot give " + std::to_string(replicas) +
                              " replicas the same number of batches from " +
                              std::to_string(num_examples) + " examples");
  }
  while (static_cast<int64_t>(batches->size()) < target) {
    auto largest =
        std::max_element(batches->begin(), batches->end(),
                         [](const auto& a, const auto& b) { return a.size() < b.size(); });
    const size_t half = (largest->size() + 1) / 2;
    std::vector<int64_t> second(largest->begin() + half, largest->end());
    largest->resize(half);
    batches->insert(largest + 1, std::move(second));
  }
  return OkStatus();
}

}  // namespace

StatusOr<std::vector<std::vector<int64_t>>> PlanEpoch(std::span<const int32_t> source_lengths,
                                                      std::span<const int32_t> target_lengths,
                                                      const BatcherOptions& options,
                                                      int64_t epoch) {
  const int64_t num_examples = static_cast<int64_t>(source_lengths.size());
  std::vector<int64_t> order(num_examples);
  std::iota(order.begin(), order.end(), 0);
  if (options.shuffle) Shuffle(&order, options.seed, epoch, kExampleStream);

  const int64_t window = options.sort_window > 0 ? options.sort_window : num_examples;
  const auto by_length = [&](int64_t a, int64_t b) {
    return source_lengths[a] != source_lengths[b] ? source_lengths[a] < source_lengths[b]
                                                  : target_lengths[a] < target_lengths[b];
  };
  std::vector<std::vector<int64_t>> batches;
  for (int64_t begin = 0; begin < num_examples; begin += window) {
    const int64_t end = std::min(begin + window, num_examples);
    std::vector<int64_t> bucket(order.begin() + begin, order.begin() + end);
    std::stable_sort(bucket.begin(), bucket.end(), by_length);
    PackBatches(bucket, source_lengths, target_lengths, options, &batches);
  }
  RETURN_IF_ERROR(MakeDivisible(&batches, options.num_replicas, num_examples));
  if (options.shuffle) Shuffle(&batches, options.seed, epoch, kBatchStream);
  return batches;
}

Batch MakeBatch(const ShardReader& shard, std::span<const int64_t> example_ids) {
  const SpecialIds special = shard.special_ids();
  Batch batch;
  batch.batch_size = static_cast<int64_t>(example_ids.size());
  batch.example_ids.assign(example_ids.begin(), example_ids.end());
  for (const int64_t e : example_ids) {
    batch.source_len = std::max<int64_t>(batch.source_len, shard.source_length(e));
    batch.target_len = std::max<int64_t>(batch.target_len, shard.target_length(e));
  }
  const int64_t B = batch.batch_size, S = batch.source_len, T = batch.target_len;
  batch.source.assign(B * S, special.pad);
  batch.source_pad_mask.assign(B * S, 1);
  batch.decoder_input.assign(B * T, special.pad);
  batch.target.assign(B * T, special.pad);
  for (int64_t b = 0; b < B; ++b) {
    const std::span<const int32_t> source = shard.source(example_ids[b]);
    const std::span<const int32_t> target = shard.target(example_ids[b]);
    std::copy(source.begin(), source.end(), batch.source.begin() + b * S);
    std::fill_n(batch.source_pad_mask.begin() + b * S, source.size(), 0);
    std::copy(target.begin(), target.end(), batch.target.begin() + b * T);
    // Teacher forcing: the decoder reads <s> + pieces and predicts pieces + </s>.
    batch.decoder_input[b * T] = special.bos;
    std::copy(target.begin(), target.end() - 1, batch.decoder_input.begin() + b * T + 1);
    batch.source_lengths.push_back(static_cast<int32_t>(source.size()));
    batch.target_lengths.push_back(static_cast<int32_t>(target.size()));
    batch.num_source_tokens += static_cast<int64_t>(source.size());
    batch.num_target_tokens += static_cast<int64_t>(target.size());
  }
  return batch;
}

StatusOr<std::vector<Batch>> SplitBatch(const Batch& batch, int num_micro_batches) {
  const int64_t B = batch.batch_size, S = batch.source_len, T = batch.target_len;
  if (num_micro_batches < 1 || num_micro_batches > B) {
    return InvalidArgument("cannot split a batch of " + std::to_string(B) + " rows into " +
                           std::to_string(num_micro_batches) + " micro-batches");
  }
  std::vector<Batch> parts(num_micro_batches);
  int64_t row = 0;
  for (int m = 0; m < num_micro_batches; ++m) {
    const int64_t rows = B / num_micro_batches + (m < B % num_micro_batches ? 1 : 0);
    Batch& part = parts[m];
    part.batch_size = rows;
    part.source_len = S;
    part.target_len = T;
    const auto slice = [&](const auto& full, int64_t width) {
      return std::vector(full.begin() + row * width, full.begin() + (row + rows) * width);
    };
    part.source = slice(batch.source, S);
    part.source_pad_mask = slice(batch.source_pad_mask, S);
    part.decoder_input = slice(batch.decoder_input, T);
    part.target = slice(batch.target, T);
    part.example_ids = slice(batch.example_ids, 1);
    part.source_lengths = slice(batch.source_lengths, 1);
    part.target_lengths = slice(batch.target_lengths, 1);
    part.num_source_tokens =
        std::accumulate(part.source_lengths.begin(), part.source_lengths.end(), int64_t{0});
    part.num_target_tokens =
        std::accumulate(part.target_lengths.begin(), part.target_lengths.end(), int64_t{0});
    row += rows;
  }
  return parts;
}

Batcher::Batcher(const ShardReader* shard, const BatcherOptions& options)
    : shard_(shard), options_(options) {}

StatusOr<Batcher> Batcher::Create(const ShardReader* shard, const BatcherOptions& options) {
  if (options.max_tokens <= 0) return InvalidArgument("batcher: max_tokens must be > 0");
  if (options.num_replicas < 1 || options.replica < 0 || options.replica >= options.num_replicas) {
    return InvalidArgument("batcher: replica " + std::to_string(options.replica) + " of " +
                           std::to_string(options.num_replicas));
  }
  if (shard->num_examples() == 0) return FailedPrecondition(shard->path() + ": no examples");
  Batcher batcher(shard, options);
  batcher.source_lengths_ = shard->source_lengths();
  batcher.target_lengths_ = shard->target_lengths();
  for (int64_t e = 0; e < shard->num_examples(); ++e) {
    const int32_t source = batcher.source_lengths_[e], target = batcher.target_lengths_[e];
    if (source + target > options.max_tokens) {
      return InvalidArgument(shard->path() + ": example " + std::to_string(e) + " has " +
                             std::to_string(source) + " + " + std::to_string(target) +
                             " tokens, more than max_tokens " + std::to_string(options.max_tokens));
    }
  }
  RETURN_IF_ERROR(batcher.LoadEpoch(0));
  return batcher;
}

Status Batcher::LoadEpoch(int64_t epoch) {
  if (epoch == plan_epoch_) return OkStatus();
  ASSIGN_OR_RETURN(plan_, PlanEpoch(source_lengths_, target_lengths_, options_, epoch));
  plan_epoch_ = epoch;
  return OkStatus();
}

StatusOr<Batch> Batcher::Next() {
  if (position_.batch >= batches_in_epoch()) {
    RETURN_IF_ERROR(LoadEpoch(position_.epoch + 1));
    position_ = {.epoch = position_.epoch + 1, .batch = 0};
  }
  const int64_t global = position_.batch * replicas() + options_.replica;
  ++position_.batch;
  return MakeBatch(*shard_, plan_[global]);
}

Status Batcher::Seek(const BatchPosition& position) {
  if (position.epoch < 0) return OutOfRange("batcher: negative epoch");
  RETURN_IF_ERROR(LoadEpoch(position.epoch));
  if (position.batch < 0 || position.batch > batches_in_epoch()) {
    return OutOfRange("batcher: batch " + std::to_string(position.batch) + " outside epoch " +
                      std::to_string(position.epoch) + " of " + std::to_string(batches_in_epoch()) +
                      " batches");
  }
  position_ = position;
  return OkStatus();
}

}  // namespace deepnet
