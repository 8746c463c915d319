// Optimizer: Adam / AdamW against a hand-written double-precision reference, global-norm
// clipping over primary copies only, tied copies kept bit-identical, and the pluggable reducer.
#include "train/optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace deepnet {
namespace {

// A unit that only holds parameters (the optimizer never runs a unit).
class ParamsOnlyUnit final : public Unit {
 public:
  ParamsOnlyUnit(std::string name, int index) : Unit(std::move(name), index) {}
  void AddParameter(std::string name, std::vector<float> value, std::vector<float> grad,
                    bool tied_copy = false) {
    Parameter p;
    p.name = std::move(name);
    p.value = Tensor::Empty({static_cast<int64_t>(value.size())}, DType::kF32,
                            MemoryCategory::kParameters);
    p.grad = Tensor::Empty(p.value.shape(), DType::kF32, MemoryCategory::kGradients);
    std::memcpy(p.value.raw_data(), value.data(), p.value.nbytes());
    std::memcpy(p.grad.raw_data(), grad.data(), p.grad.nbytes());
    p.tied_copy = tied_copy;
    parameters_.push_back(std::move(p));
  }
  std::unique_ptr<SavedActivations> Forward(const StepContext&, const MicroBatch&,
                                            Stream&) override {
    return nullptr;
  }
  void Backward(const StepContext&, const MicroBatch&, const SavedActivations&, Stream&) override {}
  std::unique_ptr<DeferredWeightGrads> BackwardInput(const StepContext&, const MicroBatch&,
                                                     const SavedActivations&, Stream&) override {
    return nullptr;
  }
  void BackwardWeight(const StepContext&, DeferredWeightGrads&) override {}
};

std::vector<float> Values(const Tensor& t) {
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

// torch.optim.Adam / AdamW for one scalar, in double.
struct AdamReference {
  double m = 0, v = 0;
  double Step(double param, double grad, int64_t t, double lr, const OptimizerOptions& o) {
    if (o.type == config::OptimizerConfig::ADAM) grad += o.weight_decay * param;
    if (o.type == config::OptimizerConfig::ADAMW) param *= 1.0 - lr * o.weight_decay;
    m = o.beta1 * m + (1 - o.beta1) * grad;
    v = o.beta2 * v + (1 - o.beta2) * grad * grad;
    const double m_hat = m / (1 - std::pow(o.beta1, t));
    const double v_hat = v / (1 - std::pow(o.beta2, t));
    return param - lr * m_hat / (std::sqrt(v_hat) + o.eps);
  }
};

void RunAgainstReference(config::OptimizerConfig::Type type, double weight_decay, double clip) {
  const std::vector<float> init = {0.5f, -1.25f, 2.0f};
  const std::vector<std::vector<float>> grads = {
      {0.3f, -0.2f, 1.0f}, {-0.1f, 0.4f, 0.05f}, {2.0f, 1.5f, -3.0f}};
  ParamsOnlyUnit unit("u", 0);
  unit.AddParameter("w", init, grads[0]);
  OptimizerOptions options;
  options.type = type;
  options.weight_decay = weight_decay;
  options.clip_norm = clip;
  auto optimizer = *Optimizer::Create({&unit}, options, CpuBackend());
  LocalGradNormReducer reducer;
  std::vector<AdamReference> reference(init.size());
  std::vector<double> expected(init.begin(), init.end());
  for (int t = 1; t <= 3; ++t) {
    Parameter& p = unit.parameters()[0];
    std::memcpy(p.grad.raw_data(), grads[t - 1].data(), p.grad.nbytes());
    double norm = 0;
    for (float g : grads[t - 1]) norm += double{g} * g;
    norm = std::sqrt(norm);
    const double scale = clip > 0 ? std::min(1.0, clip / (norm + 1e-6)) : 1.0;
    const double lr = 1e-2 * t;
    const OptimizerStepStats stats = *optimizer->Step(lr, reducer);
    EXPECT_NEAR(stats.grad_norm, norm, 1e-6);
    EXPECT_NEAR(stats.clip_scale, scale, 1e-12);
    for (size_t i = 0; i < init.size(); ++i) {
      expected[i] = reference[i].Step(expected[i], grads[t - 1][i] * scale, t, lr, options);
      EXPECT_NEAR(Values(p.value)[i], expected[i], 2e-6) << "step " << t << " element " << i;
    }
  }
  EXPECT_EQ(optimizer->step(), 3);
}

TEST(OptimizerTest, AdamMatchesReference) {
  RunAgainstReference(config::OptimizerConfig::ADAM, 0.0, 0.0);
}
TEST(OptimizerTest, AdamWithL2MatchesReference) {
  RunAgainstReference(config::OptimizerConfig::ADAM, 0.1, 0.0);
}
TEST(OptimizerTest, AdamWMatchesReference) {
  RunAgainstReference(config::OptimizerConfig::ADAMW, 0.1, 0.0);
}
TEST(OptimizerTest, ClippedAdamMatchesReference) {
  RunAgainstReference(config::OptimizerConfig::ADAM, 0.0, 0.5);
}
TEST(OptimizerTest, ClippedAdamWWithDecayMatchesReference) {
  RunAgainstReference(config::OptimizerConfig::ADAMW, 0.05, 0.5);
}

TEST(OptimizerTest, NormSkipsTiedCopiesWhichStayIdentical) {
  ParamsOnlyUnit embedding("embedding", 0);
  embedding.AddParameter("embed_tokens.weight", {1, 2, 3, 4}, {3, 0, 0, 4});
  ParamsOnlyUnit output("output", 1);
  output.AddParameter("embed_tokens.weight", {1, 2, 3, 4}, {3, 0, 0, 4}, /*tied_copy=*/true);
  output.AddParameter("bias", {0, 0}, {0, 12});
  OptimizerOptions options;
  options.clip_norm = 1.0;
  auto optimizer = *Optimizer::Create({&embedding, &output}, options, CpuBackend());
  const std::vector<UnitGradSquares> partials = optimizer->LocalGradSquares();
  ASSERT_EQ(partials.size(), 2u);
  EXPECT_EQ(partials[0].unit_index, 0);
  EXPECT_EQ(partials[0].sum_of_squares, 25.0);
  EXPECT_EQ(partials[1].unit_index, 1);
  EXPECT_EQ(partials[1].sum_of_squares, 144.0);  // the tied copy is not counted
  LocalGradNormReducer reducer;
  for (int t = 0; t < 3; ++t) {
    const OptimizerStepStats stats = *optimizer->Step(1e-2, reducer);
    EXPECT_DOUBLE_EQ(stats.grad_norm, 13.0);
    EXPECT_DOUBLE_EQ(stats.clip_scale, 1.0 / (13.0 + 1e-6));  // PyTorch: max / (norm + 1e-6)
    const Tensor& primary = embedding.parameters()[0].value;
    const Tensor& copy = output.parameters()[0].value;
    EXPECT_EQ(std::memcmp(primary.raw_data(), copy.raw_data(), primary.nbytes()), 0);
  }
  EXPECT_NE(Values(embedding.parameters()[0].value)[0], 1.0f);
}

// A reducer standing in for the pipeline's: sees the local partials, adds a remote unit's.
class RecordingReducer final : public GradNormReducer {
 public:
  std::vector<UnitGradSquares> seen;
  StatusOr<double> GlobalSumOfSquares(const std::vector<UnitGradSquares>& local) override {
    seen = local;
    double total = 0;
    for (const UnitGradSquares& unit : local) total += unit.sum_of_squares;
    return total + 75.0;  // another rank's units
  }
};

TEST(OptimizerTest, ReducerIsPluggable) {
  ParamsOnlyUnit unit("encoder.layers.4", 5);
  unit.AddParameter("w", {1, 1}, {3, 4});
  OptimizerOptions options;
  options.clip_norm = 5.0;
  auto optimizer = *Optimizer::Create({&unit}, options, CpuBackend());
  RecordingReducer reducer;
  const OptimizerStepStats stats = *optimizer->Step(1e-3, reducer);
  ASSERT_EQ(reducer.seen.size(), 1u);
  EXPECT_EQ(reducer.seen[0].unit_index, 5);
  EXPECT_DOUBLE_EQ(stats.grad_norm, 10.0);  // sqrt(25 + 75)
  EXPECT_DOUBLE_EQ(stats.clip_scale, 5.0 / (10.0 + 1e-6));
}

TEST(OptimizerTest, NonFiniteGradientsSkipTheStepAndCountIt) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity()}) {
    ParamsOnlyUnit unit("u", 0);
    unit.AddParameter("w", {1, 2}, {bad, 1});
    auto optimizer = *Optimizer::Create({&unit}, OptimizerOptions(), CpuBackend());
    LocalGradNormReducer reducer;
    StatusOr<OptimizerStepStats> stats = optimizer->Step(1e-3, reducer);
    ASSERT_TRUE(stats.ok()) << stats.status();
    EXPECT_TRUE(stats->skipped);
    EXPECT_EQ(stats->skipped_steps, 1);
    EXPECT_EQ(stats->next_loss_scale, 1.0);  // no loss scaling: the scale stays
    EXPECT_EQ(Values(unit.parameters()[0].value), (std::vector<float>{1, 2}));
    EXPECT_EQ(Values(optimizer->states()[0].m), (std::vector<float>{0, 0}));
    EXPECT_EQ(optimizer->step(), 0);
    EXPECT_EQ(optimizer->skipped_steps(), 1);
    EXPECT_TRUE(optimizer->CheckFinite().ok());
  }
}

TEST(OptimizerTest, CheckFiniteNamesThePoisonedParameterOrMoment) {
  ParamsOnlyUnit unit("u", 0);
  unit.AddParameter("w", {1, 2}, {0, 0});
  unit.AddParameter("b", {1}, {0});
  auto optimizer = *Optimizer::Create({&unit}, OptimizerOptions(), CpuBackend());
  EXPECT_TRUE(optimizer->CheckFinite().ok());
  optimizer->states()[1].v.data<float>()[0] = std::numeric_limits<float>::infinity();
  const Status status = optimizer->CheckFinite();
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(status.message().find("parameter b (Adam v) of u"), std::string::npos) << status;
}

TEST(OptimizerTest, MomentsAreOptimizerState) {
  ParamsOnlyUnit unit("u", 0);
  unit.AddParameter("w", {1, 2, 3}, {0, 0, 0});
  const int64_t before =
      GetAllocator(Device::Cpu()).stats().current_of(MemoryCategory::kOptimizerState);
  auto optimizer = *Optimizer::Create({&unit}, OptimizerOptions(), CpuBackend());
  const int64_t after =
      GetAllocator(Device::Cpu()).stats().current_of(MemoryCategory::kOptimizerState);
  EXPECT_EQ(after - before, 2 * 3 * 4);
  ASSERT_EQ(optimizer->states().size(), 1u);
  EXPECT_EQ(Values(optimizer->states()[0].m), (std::vector<float>{0, 0, 0}));
}

}  // namespace
}  // namespace deepnet
