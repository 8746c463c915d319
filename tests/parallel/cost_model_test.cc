// Analytic cost model: unit order, parameter counts, and the activation formula of
// docs/design.md#recompute-memory.
#include "parallel/cost_model.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace deepnet {
namespace {

using Arch = ModelShape::Arch;
using Recompute = CostModelOptions::Recompute;

// b = 2 sentences, S = 16, T = 8, h = 64, a = 4 heads, f = 256, V = 1000.
ModelShape SmallShape(Arch arch) {
  return {.arch = arch,
          .encoder_layers = 3,
          .decoder_layers = 2,
          .d_model = 64,
          .heads = 4,
          .ffn_dim = 256,
          .vocab = 1000};
}

CostModelOptions SmallOptions(Recompute recompute, int dtype_bytes) {
  return {.batch = 2,
          .source_len = 16,
          .target_len = 8,
          .dtype_bytes = dtype_bytes,
          .flops_per_s = 1e9,
          .recompute = recompute};
}

TEST(PipelineCostModelTest, ListsUnitsInModelOrder) {
  ModelShape shape = SmallShape(Arch::kEncoderDecoder);
  std::vector<UnitCost> units = EstimateUnitCosts(shape, SmallOptions(Recompute::kNone, 4));
  std::vector<std::string> names;
  for (const UnitCost& u : units) names.push_back(u.name);
  EXPECT_EQ(names, (std::vector<std::string>{"embedding", "encoder.layers.0", "encoder.layers.1",
                                             "encoder.layers.2", "decoder.layers.0",
                                             "decoder.layers.1", "output"}));
  shape.pre_ln = true;
  units = EstimateUnitCosts(shape, SmallOptions(Recompute::kNone, 4));
  ASSERT_EQ(units.size(), 9u);
  EXPECT_EQ(units[4].name, "encoder.layer_norm");
  EXPECT_EQ(units[7].name, "decoder.layer_norm");
  EXPECT_EQ(
      EstimateUnitCosts(SmallShape(Arch::kEncoderOnly), SmallOptions(Recompute::kNone, 4)).size(),
      5u);
  // The 1,000-layer DeepNet (500-500): embedding + 1,000 layers + output.
  const ModelShape deepnet{
      .arch = Arch::kEncoderDecoder, .encoder_layers = 500, .decoder_layers = 500, .vocab = 64000};
  EXPECT_EQ(EstimateUnitCosts(deepnet, {}).size(), 1002u);
}

TEST(PipelineCostModelTest, CountsParameters) {
  const std::vector<UnitCost> units =
      EstimateUnitCosts(SmallShape(Arch::kEncoderDecoder), SmallOptions(Recompute::kNone, 4));
  const int64_t h = 64, f = 256, V = 1000;
  const int64_t encoder = 4 * h * h + 4 * h + 2 * h + 2 * h * f + f + h + 2 * h;
  const int64_t decoder = encoder + 4 * h * h + 4 * h + 2 * h;
  EXPECT_EQ(units[0].param_bytes, V * h * 4);
  EXPECT_EQ(units[1].param_bytes, encoder * 4);
  EXPECT_EQ(units[4].param_bytes, decoder * 4);
  EXPECT_EQ(units[6].param_bytes, V * h * 4);
  EXPECT_EQ(units[1].grad_bytes, units[1].param_bytes);
  EXPECT_EQ(units[1].optimizer_bytes, encoder * 8);
  // d = 512, f = 2048: the familiar 3.15 M parameters of a Transformer-base encoder layer.
  const UnitCost base =
      EstimateUnitCosts({.arch = Arch::kEncoderOnly, .encoder_layers = 1}, {.dtype_bytes = 1})[1];
  EXPECT_EQ(base.param_bytes, 3152384);
}

TEST(PipelineCostModelTest, EncoderLayerActivationsFollowKorthikanti) {
  const int64_t s = 16, b = 2, h = 64, a = 4;
  const int64_t full16 = s * b * h * 34 + 5 * a * s * s * b;  // s·b·h·(34 + 5as/h)
  auto layer = [](Recompute recompute, int dtype) {
    return EstimateUnitCosts(SmallShape(Arch::kEncoderOnly), SmallOptions(recompute, dtype))[1];
  };
  EXPECT_EQ(layer(Recompute::kNone, 2).activation_bytes, full16);
  EXPECT_EQ(layer(Recompute::kNone, 4).activation_bytes, 2 * full16);
  EXPECT_EQ(layer(Recompute::kSelective, 2).activation_bytes, s * b * h * 34);
  EXPECT_EQ(layer(Recompute::kFull, 2).activation_bytes, 2 * s * b * h);
  EXPECT_EQ(layer(Recompute::kFull, 4).activation_bytes, 4 * s * b * h);
  EXPECT_EQ(layer(Recompute::kNone, 4).input_bytes, 4 * s * b * h);
  // A decoder-only layer is the same layer over the target length.
  const UnitCost lm =
      EstimateUnitCosts(SmallShape(Arch::kDecoderOnly), SmallOptions(Recompute::kNone, 2))[1];
  EXPECT_EQ(lm.activation_bytes, 8 * b * h * 34 + 5 * a * 8 * 8 * b);
}

TEST(PipelineCostModelTest, CrossAttentionLayerKeepsMore) {
  const int64_t S = 16, T = 8, b = 2, h = 64, a = 4;
  const UnitCost decoder =
      EstimateUnitCosts(SmallShape(Arch::kEncoderDecoder), SmallOptions(Recompute::kNone, 2))[4];
  EXPECT_EQ(decoder.activation_bytes, T * b * h * 47 + 4 * S * b * h + 5 * a * b * (T * T + T * S));
  const UnitCost selective = EstimateUnitCosts(SmallShape(Arch::kEncoderDecoder),
                                               SmallOptions(Recompute::kSelective, 2))[4];
  EXPECT_EQ(selective.activation_bytes, T * b * h * 47 + 4 * S * b * h);
}

TEST(PipelineCostModelTest, TimesFollowTheFlops) {
  const std::vector<UnitCost> none =
      EstimateUnitCosts(SmallShape(Arch::kEncoderDecoder), SmallOptions(Recompute::kNone, 4));
  const std::vector<UnitCost> full =
      EstimateUnitCosts(SmallShape(Arch::kEncoderDecoder), SmallOptions(Recompute::kFull, 4));
  const std::vector<UnitCost> selective =
      EstimateUnitCosts(SmallShape(Arch::kEncoderDecoder), SmallOptions(Recompute::kSelective, 4));
  const int64_t s = 16, b = 2, h = 64, f = 256;
  const double encoder_flops = 8.0 * b * s * h * h + 4.0 * b * s * s * h + 4.0 * b * s * h * f;
  EXPECT_DOUBLE_EQ(none[1].forward_s, encoder_flops / 1e9);
  for (size_t i = 0; i < none.size(); ++i) {
    EXPECT_DOUBLE_EQ(none[i].backward_s, 2 * none[i].forward_s) << none[i].name;
    EXPECT_EQ(none[i].recompute_s, 0.0);
    EXPECT_DOUBLE_EQ(full[i].recompute_s, full[i].forward_s);
    EXPECT_LE(selective[i].recompute_s, 0.5 * full[i].forward_s);
  }
  EXPECT_GT(selective[1].recompute_s, 0.0);
  EXPECT_GT(none[4].forward_s, none[1].forward_s * 8 / 16);  // cross-attention adds work
  const int64_t T = 8, V = 1000;
  EXPECT_DOUBLE_EQ(none[6].forward_s, (2.0 * b * T * h * V + 5.0 * b * T * V) / 1e9);
}

}  // namespace
}  // namespace deepnet
