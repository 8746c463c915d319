// Times deepnet's training step — zero grads, forward + backward of one micro-batch, tied-gradient
// sum, gradient clipping and Adam — on a synthetic batch, for bench/torch_step_bench.py, which
// times the same step in PyTorch. Prints one JSON line: {"times_s": [...], "median_s": ...}.
//
// Usage: step_timer [B=64] [S=32] [T=32] [steps=5] [warmup=2] [layers=6] [d_model=256]
//                   [heads=4] [ffn=1024] [vocab=8000] [dropout=0.1]   (key=value arguments)
// Letters: B sentences, S source length, T target length (every token real, no padding).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"
#include "train/optimizer.h"

namespace deepnet {
namespace {

std::map<std::string, double> ParseArguments(int argc, char** argv) {
  std::map<std::string, double> args = {{"B", 64},        {"S", 32},       {"T", 32},
                                        {"steps", 5},     {"warmup", 2},   {"layers", 6},
                                        {"d_model", 256}, {"heads", 4},    {"ffn", 1024},
                                        {"vocab", 8000},  {"dropout", 0.1}};
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (eq == std::string::npos || !args.contains(arg.substr(0, eq))) {
      std::fprintf(stderr, "step_timer: unknown argument %s\n", arg.c_str());
      std::exit(2);
    }
    args[arg.substr(0, eq)] = std::atof(arg.c_str() + eq + 1);
  }
  return args;
}

Tensor RandomTokens(int64_t rows, int64_t cols, int vocab, std::mt19937& rng) {
  std::uniform_int_distribution<int32_t> piece(4, vocab - 1);
  Tensor t = Tensor::Empty({rows, cols}, DType::kI32, MemoryCategory::kOther);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = piece(rng);
  return t;
}

int Run(const std::map<std::string, double>& a) {
  const int B = static_cast<int>(a.at("B")), S = static_cast<int>(a.at("S"));
  const int T = static_cast<int>(a.at("T")), vocab = static_cast<int>(a.at("vocab"));
  config::ModelConfig c;
  c.set_architecture(config::ModelConfig::ENCODER_DECODER);
  c.set_encoder_layers(static_cast<int>(a.at("layers")));
  c.set_decoder_layers(static_cast<int>(a.at("layers")));
  c.set_d_model(static_cast<int>(a.at("d_model")));
  c.set_heads(static_cast<int>(a.at("heads")));
  c.set_ffn_dim(static_cast<int>(a.at("ffn")));
  c.set_vocab_size(vocab);
  c.set_norm(config::ModelConfig::DEEPNORM);
  c.set_activation(config::ModelConfig::RELU);
  c.set_dropout(a.at("dropout"));
  c.set_tied_embeddings(true);
  c.set_max_positions(std::max(S, T));
  StatusOr<std::unique_ptr<Model>> model = Model::Build(c, ModelBuildOptions());
  if (!model.ok()) {
    std::fprintf(stderr, "step_timer: %s\n", model.status().ToString().c_str());
    return 1;
  }
  std::vector<Unit*> units;
  for (auto& unit : (*model)->units()) units.push_back(unit.get());
  OptimizerOptions options;
  options.clip_norm = 1.0;
  std::unique_ptr<Optimizer> optimizer =
      std::move(Optimizer::Create(units, options, CpuBackend())).value();

  std::mt19937 rng(1);
  MicroBatch mb;
  mb.source = RandomTokens(B, S, vocab, rng);
  mb.source_mask = Tensor::Zeros({B, S}, DType::kU8, MemoryCategory::kOther);
  mb.target_input = RandomTokens(B, T, vocab, rng);
  mb.target_mask = Tensor::Zeros({B, T}, DType::kU8, MemoryCategory::kOther);
  mb.target = RandomTokens(B, T, vocab, rng);
  mb.num_target_tokens = static_cast<int64_t>(B) * T;
  StepContext ctx;
  ctx.training = true;
  ctx.label_smoothing = 0.1;
  ctx.loss_scale = 1.0 / static_cast<double>(mb.num_target_tokens);
  LocalGradNormReducer reducer;

  std::vector<double> times;
  const int warmup = static_cast<int>(a.at("warmup")), steps = static_cast<int>(a.at("steps"));
  for (int step = 0; step < warmup + steps; ++step) {
    const auto start = std::chrono::steady_clock::now();
    ctx.step = step;
    (*model)->ZeroGrads();
    (*model)->ForwardBackward(ctx, mb);
    (*model)->SumTiedGradients();
    if (!optimizer->Step(1e-4, reducer).ok()) return 1;
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step >= warmup) times.push_back(seconds);
  }
  std::vector<double> sorted = times;
  std::sort(sorted.begin(), sorted.end());
  std::printf("{\"times_s\": [");
  for (size_t i = 0; i < times.size(); ++i) std::printf("%s%.6f", i ? ", " : "", times[i]);
  std::printf("], \"median_s\": %.6f}\n", sorted[sorted.size() / 2]);
  return 0;
}

}  // namespace
}  // namespace deepnet

int main(int argc, char** argv) {
  deepnet::KeepHostTensorsInHeap();  // as the deepnet binary does
  return deepnet::Run(deepnet::ParseArguments(argc, argv));
}
