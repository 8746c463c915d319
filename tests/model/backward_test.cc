// Backward variants and saved activations: split backward ≡ backward, selective and full
// recompute ≡ none (bit for bit), saved bytes() equal the allocator's activation delta, grad.enc
// accumulation in the decoder, logits, evaluation mode and tied-gradient summation.
#include <cmath>
#include <cstring>

#include "model/unit_base.h"
#include "model/units.h"
#include "tests/model/model_test_util.h"

namespace deepnet {
namespace {

using config::ModelConfig;
using testing::BitwiseEqual;
using testing::BuildModel;
using testing::LiveActivationBytes;
using testing::MakeBatch;
using testing::TinyConfig;
using testing::TinyOptions;
using testing::TrainingContext;

TinyOptions WithDropout(ModelConfig::Architecture architecture, ModelConfig::Norm norm) {
  TinyOptions o;
  o.architecture = architecture;
  o.norm = norm;
  o.dropout = 0.1;
  o.attention_dropout = 0.1;
  o.activation_dropout = 0.1;
  return o;
}

void ExpectSameGrads(Model& a, Model& b) {
  ASSERT_EQ(a.units().size(), b.units().size());
  for (size_t i = 0; i < a.units().size(); ++i) {
    EXPECT_TRUE(BitwiseEqual(a.units()[i]->flat_grads(), b.units()[i]->flat_grads()))
        << a.units()[i]->name();
  }
}

class BackwardVariants
    : public ::testing::TestWithParam<std::pair<ModelConfig::Architecture, ModelConfig::Norm>> {};

TEST_P(BackwardVariants, SplitBackwardIsBitIdentical) {
  const ModelConfig c = TinyConfig(WithDropout(GetParam().first, GetParam().second));
  auto reference = BuildModel(c, DType::kF32);
  auto split = BuildModel(c, DType::kF32);
  const MicroBatch mb = MakeBatch(c, 3, 6, 5, 1, 2);
  const StepContext ctx = TrainingContext(mb);
  for (int repeat = 0; repeat < 2; ++repeat) {  // gradients accumulate over micro-batches
    reference->ForwardBackward(ctx, mb);

    auto& units = split->units();
    std::vector<std::unique_ptr<SavedActivations>> saved;
    Stream io;
    for (auto& unit : units) saved.push_back(unit->Forward(ctx, mb, io));
    std::vector<std::unique_ptr<DeferredWeightGrads>> deferred(units.size());
    Stream grad;
    for (size_t i = units.size(); i-- > 0;) {
      deferred[i] = units[i]->BackwardInput(ctx, mb, *saved[i], grad);
      saved[i].reset();  // the record keeps what the weight pass needs
    }
    // Weight passes in another order than the input passes.
    for (size_t i = 0; i < units.size(); ++i) units[i]->BackwardWeight(ctx, *deferred[i]);
  }
  ExpectSameGrads(*reference, *split);
}

TEST_P(BackwardVariants, SplitBackwardInputGradientsAreBitIdentical) {
  const ModelConfig c = TinyConfig(WithDropout(GetParam().first, GetParam().second));
  auto a = BuildModel(c, DType::kF32);
  auto b = BuildModel(c, DType::kF32);
  const MicroBatch mb = MakeBatch(c, 2, 5, 6, 4);
  const StepContext ctx = TrainingContext(mb);
  std::vector<std::unique_ptr<SavedActivations>> saved_a, saved_b;
  Stream io_a, io_b;
  for (size_t i = 0; i < a->units().size(); ++i) {
    saved_a.push_back(a->units()[i]->Forward(ctx, mb, io_a));
    saved_b.push_back(b->units()[i]->Forward(ctx, mb, io_b));
  }
  Stream grad_a, grad_b;
  for (size_t i = a->units().size(); i-- > 1;) {
    a->units()[i]->Backward(ctx, mb, *saved_a[i], grad_a);
    auto deferred = b->units()[i]->BackwardInput(ctx, mb, *saved_b[i], grad_b);
    EXPECT_TRUE(BitwiseEqual(grad_a.enc, grad_b.enc)) << a->units()[i]->name();
    EXPECT_TRUE(BitwiseEqual(grad_a.dec, grad_b.dec)) << a->units()[i]->name();
    // No parameter gradient before the weight pass.
    for (const Parameter& p : b->units()[i]->parameters()) {
      for (int64_t k = 0; k < p.grad.numel(); ++k) ASSERT_EQ(testing::At(p.grad, k), 0.0);
    }
    b->units()[i]->BackwardWeight(ctx, *deferred);
  }
}

TEST_P(BackwardVariants, RecomputeModesAreBitIdentical) {
  const ModelConfig c = TinyConfig(WithDropout(GetParam().first, GetParam().second));
  const MicroBatch mb = MakeBatch(c, 3, 6, 5, 9);
  StepContext ctx = TrainingContext(mb);
  auto none = BuildModel(c, DType::kF32);
  const Stream loss_none = none->ForwardBackward(ctx, mb);
  for (Recompute mode : {Recompute::kSelective, Recompute::kFull}) {
    ctx.recompute = mode;
    auto other = BuildModel(c, DType::kF32);
    const Stream loss = other->ForwardBackward(ctx, mb);
    EXPECT_EQ(loss.loss_sum, loss_none.loss_sum);
    EXPECT_EQ(loss.loss_tokens, loss_none.loss_tokens);
    ExpectSameGrads(*none, *other);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Models, BackwardVariants,
    ::testing::Values(std::pair{ModelConfig::ENCODER_DECODER, ModelConfig::DEEPNORM},
                      std::pair{ModelConfig::ENCODER_DECODER, ModelConfig::PRELN},
                      std::pair{ModelConfig::DECODER_ONLY, ModelConfig::POSTLN},
                      std::pair{ModelConfig::ENCODER_ONLY, ModelConfig::DEEPNORM}));

// Forward of unit `i` from the input made by units [0, i); returns saved.bytes() after checking
// that, with the unit's outputs dropped, the live activation bytes grew by exactly saved.bytes()
// relative to the state without the stream tensors the unit replaced.
int64_t CheckSavedBytes(Model& model, size_t i, const StepContext& ctx, const MicroBatch& mb) {
  Stream io;
  for (size_t k = 0; k < i; ++k) model.units()[k]->Forward(ctx, mb, io);
  // Remember the inputs without holding them.
  const void* enc_data = io.enc.raw_data();
  const void* dec_data = io.dec.raw_data();
  const int64_t enc_bytes = io.enc.nbytes(), dec_bytes = io.dec.nbytes();
  const int64_t before = LiveActivationBytes();
  std::unique_ptr<SavedActivations> saved = model.units()[i]->Forward(ctx, mb, io);
  // A field still holding its input passes through (the decoder's io.enc) and stays alive with
  // the stream; the others were replaced: their inputs live on only inside `saved`.
  Stream passthrough;
  int64_t consumed = 0;
  if (enc_data != nullptr && io.enc.raw_data() == enc_data) {
    passthrough.enc = io.enc;
  } else {
    consumed += enc_bytes;
  }
  if (dec_data != nullptr && io.dec.raw_data() == dec_data) {
    passthrough.dec = io.dec;
  } else {
    consumed += dec_bytes;
  }
  io = Stream();
  EXPECT_EQ(LiveActivationBytes() - (before - consumed), saved->bytes())
      << model.units()[i]->name();
  const int64_t bytes = saved->bytes();
  saved.reset();
  EXPECT_EQ(LiveActivationBytes(), before - consumed) << model.units()[i]->name() << " leaks";
  return bytes;
}

// The norms' gamma/beta contributions, held from B to W, reach the gradients with the fused
// backward's bits, down to the sign of zero: gradients that start at −0, dy = −0 (every product
// −0 or +0) and a column whose normalized inputs are all positive (its products all −0).
TEST(GradWork, DeferredNormGradientsEqualTheFusedOnesBitForBit) {
  const Backend& cpu = CpuBackend();
  constexpr int kRows = 3, kColumns = 4;
  auto tensor = [](std::vector<float> values, Shape shape) {
    Tensor t = Tensor::Empty(shape, DType::kF32, MemoryCategory::kOther);
    std::copy(values.begin(), values.end(), t.data<float>());
    return t;
  };
  const Tensor x = tensor({1, 2, 3, 9, -1, 0, 2, 7, 0.5, 0.25, 1, 4}, {kRows, kColumns});
  const Tensor g = tensor({0.1f, -0.2f, 0.3f, 0.4f, 0, 0, 0.5f, 1, -1, 2, 0, 3}, {kRows, kColumns});
  const Tensor gamma = tensor({1, 0.5f, 2, -1}, {kColumns});
  const Tensor beta = tensor({0, 0, 0, 0}, {kColumns});
  const Tensor y = tensor(std::vector<float>(kRows * kColumns), {kRows, kColumns});
  const Tensor mean = tensor(std::vector<float>(kRows), {kRows});
  const Tensor rstd = tensor(std::vector<float>(kRows), {kRows});
  constexpr double kAlpha = 1.7;
  cpu.DeepNormForward(y, mean, rstd, x, g, gamma, beta, kAlpha, 1e-5);
  for (const float dy_value : {-0.0f, 0.25f}) {
    const Tensor dy = tensor(std::vector<float>(kRows * kColumns, dy_value), {kRows, kColumns});
    std::vector<std::vector<uint32_t>> bits;
    for (const bool deferred : {false, true}) {
      Parameter p_gamma{.name = "gamma",
                        .value = gamma,
                        .grad = tensor(std::vector<float>(kColumns, -0.0f), {kColumns})};
      Parameter p_beta{.name = "beta",
                       .value = beta,
                       .grad = tensor(std::vector<float>(kColumns, -0.0f), {kColumns})};
      const Tensor dx = tensor(std::vector<float>(kRows * kColumns), {kRows, kColumns});
      GradWork work(cpu, deferred);
      work.DeepNorm(&dx, nullptr, p_gamma, p_beta, dy, x, g, mean, rstd, kAlpha);
      work.LayerNorm(dx, p_gamma, p_beta, dy, x, mean, rstd);
      work.Run();
      std::vector<uint32_t> grads(2 * kColumns);
      std::memcpy(grads.data(), p_gamma.grad.data<float>(), kColumns * sizeof(float));
      std::memcpy(grads.data() + kColumns, p_beta.grad.data<float>(), kColumns * sizeof(float));
      bits.push_back(grads);
    }
    EXPECT_EQ(bits[0], bits[1]) << "dy = " << dy_value;
  }
}

TEST(SavedActivations, BytesEqualAllocatorDelta) {
  for (auto norm : {ModelConfig::DEEPNORM, ModelConfig::PRELN}) {
    const ModelConfig c = TinyConfig(WithDropout(ModelConfig::ENCODER_DECODER, norm));
    auto model = BuildModel(c, DType::kF32);
    const int64_t B = 3, S = 7, T = 5, H = 2;
    const MicroBatch mb = MakeBatch(c, B, S, T, 2);
    StepContext ctx = TrainingContext(mb);
    for (size_t i = 0; i < model->units().size(); ++i) {
      ctx.recompute = Recompute::kNone;
      const int64_t none = CheckSavedBytes(*model, i, ctx, mb);
      ctx.recompute = Recompute::kSelective;
      const int64_t selective = CheckSavedBytes(*model, i, ctx, mb);
      // Selective recompute drops exactly the attention probabilities (f32).
      const Unit* unit = model->units()[i].get();
      int64_t probs = 0;
      if (dynamic_cast<const EncoderLayerUnit*>(unit) != nullptr) probs = 4 * B * H * S * S;
      if (dynamic_cast<const DecoderLayerUnit*>(unit) != nullptr) {
        probs = 4 * B * H * T * T + 4 * B * H * T * S;
      }
      EXPECT_EQ(none - selective, probs) << unit->name();
      if (i > 0) {
        EXPECT_GT(none, 0) << unit->name();
      }
    }
  }
}

// The last decoder layer finds grad.enc empty and creates it; the others add to it.
TEST(DecoderBackward, AccumulatesIntoEncoderGradient) {
  const ModelConfig c = TinyConfig({});  // encoder-decoder, 2 + 2 layers
  auto model = BuildModel(c, DType::kF64);
  const MicroBatch mb = MakeBatch(c, 2, 5, 4, 8);
  const StepContext ctx = TrainingContext(mb);
  auto& units = model->units();
  const size_t output = units.size() - 1, last_decoder = units.size() - 2;
  std::vector<std::unique_ptr<SavedActivations>> saved;
  Stream io;
  for (auto& unit : units) saved.push_back(unit->Forward(ctx, mb, io));

  Stream grad;
  units[output]->Backward(ctx, mb, *saved[output], grad);
  EXPECT_TRUE(IsEmpty(grad.enc));
  ASSERT_FALSE(IsEmpty(grad.dec));
  const Tensor dec_grad = grad.dec.Clone();

  units[last_decoder]->Backward(ctx, mb, *saved[last_decoder], grad);
  ASSERT_FALSE(IsEmpty(grad.enc));
  EXPECT_EQ(grad.enc.shape(), (Shape{2, 5, 8}));
  const Tensor alone = grad.enc.Clone();

  // Again with a grad.enc already present: the layer adds its part to it.
  Stream preset;
  preset.dec = dec_grad;
  preset.enc = alone.Clone();
  units[last_decoder]->Backward(ctx, mb, *saved[last_decoder], preset);
  double largest = 0.0;
  for (int64_t k = 0; k < alone.numel(); ++k) {
    EXPECT_NEAR(preset.enc.data<double>()[k], 2 * alone.data<double>()[k], 1e-12);
    largest = std::max(largest, std::abs(alone.data<double>()[k]));
  }
  EXPECT_GT(largest, 0.0);
}

TEST(ModelLogits, MatchTheLossAndIgnoreDropoutInEvaluation) {
  TinyOptions o = WithDropout(ModelConfig::ENCODER_DECODER, ModelConfig::DEEPNORM);
  const ModelConfig c = TinyConfig(o);
  auto model = BuildModel(c, DType::kF64);
  const MicroBatch mb = MakeBatch(c, 3, 6, 5, 12);
  StepContext ctx = TrainingContext(mb, /*label_smoothing=*/0.0);
  ctx.training = false;
  const Stream eval = model->Forward(ctx, mb);
  const Tensor logits = model->Logits(ctx, mb);
  ASSERT_EQ(logits.shape(), (Shape{3, 5, 13}));
  double loss = 0.0;
  for (int64_t n = 0; n < 15; ++n) {
    const int target = mb.target.data<int32_t>()[n];
    if (target == testing::kPad) continue;
    const double* row = logits.data<double>() + n * 13;
    double sum = 0.0;
    for (int v = 0; v < 13; ++v) sum += std::exp(row[v]);
    loss += std::log(sum) - row[target];
  }
  EXPECT_NEAR(eval.loss_sum, loss, 1e-10);
  EXPECT_EQ(eval.loss_tokens, mb.num_target_tokens);

  // Evaluation equals the same weights without dropout; training differs.
  o.dropout = o.attention_dropout = o.activation_dropout = 0.0;
  auto plain = BuildModel(TinyConfig(o), DType::kF64);
  EXPECT_EQ(plain->Forward(ctx, mb).loss_sum, eval.loss_sum);
  ctx.training = true;
  EXPECT_NE(model->Forward(ctx, mb).loss_sum, eval.loss_sum);
}

TEST(TiedEmbeddings, GradientsSummedIntoBothCopies) {
  const ModelConfig c = TinyConfig({});
  auto model = BuildModel(c, DType::kF32);
  const MicroBatch mb = MakeBatch(c, 2, 5, 4, 3);
  model->ForwardBackward(TrainingContext(mb), mb);
  Parameter& table = model->units().front()->parameters().front();
  Parameter& copy = model->units().back()->parameters().front();
  const Tensor from_embedding = table.grad.Clone(), from_output = copy.grad.Clone();
  model->SumTiedGradients();
  EXPECT_TRUE(BitwiseEqual(table.grad, copy.grad));
  for (int64_t k = 0; k < table.grad.numel(); ++k) {
    ASSERT_EQ(table.grad.data<float>()[k],
              from_embedding.data<float>()[k] + from_output.data<float>()[k]);
  }
  model->ZeroGrads();
  for (auto& unit : model->units()) {
    for (int64_t k = 0; k < unit->flat_grads().numel(); ++k) {
      ASSERT_EQ(unit->flat_grads().data<float>()[k], 0.0f);
    }
  }
}

}  // namespace
}  // namespace deepnet
