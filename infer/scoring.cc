// Teacher-forced per-pair cross-entropy through Model::Logits and the backend's CrossEntropy.
// Letters: B pairs in a batch, S source length, T target length, V vocab, N = B·T.
#include "infer/scoring.h"

#include <algorithm>
#include <numeric>

#include "model/unit_base.h"
#include "text/batcher.h"
#include "train/micro_batch.h"

namespace deepnet {
namespace {

// The padded batch of `pairs[ids]` in the layout the trainer uses (decoder input <s> + pieces).
Batch PadPairs(const std::vector<TokenizedPair>& pairs, const std::vector<int64_t>& ids,
               const SpecialIds& special) {
  Batch batch;
  batch.batch_size = static_cast<int64_t>(ids.size());
  for (const int64_t id : ids) {
    batch.source_len = std::max<int64_t>(batch.source_len, pairs[id].source.size());
    batch.target_len = std::max<int64_t>(batch.target_len, pairs[id].target.size());
  }
  const int64_t B = batch.batch_size, S = batch.source_len, T = batch.target_len;
  batch.source.assign(B * S, special.pad);
  batch.source_pad_mask.assign(B * S, 1);
  batch.decoder_input.assign(B * T, special.pad);
  batch.target.assign(B * T, special.pad);
  for (int64_t row = 0; row < B; ++row) {
    const TokenizedPair& pair = pairs[ids[row]];
    for (size_t s = 0; s < pair.source.size(); ++s) {
      batch.source[row * S + s] = pair.source[s];
      batch.source_pad_mask[row * S + s] = 0;
    }
    for (size_t t = 0; t < pair.target.size(); ++t) {
      batch.target[row * T + t] = pair.target[t];
      batch.decoder_input[row * T + t] = t == 0 ? special.bos : pair.target[t - 1];
    }
    batch.example_ids.push_back(ids[row]);
    batch.source_lengths.push_back(static_cast<int32_t>(pair.source.size()));
    batch.target_lengths.push_back(static_cast<int32_t>(pair.target.size()));
    batch.num_source_tokens += static_cast<int64_t>(pair.source.size());
    batch.num_target_tokens += static_cast<int64_t>(pair.target.size());
  }
  return batch;
}

}  // namespace

std::vector<std::vector<int64_t>> LengthBatches(const std::vector<int64_t>& lengths,
                                                int64_t max_tokens, int64_t max_rows) {
  std::vector<int64_t> order(lengths.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return lengths[a] < lengths[b]; });
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> current;
  for (const int64_t id : order) {
    // Sorted ascending, so the newcomer is the longest of the batch.
    const int64_t rows = static_cast<int64_t>(current.size()) + 1;
    const bool too_many = max_rows > 0 && rows > max_rows;
    if (!current.empty() && (too_many || rows * lengths[id] > max_tokens)) {
      batches.push_back(std::move(current));
      current.clear();
    }
    current.push_back(id);
  }
  if (!current.empty()) batches.push_back(std::move(current));
  return batches;
}

StatusOr<std::vector<PairScore>> ScorePairs(Model& model, const std::vector<TokenizedPair>& pairs,
                                            const SpecialIds& special, int64_t max_tokens) {
  if (model.config().architecture() != config::ModelConfig::ENCODER_DECODER) {
    return FailedPrecondition("scoring pairs needs an ENCODER_DECODER model");
  }
  const int max_positions =
      model.config().has_max_positions() ? model.config().max_positions() : 1024;
  std::vector<int64_t> lengths;
  for (size_t i = 0; i < pairs.size(); ++i) {
    const TokenizedPair& pair = pairs[i];
    if (pair.source.empty() || pair.target.empty()) {
      return InvalidArgument("pair " + std::to_string(i) + " has an empty side");
    }
    if (std::max(pair.source.size(), pair.target.size()) > static_cast<size_t>(max_positions)) {
      return OutOfRange("pair " + std::to_string(i) + " is longer than model.max_positions " +
                        std::to_string(max_positions));
    }
    lengths.push_back(static_cast<int64_t>(pair.source.size() + pair.target.size()));
  }
  const Backend& backend = model.backend();
  StepContext ctx;
  ctx.backend = &backend;
  ctx.training = false;
  ctx.pad_id = special.pad;
  std::vector<PairScore> scores(pairs.size());
  for (const std::vector<int64_t>& ids : LengthBatches(lengths, max_tokens, 0)) {
    const Batch batch = PadPairs(pairs, ids, special);
    const MicroBatch mb = ToMicroBatch(batch, 0, backend);
    const Tensor logits = model.Logits(ctx, mb);  // (B, T, V)
    const int64_t N = batch.batch_size * batch.target_len, V = logits.dim(2);
    Tensor losses = backend.Empty({N}, logits.dtype(), MemoryCategory::kWorkspace);
    Tensor lse = backend.Empty({N}, logits.dtype(), MemoryCategory::kWorkspace);
    backend.CrossEntropyForward(losses, lse, logits.Reshape({N, V}), mb.target.Reshape({N}),
                                /*smoothing=*/0.0, special.pad);
    const Tensor host = ToHost(backend, losses);
    for (int64_t row = 0; row < batch.batch_size; ++row) {
      PairScore& score = scores[ids[row]];
      score.tokens = batch.target_lengths[row];
      for (int64_t t = 0; t < score.tokens; ++t) {
        const int64_t n = row * batch.target_len + t;
        score.nll_sum += host.dtype() == DType::kF64 ? host.data<double>()[n]
                                                     : static_cast<double>(host.data<float>()[n]);
      }
    }
  }
  return scores;
}

PairScore SumScores(const std::vector<PairScore>& scores) {
  PairScore total;
  for (const PairScore& s : scores) {
    total.tokens += s.tokens;
    total.nll_sum += s.nll_sum;
  }
  return total;
}

}  // namespace deepnet
