// A tiny DeepNet memorises one batch with a plain Adam loop over the units' flat buffers.
#include <cmath>

#include "tests/model/model_test_util.h"

namespace deepnet {
namespace {

using config::ModelConfig;
using testing::BuildModel;
using testing::MakeBatch;
using testing::TinyConfig;
using testing::TinyOptions;
using testing::TrainingContext;

double TrainOneBatch(const ModelConfig& config, int steps) {
  auto model = BuildModel(config, DType::kF32, 21);
  MicroBatch mb = MakeBatch(config, /*B=*/4, /*S=*/7, /*T=*/6, /*seed=*/5);
  if (config.architecture() == ModelConfig::DECODER_ONLY) {
    // Every row's first prediction sees only <s>: keep it for row 0 alone, so that the batch can
    // be memorised exactly.
    for (int b = 1; b < 4; ++b) mb.target.data<int32_t>()[b * 6] = testing::kPad;
    mb.num_target_tokens -= 3;
  }
  const StepContext ctx = TrainingContext(mb, /*label_smoothing=*/0.0);
  const Backend& backend = model->backend();
  std::vector<Tensor> m, v;
  for (auto& unit : model->units()) {
    m.push_back(
        backend.Zeros(unit->flat_values().shape(), DType::kF32, MemoryCategory::kOptimizerState));
    v.push_back(
        backend.Zeros(unit->flat_values().shape(), DType::kF32, MemoryCategory::kOptimizerState));
  }
  AdamWConfig adam;
  adam.lr = 1e-2;
  double loss = 0.0;
  for (int step = 1; step <= steps; ++step) {
    model->ZeroGrads();
    const Stream result = model->ForwardBackward(ctx, mb);
    loss = result.loss_sum / static_cast<double>(result.loss_tokens);
    model->SumTiedGradients();
    for (size_t i = 0; i < model->units().size(); ++i) {
      const Unit& unit = *model->units()[i];
      backend.AdamW(unit.flat_values(), m[i], v[i], unit.flat_grads(), adam, step, 1.0);
    }
  }
  // The tied copies moved together.
  if (config.tied_embeddings()) {
    EXPECT_TRUE(testing::BitwiseEqual(model->units().front()->parameters().front().value,
                                      model->units().back()->parameters().front().value));
  }
  return loss;
}

TEST(Training, TinyEncoderDecoderOverfitsOneBatch) {
  TinyOptions o;
  o.d_model = 32;
  o.heads = 4;
  o.ffn_dim = 64;
  o.vocab = 24;
  o.activation = ModelConfig::RELU;
  const double loss = TrainOneBatch(TinyConfig(o), 200);
  EXPECT_LT(loss, 0.1);
}

TEST(Training, TinyPreLnDecoderOnlyOverfitsOneBatch) {
  TinyOptions o;
  o.architecture = ModelConfig::DECODER_ONLY;
  o.norm = ModelConfig::PRELN;
  o.tied = false;
  o.d_model = 32;
  o.heads = 4;
  o.ffn_dim = 64;
  o.vocab = 24;
  const double loss = TrainOneBatch(TinyConfig(o), 200);
  EXPECT_LT(loss, 0.1);
}

}  // namespace
}  // namespace deepnet
