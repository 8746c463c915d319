// Whole-model finite-difference gradient checks in fp64: every architecture, every norm, tied and
// untied embeddings, padding in source and target, label smoothing, with and without dropout
// (dropout masks are a pure function of the Philox stream, so the perturbed forwards see the same
// masks). Every parameter tensor is sampled; the embedding table more densely.
#include <cmath>
#include <random>
#include <tuple>

#include "tests/model/model_test_util.h"

namespace deepnet {
namespace {

using config::ModelConfig;
using testing::BuildModel;
using testing::MakeBatch;
using testing::TinyConfig;
using testing::TinyOptions;
using testing::TrainingContext;

double Loss(Model& model, const StepContext& ctx, const MicroBatch& mb) {
  return model.Forward(ctx, mb).loss_sum * ctx.loss_scale;
}

// Checks the analytic gradient of every element (`all`) or of sampled elements of every parameter
// against central differences; returns the number of elements checked.
int CheckGradients(const ModelConfig& config, double label_smoothing = 0.1, bool all = false) {
  testing::SingleThreaded single_thread;
  auto model = BuildModel(config, DType::kF64, 5);
  const MicroBatch mb = MakeBatch(config, /*B=*/3, /*S=*/5, /*T=*/4, /*seed=*/17, /*index=*/1);
  const StepContext ctx = TrainingContext(mb, label_smoothing);
  model->ZeroGrads();
  const Stream result = model->ForwardBackward(ctx, mb);
  model->SumTiedGradients();
  EXPECT_EQ(result.loss_tokens, mb.num_target_tokens);
  EXPECT_TRUE(std::isfinite(result.loss_sum));

  // The tied copy moves with the primary table.
  Parameter* tied_copy = nullptr;
  for (Parameter* p : model->parameters()) {
    if (p->tied_copy) tied_copy = p;
  }
  std::mt19937 rng(3);
  constexpr double kStep = 1e-5;
  int checked = 0;
  for (Parameter* p : model->parameters()) {
    if (p->tied_copy) continue;
    double* value = p->value.data<double>();
    const double* grad = p->grad.data<double>();
    double* copy = (tied_copy != nullptr && p->name == tied_copy->name)
                       ? tied_copy->value.data<double>()
                       : nullptr;
    const int64_t n = p->value.numel();
    const int64_t samples = all ? n : (p->name == "embed_tokens.weight" ? 24 : 5);
    std::uniform_int_distribution<int64_t> pick(0, n - 1);
    for (int64_t s = 0; s < std::min(samples, n); ++s) {
      const int64_t i = samples >= n ? s : pick(rng);
      const double original = value[i];
      auto set = [&](double v) {
        value[i] = v;
        if (copy != nullptr) copy[i] = v;
      };
      set(original + kStep);
      const double plus = Loss(*model, ctx, mb);
      set(original - kStep);
      const double minus = Loss(*model, ctx, mb);
      set(original);
      const double numeric = (plus - minus) / (2 * kStep);
      const double analytic = grad[i];
      const double tolerance = 1e-6 * std::max(std::abs(numeric), std::abs(analytic)) + 1e-9;
      EXPECT_NEAR(analytic, numeric, tolerance) << p->name << "[" << i << "]";
      ++checked;
    }
  }
  return checked;
}

using GradCase = std::tuple<ModelConfig::Architecture, ModelConfig::Norm, bool>;

class WholeModelGradient : public ::testing::TestWithParam<GradCase> {};

TEST_P(WholeModelGradient, MatchesFiniteDifferences) {
  const auto [architecture, norm, tied] = GetParam();
  TinyOptions o;
  o.architecture = architecture;
  o.norm = norm;
  o.tied = tied;
  // ReLU for the untied runs, GELU for the tied ones: both activations are covered.
  o.activation = tied ? ModelConfig::GELU : ModelConfig::RELU;
  // The main configuration checks every element, the others a sample of each tensor.
  const bool all = architecture == ModelConfig::ENCODER_DECODER && norm == ModelConfig::DEEPNORM;
  EXPECT_GT(CheckGradients(TinyConfig(o), 0.1, all), all ? 3000 : 100);
}

INSTANTIATE_TEST_SUITE_P(
    AllArchitecturesAndNorms, WholeModelGradient,
    ::testing::Combine(::testing::Values(ModelConfig::ENCODER_DECODER, ModelConfig::DECODER_ONLY,
                                         ModelConfig::ENCODER_ONLY),
                       ::testing::Values(ModelConfig::DEEPNORM, ModelConfig::POSTLN,
                                         ModelConfig::PRELN),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<GradCase>& info) {
      return ModelConfig::Architecture_Name(std::get<0>(info.param)) + "_" +
             ModelConfig::Norm_Name(std::get<1>(info.param)) +
             (std::get<2>(info.param) ? "_tied" : "_untied");
    });

TEST(WholeModelGradientWithDropout, MatchesFiniteDifferences) {
  for (auto norm : {ModelConfig::DEEPNORM, ModelConfig::PRELN}) {
    TinyOptions o;
    o.norm = norm;
    o.dropout = 0.2;
    o.attention_dropout = 0.15;
    o.activation_dropout = 0.1;
    EXPECT_GT(CheckGradients(TinyConfig(o)), 100);
  }
}

TEST(WholeModelGradientWithoutSmoothing, MatchesFiniteDifferences) {
  TinyOptions o;
  o.architecture = ModelConfig::DECODER_ONLY;
  EXPECT_GT(CheckGradients(TinyConfig(o), /*label_smoothing=*/0.0), 50);
}

}  // namespace
}  // namespace deepnet
