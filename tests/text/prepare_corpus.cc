// Prepares the shipped corpus (data/) into a directory and prints the summary: a measurement of
// PrepareData at full size (and of one epoch of batching), not a unit test.
// Usage: text_prepare_corpus OUT_DIR [VOCAB_SIZE]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "text/batcher.h"
#include "text/prepare.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR [VOCAB_SIZE]\n", argv[0]);
    return 2;
  }
  deepnet::PrepareOptions options;
  options.train_path = std::string(DEEPNET_SOURCE_DIR) + "/data/train.tsv";
  options.valid_path = std::string(DEEPNET_SOURCE_DIR) + "/data/valid.tsv";
  options.data_dir = argv[1];
  options.tokenizer.vocab_size = argc > 2 ? std::atoi(argv[2]) : 8000;
  deepnet::PrepareSummary summary;
  const deepnet::Status status = deepnet::PrepareData(options, &summary);
  if (!status.ok()) {
    std::fprintf(stderr, "prepare failed: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf(
      "vocab %d | train %lld examples, %lld + %lld tokens, %lld dropped | valid %lld examples, "
      "%lld + %lld tokens | tokenizer %.2f s, total %.2f s\n",
      summary.vocab_size, static_cast<long long>(summary.train_examples),
      static_cast<long long>(summary.train_source_tokens),
      static_cast<long long>(summary.train_target_tokens),
      static_cast<long long>(summary.train_dropped), static_cast<long long>(summary.valid_examples),
      static_cast<long long>(summary.valid_source_tokens),
      static_cast<long long>(summary.valid_target_tokens), summary.tokenizer_seconds,
      summary.total_seconds);

  deepnet::StatusOr<deepnet::ShardReader> shard =
      deepnet::ShardReader::Open(options.data_dir + "/train.bin");
  if (!shard.ok()) {
    std::fprintf(stderr, "%s\n", shard.status().ToString().c_str());
    return 1;
  }
  for (const int64_t max_tokens : {4096, 16384}) {
    deepnet::BatcherOptions batching;
    batching.max_tokens = max_tokens;
    const auto start = std::chrono::steady_clock::now();
    deepnet::StatusOr<deepnet::Batcher> batcher = deepnet::Batcher::Create(&*shard, batching);
    if (!batcher.ok()) {
      std::fprintf(stderr, "%s\n", batcher.status().ToString().c_str());
      return 1;
    }
    int64_t real = 0, padded = 0;
    for (int64_t i = 0; i < batcher->batches_in_epoch(); ++i) {
      const deepnet::Batch batch = std::move(batcher->Next()).value();
      real += batch.num_source_tokens + batch.num_target_tokens;
      padded += batch.batch_size * (batch.source_len + batch.target_len);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("max_tokens %lld: %lld batches/epoch, %.1f%% of padded tokens real, %.3f s\n",
                static_cast<long long>(max_tokens),
                static_cast<long long>(batcher->batches_in_epoch()), 100.0 * real / padded,
                seconds);
  }
  return 0;
}
