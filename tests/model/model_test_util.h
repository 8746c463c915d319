// Helpers shared by the model tests: tiny configs, micro-batches with padding, tensor comparison.
// Letters: B batch, S source length, T target length.
#pragma once

#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/allocator.h"

namespace deepnet::testing {

using config::ModelConfig;

inline constexpr int kPad = 0;
inline constexpr int kBos = 1;
inline constexpr int kEos = 2;

struct TinyOptions {
  ModelConfig::Architecture architecture = ModelConfig::ENCODER_DECODER;
  ModelConfig::Norm norm = ModelConfig::DEEPNORM;
  ModelConfig::Activation activation = ModelConfig::GELU;
  bool tied = true;
  int layers = 2;  // per stack the architecture has
  int d_model = 8;
  int heads = 2;
  int ffn_dim = 16;
  int vocab = 13;
  double dropout = 0.0;
  double attention_dropout = 0.0;
  double activation_dropout = 0.0;
};

inline ModelConfig TinyConfig(const TinyOptions& o) {
  ModelConfig c;
  c.set_architecture(o.architecture);
  const bool encoder = o.architecture != ModelConfig::DECODER_ONLY;
  const bool decoder = o.architecture != ModelConfig::ENCODER_ONLY;
  c.set_encoder_layers(encoder ? o.layers : 0);
  c.set_decoder_layers(decoder ? o.layers : 0);
  c.set_d_model(o.d_model);
  c.set_heads(o.heads);
  c.set_ffn_dim(o.ffn_dim);
  c.set_vocab_size(o.vocab);
  c.set_norm(o.norm);
  c.set_activation(o.activation);
  c.set_dropout(o.dropout);
  c.set_attention_dropout(o.attention_dropout);
  c.set_activation_dropout(o.activation_dropout);
  c.set_tied_embeddings(o.tied);
  c.set_max_positions(64);
  c.set_layernorm_eps(1e-5);
  return c;
}

inline std::unique_ptr<Model> BuildModel(const ModelConfig& config, DType dtype, uint64_t seed = 11,
                                         int first = 0, int end = -1) {
  ModelBuildOptions options;
  options.seed = seed;
  options.dtype = dtype;
  options.first_unit = first;
  options.end_unit = end;
  auto model = Model::Build(config, options);
  EXPECT_TRUE(model.ok()) << model.status();
  return std::move(model).value();
}

// Tokens in [3, V) with rows padded at the end: row b keeps length − (b % 3) tokens.
inline MicroBatch MakeBatch(const ModelConfig& config, int B, int S, int T, uint32_t seed,
                            int index = 0) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> token(3, config.vocab_size() - 1);
  auto i32 = [](int rows, int cols) {
    return Tensor::Zeros({rows, cols}, DType::kI32, MemoryCategory::kOther);
  };
  auto u8 = [](int rows, int cols) {
    return Tensor::Zeros({rows, cols}, DType::kU8, MemoryCategory::kOther);
  };
  MicroBatch mb;
  mb.index = index;
  const bool encoder = config.architecture() != ModelConfig::DECODER_ONLY;
  const bool decoder = config.architecture() != ModelConfig::ENCODER_ONLY;
  if (encoder) {
    mb.source = i32(B, S);
    mb.source_mask = u8(B, S);
    for (int b = 0; b < B; ++b) {
      for (int s = 0; s < S; ++s) {
        const bool pad = s >= S - b % 3;
        mb.source.data<int32_t>()[b * S + s] = pad ? kPad : token(rng);
        mb.source_mask.data<uint8_t>()[b * S + s] = pad ? 1 : 0;
      }
    }
  }
  if (decoder) {
    mb.target_input = i32(B, T);
    mb.target_mask = u8(B, T);
    mb.target = i32(B, T);
    for (int b = 0; b < B; ++b) {
      const int length = T - b % 3;  // pieces + </s>
      std::vector<int> pieces(length);
      for (int t = 0; t + 1 < length; ++t) pieces[t] = token(rng);
      pieces[length - 1] = kEos;
      for (int t = 0; t < T; ++t) {
        const bool pad = t >= length;
        mb.target_input.data<int32_t>()[b * T + t] = pad ? kPad : (t == 0 ? kBos : pieces[t - 1]);
        mb.target_mask.data<uint8_t>()[b * T + t] = pad ? 1 : 0;
        mb.target.data<int32_t>()[b * T + t] = pad ? kPad : pieces[t];
      }
    }
  } else {
    // Encoder-only: classify every source position (here: the token itself, shifted).
    mb.target = i32(B, S);
    for (int n = 0; n < B * S; ++n) {
      const int token_id = mb.source.data<int32_t>()[n];
      mb.target.data<int32_t>()[n] = token_id == kPad ? kPad : 3 + (token_id + 1) % 7;
    }
  }
  for (int64_t n = 0; n < mb.target.numel(); ++n) {
    mb.num_target_tokens += mb.target.data<int32_t>()[n] != kPad ? 1 : 0;
  }
  return mb;
}

inline StepContext TrainingContext(const MicroBatch& mb, double label_smoothing = 0.1) {
  StepContext ctx;
  ctx.seed = 1234;
  ctx.step = 5;
  ctx.training = true;
  ctx.loss_scale = 1.0 / static_cast<double>(mb.num_target_tokens);
  ctx.label_smoothing = label_smoothing;
  ctx.pad_id = kPad;
  return ctx;
}

// Runs the enclosing scope on one OpenMP thread. The finite-difference and reference checks run
// thousands of forwards over tiny tensors, where fork/join on a busy machine would dominate; the
// threaded paths are covered by the bitwise tests.
class SingleThreaded {
 public:
  SingleThreaded() : previous_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThreaded() { omp_set_num_threads(previous_); }
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;

 private:
  int previous_;
};

inline bool BitwiseEqual(const Tensor& a, const Tensor& b) {
  return a.nbytes() == b.nbytes() && a.dtype() == b.dtype() &&
         (a.nbytes() == 0 || std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()) == 0);
}

inline double At(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kF64 ? t.data<double>()[i] : t.data<float>()[i];
}

inline int64_t LiveActivationBytes() {
  return GetAllocator(Device::Cpu()).stats().current_of(MemoryCategory::kActivations);
}

}  // namespace deepnet::testing
