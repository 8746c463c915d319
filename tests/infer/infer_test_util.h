// Helpers for the infer tests: a tiny encoder-decoder model with random (seeded) weights and padded
// source batches. Letters: B sentences, S source length, V vocab.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <vector>

#include "model/model.h"
#include "text/tokenizer.h"

namespace deepnet::testing {

inline config::ModelConfig TinyTranslationConfig(config::ModelConfig::Norm norm) {
  config::ModelConfig c;
  c.set_architecture(config::ModelConfig::ENCODER_DECODER);
  c.set_encoder_layers(2);
  c.set_decoder_layers(2);
  c.set_d_model(16);
  c.set_heads(2);
  c.set_ffn_dim(32);
  c.set_vocab_size(23);
  c.set_norm(norm);
  c.set_activation(config::ModelConfig::GELU);
  c.set_dropout(0.1);  // must be ignored: inference runs with dropout off
  c.set_tied_embeddings(true);
  c.set_max_positions(32);
  c.set_layernorm_eps(1e-5);
  return c;
}

inline std::unique_ptr<Model> BuildTinyModel(const config::ModelConfig& config, DType dtype,
                                             uint64_t seed = 5) {
  ModelBuildOptions options;
  options.seed = seed;
  options.dtype = dtype;
  auto model = Model::Build(config, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(model).value();
}

// Random pieces in [4, V) followed by </s>, of the given lengths (</s> included).
inline std::vector<std::vector<int32_t>> RandomSources(const std::vector<int>& lengths, int vocab,
                                                       uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> piece(4, vocab - 1);
  std::vector<std::vector<int32_t>> sources;
  for (const int length : lengths) {
    std::vector<int32_t> source(length - 1);
    for (int32_t& t : source) t = piece(rng);
    source.push_back(SpecialIds().eos);
    sources.push_back(source);
  }
  return sources;
}

// (B, S) tokens padded with pad 0 and the (B, S) u8 mask.
inline std::pair<Tensor, Tensor> PadSources(const std::vector<std::vector<int32_t>>& sources) {
  size_t S = 0;
  for (const auto& s : sources) S = std::max(S, s.size());
  const int64_t B = static_cast<int64_t>(sources.size());
  Tensor tokens = Tensor::Zeros({B, static_cast<int64_t>(S)}, DType::kI32, MemoryCategory::kOther);
  Tensor mask = Tensor::Zeros({B, static_cast<int64_t>(S)}, DType::kU8, MemoryCategory::kOther);
  for (int64_t b = 0; b < B; ++b) {
    for (size_t s = 0; s < S; ++s) {
      const bool real = s < sources[b].size();
      tokens.data<int32_t>()[b * S + s] = real ? sources[b][s] : 0;
      mask.data<uint8_t>()[b * S + s] = real ? 0 : 1;
    }
  }
  return {tokens, mask};
}

}  // namespace deepnet::testing
