// A tiny training run for trainer tests: random copy-task token shards (target = source) and a
// 1+1-layer config with dropout on, small enough that a step takes milliseconds.
#pragma once

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "text/shard.h"

namespace deepnet {

inline constexpr int kTinyVocab = 64;

// Writes `examples` random examples (3..12 pieces + </s>) to `path`.
inline Status WriteCopyTaskShard(const std::string& path, int examples, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> length(3, 12);
  std::uniform_int_distribution<int> piece(4, kTinyVocab - 1);
  const SpecialIds special;
  ShardWriter writer(kTinyVocab, special);
  for (int e = 0; e < examples; ++e) {
    std::vector<int32_t> tokens(length(rng));
    for (int32_t& t : tokens) t = piece(rng);
    tokens.push_back(special.eos);
    writer.Add(tokens, tokens);
  }
  return writer.Write(path);
}

// <root>/data/{train,valid}.bin.
inline Status WriteTinyData(const std::string& root) {
  std::filesystem::create_directories(root + "/data");
  RETURN_IF_ERROR(WriteCopyTaskShard(root + "/data/train.bin", 48, 1));
  return WriteCopyTaskShard(root + "/data/valid.bin", 10, 2);
}

// Text format of the tiny run's config, data in <root>/data, checkpoints in `checkpoint_dir`.
inline std::string TinyConfigText(const std::string& root, const std::string& checkpoint_dir,
                                  int64_t max_steps) {
  return R"(
model { architecture: ENCODER_DECODER encoder_layers: 1 decoder_layers: 1 d_model: 16 heads: 2
        ffn_dim: 32 vocab_size: 0 dropout: 0.1 attention_dropout: 0.1 max_positions: 64 }
data { data_dir: ")" +
         root + R"(/data" spm_vocab_size: 64 max_tokens_per_batch: 96
       max_source_length: 32 max_target_length: 32 shuffle_buffer: 16 }
train { max_steps: )" +
         std::to_string(max_steps) + R"( seed: 7 valid_every: 3 accumulation_steps: 2
        label_smoothing: 0.1 clip_norm: 0.5 }
parallel { micro_batches: 2 }
optimizer { type: ADAM lr: 3e-3 weight_decay: 0.01 }
lr_schedule { type: INVERSE_SQRT warmup_steps: 2 }
checkpoint { dir: ")" +
         checkpoint_dir + R"(" every_steps: 4 keep_last: 2 }
logging { log_every: 1 }
)";
}

}  // namespace deepnet
