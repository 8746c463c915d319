// Writes what tests/reference/torch_reference.py checks deepnet against: a tiny encoder-decoder
// model in fp64 (weights perturbed from their initialisation and rounded to fp32 values, so the
// docs/design.md#export-format fp32 export holds them exactly), one padded batch, and the model's
// label-smoothed loss and every parameter gradient after one forward + backward.
//
// Usage: dump_reference OUT_DIR deepnorm|postln|preln [tied|untied] [relu|gelu] [small|large]
//   (large: wider, longer and more threads' worth of work, to catch blocking and threading faults)
//   OUT_DIR/model.safetensors  the export (train/export.h), config in __metadata__
//   OUT_DIR/batch.safetensors  source, source_mask, target_input, target_mask, target; metadata
//                              "loss" (%.17g), "label_smoothing", "pad_id", "tokens"
//   OUT_DIR/grads.safetensors  F64 gradient of the mean loss for every exported parameter (tied
//                              embeddings: the summed gradient)
// `dump_reference --skip REASON` prints the reason and exits 77 (ctest's skip code).
// Letters: B batch, S source length, T target length, V vocab.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"
#include "runtime/safetensors.h"
#include "train/export.h"

namespace deepnet {
namespace {

struct Sizes {
  int B = 3, S = 6, T = 5, vocab = 19;  // batch
  int encoder_layers = 2, decoder_layers = 3, d_model = 16, heads = 4, ffn = 24;
};

Sizes ReferenceSizes(bool large) {
  if (!large) return Sizes();
  return Sizes{4, 45, 37, 301, 3, 3, 64, 4, 160};
}

config::ModelConfig ReferenceConfig(const std::string& norm, bool tied, bool gelu, const Sizes& z) {
  config::ModelConfig c;
  c.set_architecture(config::ModelConfig::ENCODER_DECODER);
  c.set_encoder_layers(z.encoder_layers);
  c.set_decoder_layers(z.decoder_layers);
  c.set_d_model(z.d_model);
  c.set_heads(z.heads);
  c.set_ffn_dim(z.ffn);
  c.set_vocab_size(z.vocab);
  c.set_norm(norm == "preln"    ? config::ModelConfig::PRELN
             : norm == "postln" ? config::ModelConfig::POSTLN
                                : config::ModelConfig::DEEPNORM);
  c.set_activation(gelu ? config::ModelConfig::GELU : config::ModelConfig::RELU);
  c.set_dropout(0);
  c.set_attention_dropout(0);
  c.set_activation_dropout(0);
  c.set_tied_embeddings(tied);
  c.set_max_positions(std::max(z.S, z.T));
  c.set_layernorm_eps(1e-5);
  return c;
}

// Moves every parameter off its initial value (LayerNorm 1/0 and zero biases would hide mistakes)
// and rounds it to an fp32 value; a tied copy gets its primary's values.
void PerturbParameters(Model& model) {
  std::mt19937_64 rng(42);
  std::normal_distribution<double> noise(0.0, 0.1);
  const Parameter* primary_embedding = nullptr;
  for (auto& unit : model.units()) {
    for (Parameter& p : unit->parameters()) {
      double* values = p.value.data<double>();
      if (p.tied_copy) {
        std::memcpy(values, primary_embedding->value.data<double>(), p.value.nbytes());
        continue;
      }
      for (int64_t i = 0; i < p.value.numel(); ++i) {
        values[i] = static_cast<float>(values[i] + noise(rng));
      }
      if (p.name == "embed_tokens.weight") primary_embedding = &p;
    }
  }
}

// Rows padded at the end: row b has S − 2b source tokens and T − 2 − b target tokens, except row
// 1, whose target fills T (small sizes: sources 6, 4, 2; targets 3, 5, 1).
MicroBatch ReferenceBatch(const SpecialIds& special, const Sizes& z) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> piece(4, z.vocab - 1);
  const int kB = z.B, kS = z.S, kT = z.T;
  std::vector<int> source_lengths, target_lengths;
  for (int b = 0; b < kB; ++b) {
    source_lengths.push_back(std::max(1, kS - 2 * b));
    target_lengths.push_back(b == 1 ? kT : std::max(1, kT - 2 - b));
  }
  auto tensor = [kB](DType dtype, int64_t cols) {
    return Tensor::Zeros({kB, cols}, dtype, MemoryCategory::kOther);
  };
  MicroBatch mb;
  mb.source = tensor(DType::kI32, kS);
  mb.source_mask = tensor(DType::kU8, kS);
  mb.target_input = tensor(DType::kI32, kT);
  mb.target_mask = tensor(DType::kU8, kT);
  mb.target = tensor(DType::kI32, kT);
  for (int b = 0; b < kB; ++b) {
    for (int s = 0; s < kS; ++s) {
      const bool pad = s >= source_lengths[b];
      const bool last = s == source_lengths[b] - 1;
      mb.source.data<int32_t>()[b * kS + s] = pad ? special.pad : last ? special.eos : piece(rng);
      mb.source_mask.data<uint8_t>()[b * kS + s] = pad ? 1 : 0;
    }
    std::vector<int32_t> target(target_lengths[b]);
    for (int t = 0; t + 1 < target_lengths[b]; ++t) target[t] = piece(rng);
    target.back() = special.eos;
    for (int t = 0; t < kT; ++t) {
      const bool pad = t >= target_lengths[b];
      mb.target.data<int32_t>()[b * kT + t] = pad ? special.pad : target[t];
      mb.target_input.data<int32_t>()[b * kT + t] = pad      ? special.pad
                                                    : t == 0 ? special.bos
                                                             : target[t - 1];
      mb.target_mask.data<uint8_t>()[b * kT + t] = pad ? 1 : 0;
      mb.num_target_tokens += pad ? 0 : 1;
    }
  }
  return mb;
}

Status Dump(const std::string& out, const config::ModelConfig& config, const Sizes& sizes,
            double label_smoothing) {
  const SpecialIds special;
  ModelBuildOptions options;
  options.seed = 3;
  options.dtype = DType::kF64;
  options.pad_id = special.pad;
  ASSIGN_OR_RETURN(std::unique_ptr<Model> model, Model::Build(config, options));
  PerturbParameters(*model);
  const MicroBatch mb = ReferenceBatch(special, sizes);

  StepContext ctx;
  ctx.training = true;  // the training path; every dropout rate is 0
  ctx.seed = 1;
  ctx.label_smoothing = label_smoothing;
  ctx.pad_id = special.pad;
  ctx.loss_scale = 1.0 / static_cast<double>(mb.num_target_tokens);
  model->ZeroGrads();
  const Stream result = model->ForwardBackward(ctx, mb);
  model->SumTiedGradients();
  const double loss = result.loss_sum / static_cast<double>(result.loss_tokens);

  std::vector<Unit*> units;
  for (auto& unit : model->units()) units.push_back(unit.get());
  RETURN_IF_ERROR(
      ExportModel(out + "/model.safetensors", units, config, special, model->backend()));

  SafetensorsWriter batch;
  RETURN_IF_ERROR(batch.Add("source", mb.source));
  RETURN_IF_ERROR(batch.Add("source_mask", mb.source_mask));
  RETURN_IF_ERROR(batch.Add("target_input", mb.target_input));
  RETURN_IF_ERROR(batch.Add("target_mask", mb.target_mask));
  RETURN_IF_ERROR(batch.Add("target", mb.target));
  char loss_text[64];
  std::snprintf(loss_text, sizeof(loss_text), "%.17g", loss);
  batch.SetMetadata("loss", loss_text);
  batch.SetMetadata("label_smoothing", std::to_string(label_smoothing));
  batch.SetMetadata("pad_id", std::to_string(special.pad));
  batch.SetMetadata("tokens", std::to_string(result.loss_tokens));
  RETURN_IF_ERROR(batch.Write(out + "/batch.safetensors"));

  SafetensorsWriter grads;
  for (Parameter* p : model->parameters()) {
    if (!p->tied_copy) RETURN_IF_ERROR(grads.Add(p->name, p->grad));
  }
  return grads.Write(out + "/grads.safetensors");
}

}  // namespace
}  // namespace deepnet

int main(int argc, char** argv) {
  if (argc >= 2 && std::string(argv[1]) == "--skip") {
    std::printf("skipped: %s\n", argc > 2 ? argv[2] : "");
    return 77;
  }
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s OUT_DIR deepnorm|postln|preln [tied|untied] [relu|gelu]\n",
                 argv[0]);
    return 2;
  }
  const bool tied = argc < 4 || std::string(argv[3]) != "untied";
  const bool gelu = argc >= 5 && std::string(argv[4]) == "gelu";
  const deepnet::Sizes sizes =
      deepnet::ReferenceSizes(argc >= 6 && std::string(argv[5]) == "large");
  const deepnet::Status status =
      deepnet::Dump(argv[1], deepnet::ReferenceConfig(argv[2], tied, gelu, sizes), sizes, 0.1);
  if (!status.ok()) {
    std::fprintf(stderr, "dump_reference: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
