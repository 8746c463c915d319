// DeepNorm constants against docs/design.md#deepnorm, the unit list, config validation, parameter
// names, initialisation statistics and partition invariance of the initial weights.
#include <cmath>
#include <map>

#include "model/parameters.h"
#include "model/units.h"
#include "tests/model/model_test_util.h"

namespace deepnet {
namespace {

using config::ModelConfig;
using testing::BitwiseEqual;
using testing::BuildModel;
using testing::TinyConfig;
using testing::TinyOptions;

ModelConfig Layers(ModelConfig::Architecture architecture, int n, int m) {
  TinyOptions o;
  o.architecture = architecture;
  ModelConfig c = TinyConfig(o);
  c.set_encoder_layers(n);
  c.set_decoder_layers(m);
  return c;
}

// docs/design.md#deepnorm reference values, to 6 decimals.
TEST(DeepNormConstants, MatchSpecReferenceValues) {
  constexpr double kTol = 5e-7;
  struct OneStack {
    int layers;
    double alpha, beta;
  };
  for (const OneStack& r : {OneStack{6, 1.861210, 0.379918}, OneStack{12, 2.213364, 0.319472},
                            OneStack{100, 3.760603, 0.188030}}) {
    const DeepNormConstants enc = EncoderConstants(Layers(ModelConfig::ENCODER_ONLY, r.layers, 0));
    EXPECT_NEAR(enc.alpha, r.alpha, kTol) << "encoder-only N=" << r.layers;
    EXPECT_NEAR(enc.beta, r.beta, kTol) << "encoder-only N=" << r.layers;
    // Decoder-only uses the same formulas with M.
    const DeepNormConstants dec = DecoderConstants(Layers(ModelConfig::DECODER_ONLY, 0, r.layers));
    EXPECT_NEAR(dec.alpha, r.alpha, kTol) << "decoder-only M=" << r.layers;
    EXPECT_NEAR(dec.beta, r.beta, kTol) << "decoder-only M=" << r.layers;
  }
  struct EncDec {
    int layers;
    double enc_alpha, enc_beta, dec_alpha, dec_beta;
  };
  for (const EncDec& r : {EncDec{6, 1.417938, 0.496989, 2.059767, 0.343295},
                          EncDec{100, 3.415742, 0.206310, 4.161791, 0.169904},
                          EncDec{500, 5.648240, 0.124765, 6.223330, 0.113622}}) {
    const ModelConfig c = Layers(ModelConfig::ENCODER_DECODER, r.layers, r.layers);
    EXPECT_NEAR(EncoderConstants(c).alpha, r.enc_alpha, kTol) << "N=M=" << r.layers;
    EXPECT_NEAR(EncoderConstants(c).beta, r.enc_beta, kTol) << "N=M=" << r.layers;
    EXPECT_NEAR(DecoderConstants(c).alpha, r.dec_alpha, kTol) << "N=M=" << r.layers;
    EXPECT_NEAR(DecoderConstants(c).beta, r.dec_beta, kTol) << "N=M=" << r.layers;
  }
}

TEST(DeepNormConstants, PostLnAndPreLnAreOne) {
  for (auto norm : {ModelConfig::POSTLN, ModelConfig::PRELN}) {
    ModelConfig c = Layers(ModelConfig::ENCODER_DECODER, 6, 6);
    c.set_norm(norm);
    EXPECT_EQ(EncoderConstants(c).alpha, 1.0);
    EXPECT_EQ(EncoderConstants(c).beta, 1.0);
    EXPECT_EQ(DecoderConstants(c).alpha, 1.0);
    EXPECT_EQ(DecoderConstants(c).beta, 1.0);
  }
}

std::vector<UnitKind> Kinds(const ModelConfig& c) {
  std::vector<UnitKind> kinds;
  for (const UnitInfo& info : DescribeUnits(c)) kinds.push_back(info.kind);
  return kinds;
}

TEST(DescribeUnits, OrderForEveryArchitectureAndNorm) {
  using K = UnitKind;
  ModelConfig c = Layers(ModelConfig::ENCODER_DECODER, 2, 1);
  EXPECT_EQ(Kinds(c), (std::vector<K>{K::kEmbedding, K::kEncoderLayer, K::kEncoderLayer,
                                      K::kDecoderLayer, K::kOutput}));
  c.set_norm(ModelConfig::PRELN);
  EXPECT_EQ(Kinds(c),
            (std::vector<K>{K::kEmbedding, K::kEncoderLayer, K::kEncoderLayer, K::kEncoderFinalNorm,
                            K::kDecoderLayer, K::kDecoderFinalNorm, K::kOutput}));
  c = Layers(ModelConfig::DECODER_ONLY, 0, 2);
  EXPECT_EQ(Kinds(c),
            (std::vector<K>{K::kEmbedding, K::kDecoderLayer, K::kDecoderLayer, K::kOutput}));
  c = Layers(ModelConfig::ENCODER_ONLY, 1, 0);
  c.set_norm(ModelConfig::PRELN);
  EXPECT_EQ(Kinds(c),
            (std::vector<K>{K::kEmbedding, K::kEncoderLayer, K::kEncoderFinalNorm, K::kOutput}));
  const auto units = DescribeUnits(c);
  EXPECT_EQ(units[1].name, "encoder.layers.0");
  EXPECT_EQ(units[2].name, "encoder.layer_norm");
}

TEST(DescribeUnits, CountsMatchBuiltUnits) {
  for (bool tied : {true, false}) {
    TinyOptions o;
    o.tied = tied;
    o.norm = ModelConfig::PRELN;
    const ModelConfig c = TinyConfig(o);
    auto model = BuildModel(c, DType::kF32);
    const auto infos = DescribeUnits(c);
    ASSERT_EQ(infos.size(), model->units().size());
    int64_t primary = 0;
    for (size_t i = 0; i < infos.size(); ++i) {
      const Unit& unit = *model->units()[i];
      EXPECT_EQ(infos[i].name, unit.name());
      EXPECT_EQ(infos[i].index, unit.index());
      EXPECT_EQ(infos[i].num_parameters, unit.flat_values().numel()) << unit.name();
      EXPECT_EQ(unit.flat_grads().numel(), unit.flat_values().numel());
      for (const Parameter& p : unit.parameters()) primary += p.tied_copy ? 0 : p.value.numel();
    }
    EXPECT_EQ(model->num_parameters(), primary);
    const int64_t V = 13, C = 8;
    EXPECT_EQ(infos.back().num_parameters, V * C);
  }
}

TEST(ModelBuild, RejectsBadConfigsAndRanges) {
  ModelConfig c = TinyConfig({});
  c.set_heads(3);
  auto result = Model::Build(c, {});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("heads"), std::string::npos);

  c = TinyConfig({});
  c.set_architecture(ModelConfig::DECODER_ONLY);  // encoder_layers still 2
  c.set_dropout(1.5);
  result = Model::Build(c, {});
  ASSERT_FALSE(result.ok());
  EXPECT_NE(result.status().message().find("encoder_layers"), std::string::npos);
  EXPECT_NE(result.status().message().find("dropout"), std::string::npos);

  c = TinyConfig({});
  c.clear_norm();
  EXPECT_FALSE(Model::Build(c, {}).ok());

  ModelBuildOptions options;
  options.first_unit = 3;
  options.end_unit = 3;
  result = Model::Build(TinyConfig({}), options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kOutOfRange);
  options.first_unit = 0;
  options.end_unit = 99;
  EXPECT_FALSE(Model::Build(TinyConfig({}), options).ok());
  options.end_unit = -1;
  options.dtype = DType::kI32;
  EXPECT_FALSE(Model::Build(TinyConfig({}), options).ok());
}

TEST(Parameters, NamesFollowSpec) {
  TinyOptions o;
  o.layers = 1;
  o.tied = false;
  o.norm = ModelConfig::PRELN;
  auto model = BuildModel(TinyConfig(o), DType::kF32);
  std::vector<std::string> names;
  for (Parameter* p : model->parameters()) names.push_back(p->name);
  const std::vector<std::string> expected_some = {"embed_tokens.weight",
                                                  "encoder.layers.0.self_attn.q_proj.weight",
                                                  "encoder.layers.0.self_attn.out_proj.bias",
                                                  "encoder.layers.0.self_attn_layer_norm.weight",
                                                  "encoder.layers.0.fc1.weight",
                                                  "encoder.layers.0.fc2.bias",
                                                  "encoder.layers.0.final_layer_norm.bias",
                                                  "encoder.layer_norm.weight",
                                                  "decoder.layers.0.encoder_attn.k_proj.weight",
                                                  "decoder.layers.0.encoder_attn_layer_norm.bias",
                                                  "decoder.layer_norm.bias",
                                                  "output_projection.weight"};
  for (const std::string& name : expected_some) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
  // Linear layout [out, in].
  for (Parameter* p : model->parameters()) {
    if (p->name == "encoder.layers.0.fc1.weight") {
      EXPECT_EQ(p->value.shape(), (Shape{16, 8}));
    }
    if (p->name == "encoder.layers.0.fc2.weight") {
      EXPECT_EQ(p->value.shape(), (Shape{8, 16}));
    }
  }
}

// Empirical mean and standard deviation of a tensor.
std::pair<double, double> MeanStd(const Tensor& t) {
  double sum = 0, squares = 0;
  for (int64_t i = 0; i < t.numel(); ++i) sum += testing::At(t, i);
  const double mean = sum / t.numel();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double d = testing::At(t, i) - mean;
    squares += d * d;
  }
  return {mean, std::sqrt(squares / t.numel())};
}

TEST(Parameters, InitialisationStdPerWeightClass) {
  TinyOptions o;
  o.d_model = 256;
  o.heads = 4;
  o.ffn_dim = 1024;
  o.vocab = 4000;
  o.layers = 6;
  const ModelConfig c = TinyConfig(o);
  const double enc_beta = EncoderConstants(c).beta, dec_beta = DecoderConstants(c).beta;
  // Embedding + encoder layer 0, and decoder layer 0 (unit 1 + N).
  auto front = BuildModel(c, DType::kF32, 3, 0, 2);
  auto decoder = BuildModel(c, DType::kF32, 3, 7, 8);
  const double attention = 1.0 / std::sqrt(256.0);       // Xavier (256, 256), gain 1
  const double ffn = std::sqrt(2.0 / (256.0 + 1024.0));  // Xavier (1024, 256) or (256, 1024)
  std::map<std::string, double> expected = {
      {"embed_tokens.weight", 1.0 / 16.0},
      {"encoder.layers.0.self_attn.q_proj.weight", attention},
      {"encoder.layers.0.self_attn.k_proj.weight", attention},
      {"encoder.layers.0.self_attn.v_proj.weight", enc_beta * attention},
      {"encoder.layers.0.self_attn.out_proj.weight", enc_beta * attention},
      {"encoder.layers.0.fc1.weight", enc_beta * ffn},
      {"encoder.layers.0.fc2.weight", enc_beta * ffn},
      {"decoder.layers.0.self_attn.q_proj.weight", attention},
      {"decoder.layers.0.self_attn.k_proj.weight", attention},
      {"decoder.layers.0.self_attn.v_proj.weight", dec_beta * attention},
      {"decoder.layers.0.self_attn.out_proj.weight", dec_beta * attention},
      {"decoder.layers.0.encoder_attn.q_proj.weight", attention},
      {"decoder.layers.0.encoder_attn.k_proj.weight", attention},
      {"decoder.layers.0.encoder_attn.v_proj.weight", dec_beta * attention},
      {"decoder.layers.0.encoder_attn.out_proj.weight", dec_beta * attention},
      {"decoder.layers.0.fc1.weight", dec_beta * ffn},
      {"decoder.layers.0.fc2.weight", dec_beta * ffn}};
  int checked = 0;
  for (Model* model : {front.get(), decoder.get()}) {
    for (Parameter* p : model->parameters()) {
      const auto [mean, stddev] = MeanStd(p->value);
      const bool is_bias = p->name.ends_with(".bias");
      const bool is_norm = p->name.find("layer_norm") != std::string::npos;
      if (is_norm && !is_bias) {
        EXPECT_EQ(mean, 1.0) << p->name;
        EXPECT_EQ(stddev, 0.0) << p->name;
      } else if (is_bias) {
        EXPECT_EQ(mean, 0.0) << p->name;
        EXPECT_EQ(stddev, 0.0) << p->name;
      } else {
        ASSERT_TRUE(expected.count(p->name)) << p->name;
        const double want = expected[p->name];
        EXPECT_NEAR(stddev, want, 0.03 * want) << p->name;
        EXPECT_NEAR(mean, 0.0, 0.05 * want) << p->name;
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, static_cast<int>(expected.size()));
}

TEST(Parameters, NormalDrawsAreStandard) {
  std::vector<double> x(1 << 18);
  FillNormal(x.data(), static_cast<int64_t>(x.size()), 1.0, 42, "some.weight");
  double sum = 0, squares = 0, fourth = 0;
  for (double v : x) {
    sum += v;
    squares += v * v;
    fourth += v * v * v * v;
  }
  const double n = static_cast<double>(x.size());
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(squares / n, 1.0, 0.01);
  EXPECT_NEAR(fourth / n, 3.0, 0.05);  // Gaussian kurtosis
  std::vector<double> other(16), again(16);
  FillNormal(other.data(), 16, 1.0, 42, "other.weight");
  FillNormal(again.data(), 16, 1.0, 42, "some.weight");
  EXPECT_NE(other[0], x[0]);
  EXPECT_EQ(again[0], x[0]);
  EXPECT_EQ(again[15], x[15]);
}

TEST(Parameters, PartitionInvariantInitialisation) {
  for (auto norm : {ModelConfig::DEEPNORM, ModelConfig::PRELN}) {
    TinyOptions o;
    o.norm = norm;
    const ModelConfig c = TinyConfig(o);
    auto full = BuildModel(c, DType::kF32, 99);
    const int total = full->num_units_total();
    for (auto [first, end] : {std::pair{1, -1}, std::pair{2, 4}, std::pair{total - 1, -1}}) {
      auto stage = BuildModel(c, DType::kF32, 99, first, end);
      ASSERT_EQ(stage->first_unit(), first);
      for (size_t i = 0; i < stage->units().size(); ++i) {
        const Unit& a = *stage->units()[i];
        const Unit& b = *full->units()[first + i];
        EXPECT_EQ(a.name(), b.name());
        EXPECT_TRUE(BitwiseEqual(a.flat_values(), b.flat_values())) << a.name();
      }
    }
    // The output unit's tied copy starts equal to the embedding table.
    const Parameter& table = full->units().front()->parameters().front();
    const Parameter& copy = full->units().back()->parameters().front();
    EXPECT_TRUE(copy.tied_copy);
    EXPECT_EQ(copy.name, "embed_tokens.weight");
    EXPECT_TRUE(BitwiseEqual(table.value, copy.value));
    // Another seed gives other weights.
    auto other = BuildModel(c, DType::kF32, 100);
    EXPECT_FALSE(BitwiseEqual(other->units()[1]->flat_values(), full->units()[1]->flat_values()));
  }
}

TEST(Parameters, ViewsOfFlatBuffers) {
  auto model = BuildModel(TinyConfig({}), DType::kF64);
  for (auto& unit : model->units()) {
    EXPECT_EQ(unit->flat_values().category(), MemoryCategory::kParameters);
    EXPECT_EQ(unit->flat_grads().category(), MemoryCategory::kGradients);
    int64_t offset = 0;
    for (const Parameter& p : unit->parameters()) {
      EXPECT_TRUE(p.value.SameStorage(unit->flat_values()));
      EXPECT_EQ(p.value.raw_data(), unit->flat_values().data<double>() + offset);
      EXPECT_EQ(p.grad.raw_data(), unit->flat_grads().data<double>() + offset);
      offset += p.value.numel();
    }
    EXPECT_EQ(offset, unit->flat_values().numel());
  }
}

}  // namespace
}  // namespace deepnet
