// Unit profiler and step-time prediction on a tiny model: every unit kind measured with positive
// times and exact byte counts (on the CPU, and on the strict test device whose memory the host
// cannot read), costs for every unit, predictions that obey the schedule algebra.
// Letters: B batch, S source length, T target length, p stages, m micro-batches.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <string>

#include "kernels/strict/strict_backend.h"
#include "model/model.h"
#include "profile/micro_batch_shape.h"
#include "profile/prediction.h"
#include "profile/unit_profiler.h"
#include "text/shard.h"

namespace deepnet {
namespace {

config::ModelConfig TinyModel(config::ModelConfig::Norm norm = config::ModelConfig::DEEPNORM) {
  config::ModelConfig c;
  c.set_architecture(config::ModelConfig::ENCODER_DECODER);
  c.set_encoder_layers(2);
  c.set_decoder_layers(3);
  c.set_d_model(16);
  c.set_heads(2);
  c.set_ffn_dim(32);
  c.set_vocab_size(40);
  c.set_norm(norm);
  c.set_activation(config::ModelConfig::RELU);
  c.set_dropout(0.1);
  c.set_attention_dropout(0.0);
  c.set_activation_dropout(0.0);
  c.set_tied_embeddings(true);
  c.set_max_positions(64);
  c.set_layernorm_eps(1e-5);
  return c;
}

ModelProfile ProfileTiny(const config::ModelConfig& model, Recompute recompute,
                         const Backend* backend = nullptr,
                         std::optional<DType> compute_dtype = std::nullopt) {
  UnitProfileOptions options;
  options.warmup = 1;
  options.repetitions = 3;
  options.recompute = recompute;
  options.backend = backend;
  options.compute_dtype = compute_dtype;
  const StatusOr<ModelProfile> profile = ProfileUnitKinds(model, {4, 10, 8}, options);
  EXPECT_TRUE(profile.ok()) << profile.status();
  return profile.ok() ? *profile : ModelProfile{};
}

TEST(TimingStatsTest, NearestRank) {
  const TimingStats stats = TimingStats::Of({5, 1, 3, 2, 4, 6, 7, 8, 9, 10});
  EXPECT_EQ(stats.median_s, 5);
  EXPECT_EQ(stats.p10_s, 1);
  EXPECT_EQ(stats.p90_s, 9);
  EXPECT_EQ(TimingStats::Of({}).median_s, 0);
}

TEST(UnitProfilerTest, MeasuresEveryKindOnce) {
  const config::ModelConfig model = TinyModel();
  const ModelProfile profile = ProfileTiny(model, Recompute::kNone);
  ASSERT_EQ(profile.kinds.size(), 4u);
  const UnitKind kinds[] = {UnitKind::kEmbedding, UnitKind::kEncoderLayer, UnitKind::kDecoderLayer,
                            UnitKind::kOutput};
  const int counts[] = {1, 2, 3, 1};
  const std::vector<UnitInfo> infos = DescribeUnits(model);
  for (size_t i = 0; i < 4; ++i) {
    const UnitKindProfile& k = profile.kinds[i];
    SCOPED_TRACE(k.unit_name);
    EXPECT_EQ(k.kind, kinds[i]);
    EXPECT_EQ(k.count, counts[i]);
    EXPECT_GT(k.forward.median_s, 0);
    EXPECT_GT(k.backward.median_s, 0);
    EXPECT_GT(k.recompute.median_s, 0);
    EXPECT_LE(k.forward.p10_s, k.forward.median_s);
    EXPECT_LE(k.forward.median_s, k.forward.p90_s);
    EXPECT_GT(k.forward_peak_bytes, 0);
    EXPECT_GT(k.optimizer.median_s, 0);
    EXPECT_EQ(k.ring, k.count);  // tiny units: the ring takes every unit of the kind
    for (const UnitInfo& info : infos) {
      if (info.name == k.unit_name) {
        EXPECT_EQ(k.param_bytes, info.num_parameters * 4);
      }
    }
  }
  // Encoder layer, kNone (model/README.md): 8·N·C + 4·N + 2·N·F + B·H·S² floats, N = B·S.
  const int64_t N = 4 * 10, C = 16, F = 32;
  EXPECT_EQ(profile.kinds[1].saved_bytes, 4 * (8 * N * C + 4 * N + 2 * N * F + 4 * 2 * 10 * 10));
  EXPECT_EQ(profile.kinds[1].input_bytes, 4 * N * C);
  EXPECT_EQ(profile.kinds[2].input_bytes, 4 * (4 * 8) * C);
  EXPECT_EQ(profile.kinds[0].saved_bytes, 0);
}

TEST(UnitProfilerTest, PreLnHasFinalNormsAndSelectiveSavesLess) {
  const config::ModelConfig model = TinyModel(config::ModelConfig::PRELN);
  const ModelProfile none = ProfileTiny(model, Recompute::kNone);
  const ModelProfile selective = ProfileTiny(model, Recompute::kSelective);
  ASSERT_EQ(none.kinds.size(), 6u);
  EXPECT_EQ(none.kinds[2].kind, UnitKind::kEncoderFinalNorm);
  EXPECT_EQ(none.kinds[4].kind, UnitKind::kDecoderFinalNorm);
  ASSERT_EQ(selective.kinds.size(), 6u);
  EXPECT_LT(selective.kinds[1].saved_bytes, none.kinds[1].saved_bytes);  // no attention probs
}

// On the strict device units, inputs, gradients and the optimizer live in memory the host cannot
// read (a stray host access would crash); the byte counts come from its allocator and equal the
// CPU's, and the profile names the device.
TEST(UnitProfilerTest, StrictDeviceMeasuresTheCpuBytes) {
  const config::ModelConfig model = TinyModel();
  const ModelProfile cpu = ProfileTiny(model, Recompute::kNone);
  const ModelProfile strict = ProfileTiny(model, Recompute::kNone, &StrictBackend());
  EXPECT_EQ(cpu.device.rfind("cpu (", 0), 0u) << cpu.device;
  EXPECT_EQ(strict.device, "strict (CPU-emulated device)");
  EXPECT_EQ(strict.compute_dtype, DType::kF32);
  ASSERT_EQ(strict.kinds.size(), cpu.kinds.size());
  for (size_t i = 0; i < cpu.kinds.size(); ++i) {
    SCOPED_TRACE(cpu.kinds[i].unit_name);
    EXPECT_GT(strict.kinds[i].forward.median_s, 0);
    EXPECT_GT(strict.kinds[i].backward.median_s, 0);
    EXPECT_GT(strict.kinds[i].optimizer.median_s, 0);
    EXPECT_EQ(strict.kinds[i].param_bytes, cpu.kinds[i].param_bytes);
    EXPECT_EQ(strict.kinds[i].saved_bytes, cpu.kinds[i].saved_bytes);
    EXPECT_EQ(strict.kinds[i].input_bytes, cpu.kinds[i].input_bytes);
    EXPECT_EQ(strict.kinds[i].forward_peak_bytes, cpu.kinds[i].forward_peak_bytes);
    EXPECT_EQ(strict.kinds[i].backward_peak_bytes, cpu.kinds[i].backward_peak_bytes);
  }
  EXPECT_NE(ModelProfileToJson(strict).find("\"device\": \"strict (CPU-emulated device)\""),
            std::string::npos);
  EXPECT_NE(FormatModelProfile(strict).find("device strict"), std::string::npos);
}

// bf16 mixed precision on the strict device: 16-bit activations and compute weights (half the
// bytes of the fp32 profile's), fp32 masters updated by the timed optimizer.
TEST(UnitProfilerTest, StrictDeviceBf16HalvesActivationBytes) {
  const config::ModelConfig model = TinyModel();
  const ModelProfile fp32 = ProfileTiny(model, Recompute::kNone, &StrictBackend());
  const ModelProfile bf16 = ProfileTiny(model, Recompute::kNone, &StrictBackend(), DType::kBF16);
  EXPECT_EQ(bf16.compute_dtype, DType::kBF16);
  ASSERT_EQ(bf16.kinds.size(), fp32.kinds.size());
  for (size_t i = 0; i < fp32.kinds.size(); ++i) {
    SCOPED_TRACE(fp32.kinds[i].unit_name);
    EXPECT_GT(bf16.kinds[i].forward.median_s, 0);
    EXPECT_GT(bf16.kinds[i].optimizer.median_s, 0);
    EXPECT_EQ(bf16.kinds[i].input_bytes * 2, fp32.kinds[i].input_bytes);
  }
  EXPECT_NE(ModelProfileToJson(bf16).find("\"compute_dtype\": \"bf16\""), std::string::npos);
}

// Kinds with a ring of 4 units or more time B over the whole ring and only then W, as a pipeline
// chunk runs them (SweepSplitBackward); also on the strict device, whose memory the host cannot
// read. Shorter rings keep the back-to-back times.
TEST(UnitProfilerTest, LongRingsTimeBAndWAsAChunkRunsThem) {
  config::ModelConfig model = TinyModel();
  model.set_encoder_layers(5);
  for (const Backend* backend : {static_cast<const Backend*>(nullptr), &StrictBackend()}) {
    const ModelProfile profile = ProfileTiny(model, Recompute::kFull, backend);
    ASSERT_EQ(profile.kinds.size(), 4u);
    const UnitKindProfile& encoder = profile.kinds[1];
    ASSERT_EQ(encoder.kind, UnitKind::kEncoderLayer);
    EXPECT_EQ(encoder.ring, 5);
    for (const UnitKindProfile& kind : profile.kinds) {
      SCOPED_TRACE(kind.unit_name);
      EXPECT_GT(kind.backward_input.median_s, 0);
      EXPECT_GT(kind.backward_weight.median_s, 0);
    }
  }
}

TEST(UnitProfilerTest, RejectsUnresolvedVocabulary) {
  config::ModelConfig model = TinyModel();
  model.set_vocab_size(0);
  EXPECT_FALSE(ProfileUnitKinds(model, {2, 4, 4}, {}).ok());
}

TEST(CostsFromProfileTest, EveryUnitGetsItsKindsMeasurement) {
  const config::ModelConfig model = TinyModel();
  const ModelProfile profile = ProfileTiny(model, Recompute::kFull);
  const ProfiledCosts costs = CostsFromProfile(profile, model);
  const std::vector<UnitInfo> infos = DescribeUnits(model);
  ASSERT_EQ(costs.units.size(), infos.size());
  ASSERT_EQ(costs.backward_input_s.size(), infos.size());
  for (size_t u = 0; u < infos.size(); ++u) {
    EXPECT_EQ(costs.units[u].name, infos[u].name);
    EXPECT_EQ(costs.units[u].param_bytes, infos[u].num_parameters * 4);
    EXPECT_EQ(costs.units[u].optimizer_bytes, infos[u].num_parameters * 8);
    EXPECT_EQ(costs.units[u].activation_bytes, costs.units[u].input_bytes);  // full recompute
  }
  EXPECT_GT(costs.units[1].recompute_s, 0);
  EXPECT_GT(costs.units[1].optimizer_s, 0);
  EXPECT_EQ(costs.units[1].forward_s, costs.units[2].forward_s);    // both encoder layers
  EXPECT_EQ(costs.units[3].backward_s, costs.units[5].backward_s);  // decoder layers 0 and 2
}

// A fractional mean of rows is profiled at both neighbouring counts: bytes are the larger
// count's, every time is positive; a whole mean profiles once, at that count.
TEST(CostsFromProfileTest, FractionalMeanRowsProfilesBothNeighbours) {
  const config::ModelConfig model = TinyModel();
  UnitProfileOptions options;
  options.warmup = 1;
  options.repetitions = 3;
  options.recompute = Recompute::kFull;
  const ProfileShape three_rows{3, 10, 8};
  ModelProfile rounded;
  const StatusOr<ProfiledCosts> costs =
      ProfileCostsAtMeanRows(model, three_rows, 2.5, options, &rounded);
  ASSERT_TRUE(costs.ok()) << costs.status();
  EXPECT_EQ(rounded.shape.batch, 3);
  const ProfiledCosts at_four = CostsFromProfile(ProfileTiny(model, Recompute::kFull), model);
  const ProfiledCosts at_rounded = CostsFromProfile(rounded, model);
  ASSERT_EQ(costs->units.size(), at_four.units.size());
  for (size_t u = 0; u < costs->units.size(); ++u) {
    EXPECT_EQ(costs->units[u].activation_bytes, at_rounded.units[u].activation_bytes);
    EXPECT_GT(costs->units[u].forward_s, 0);
    EXPECT_GT(costs->units[u].backward_s, 0);
    EXPECT_GT(costs->backward_input_s[u], 0);
    EXPECT_GT(costs->backward_weight_s[u], 0);
  }
  ModelProfile whole;
  ASSERT_TRUE(ProfileCostsAtMeanRows(model, {4, 10, 8}, 4.0, options, &whole).ok());
  EXPECT_EQ(whole.shape.batch, 4);
  // Bytes come from the larger neighbour of 2.5, 3 rows: less than at 4 rows.
  EXPECT_LT(costs->units[1].input_bytes, at_four.units[1].input_bytes);
}

// Equal units (F 1, fused backward 2 = B-input 1 + W 1) for exact schedule arithmetic.
ProfiledCosts UniformCosts(int units) {
  ProfiledCosts costs;
  for (int u = 0; u < units; ++u) {
    UnitCost cost;
    cost.name = "unit." + std::to_string(u);
    cost.forward_s = 1.0;
    cost.backward_s = 2.0;
    cost.param_bytes = cost.grad_bytes = 100;
    cost.activation_bytes = 10;
    costs.units.push_back(cost);
    costs.backward_input_s.push_back(1.0);
    costs.backward_weight_s.push_back(1.0);
  }
  return costs;
}

TEST(PredictionTest, OneFOneBMatchesTheBubbleFormula) {
  PredictionOptions options;
  options.stages = 2;
  options.micro_batches = 4;
  const SchedulePrediction p = PredictSchedule(UniformCosts(4), ScheduleKind::kOneFOneB, options);
  ASSERT_TRUE(p.status.ok()) << p.status;
  ASSERT_EQ(p.plan.stages.size(), 2u);
  EXPECT_EQ(p.plan.stages[0].end_unit, 2);
  // Each stage: F 2, B 4 per micro-batch; makespan (m + p − 1)·(F + B) = 5·6.
  EXPECT_DOUBLE_EQ(p.simulation.makespan_s, 30.0);
  EXPECT_NEAR(p.simulation.bubble_fraction, 1.0 / 5.0, 1e-12);
  EXPECT_EQ(p.peak_stage_bytes, 2 * 200 + 2 * 20);  // stage 0 holds min(p, m) = 2 micro-batches
}

TEST(PredictionTest, EachRankPaysForItsOwnOptimizerStep) {
  PredictionOptions options;
  options.stages = 2;
  options.micro_batches = 4;
  ProfiledCosts costs = UniformCosts(4);
  for (UnitCost& unit : costs.units) unit.optimizer_s = 0.5;
  costs.units[3].optimizer_s = 3.0;  // the last stage holds units 2 and 3
  const SchedulePrediction p = PredictSchedule(costs, ScheduleKind::kOneFOneB, options);
  ASSERT_TRUE(p.status.ok()) << p.status;
  ASSERT_EQ(p.plan.stages[1].first_unit, 2);
  // The passes end together at 30 (see above); rank 1's step then takes 0.5 + 3.
  EXPECT_DOUBLE_EQ(p.simulation.makespan_s, 33.5);
  EXPECT_DOUBLE_EQ(p.simulation.ranks[0].actions.back().end_s, 31.0);
}

TEST(PredictionTest, SendCostsLengthenTheStep) {
  PredictionOptions options;
  options.stages = 2;
  options.micro_batches = 4;
  const ProfiledCosts costs = UniformCosts(4);
  const double free =
      PredictSchedule(costs, ScheduleKind::kOneFOneB, options).simulation.makespan_s;
  options.send_s = 0.25;
  const double paid =
      PredictSchedule(costs, ScheduleKind::kOneFOneB, options).simulation.makespan_s;
  EXPECT_GT(paid, free);
}

TEST(PredictionTest, AllSchedulesAndTheirFailures) {
  PredictionOptions options;
  options.stages = 2;
  options.micro_batches = 4;
  std::vector<SchedulePrediction> all = PredictAllSchedules(UniformCosts(8), options);
  ASSERT_EQ(all.size(), AllScheduleKinds().size());  // every kind of the list, in its order
  for (const SchedulePrediction& p : all) EXPECT_TRUE(p.status.ok()) << p.status;
  EXPECT_EQ(all[2].virtual_chunks, 2);
  EXPECT_EQ(all[2].plan.stages.size(), 4u);
  // Per stage F = B = W = 4. 1F1B: (m + p − 1)·12 = 60. ZB-H1 idles (p − 1)(F + B − W) per rank:
  // m·12 + 4 = 52 (parallel/README.md).
  EXPECT_DOUBLE_EQ(all[1].simulation.makespan_s, 60.0);
  EXPECT_DOUBLE_EQ(all[3].simulation.makespan_s, 52.0);
  const std::string table = FormatPredictions(all, UniformCosts(8), 4);
  EXPECT_NE(table.find("1f1b"), std::string::npos);
  EXPECT_NE(table.find("zb-h1"), std::string::npos);
  EXPECT_NE(PredictionsToJson(all, UniformCosts(8).units).find("\"step_s\""), std::string::npos);

  options.micro_batches = 3;        // interleaved needs m a multiple of p (or m <= p)
  options.memory_limit_bytes = 50;  // less than one unit's parameters
  all = PredictAllSchedules(UniformCosts(8), options);
  EXPECT_FALSE(all[2].status.ok());
  EXPECT_EQ(all[1].status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(FormatPredictions(all, UniformCosts(8), 3).find("--"), std::string::npos);
}

// ScaledToStep: the measured shape gives the costs back; twice the rows, twice every time; a
// longer source weighs on the encoder layers more than on the decoder's (only its
// cross-attention reads the source); bytes and optimizer times stay.
TEST(PredictionTest, ScaledToStepFollowsTheWorkOfEachUnit) {
  const config::ModelConfig model = TinyModel();
  const ProfiledCosts costs = CostsFromProfile(ProfileTiny(model, Recompute::kFull), model);
  const StepShape measured{.rows = 4, .source_len = 10, .target_len = 8};
  const ProfiledCosts same = ScaledToStep(costs, model, measured, measured);
  for (size_t u = 0; u < costs.units.size(); ++u) {
    EXPECT_DOUBLE_EQ(same.units[u].forward_s, costs.units[u].forward_s) << u;
    EXPECT_DOUBLE_EQ(same.backward_weight_s[u], costs.backward_weight_s[u]) << u;
  }
  const ProfiledCosts doubled =
      ScaledToStep(costs, model, measured, {.rows = 8, .source_len = 10, .target_len = 8});
  for (size_t u = 0; u < costs.units.size(); ++u) {
    EXPECT_NEAR(doubled.units[u].forward_s, 2 * costs.units[u].forward_s, 1e-15) << u;
    EXPECT_NEAR(doubled.units[u].backward_s, 2 * costs.units[u].backward_s, 1e-15) << u;
    EXPECT_NEAR(doubled.units[u].recompute_s, 2 * costs.units[u].recompute_s, 1e-15) << u;
    EXPECT_NEAR(doubled.backward_input_s[u], 2 * costs.backward_input_s[u], 1e-15) << u;
    EXPECT_EQ(doubled.units[u].activation_bytes, costs.units[u].activation_bytes) << u;
    EXPECT_EQ(doubled.units[u].optimizer_s, costs.units[u].optimizer_s) << u;
  }
  // Units: embedding, encoder 0-1, decoder 0-2, output.
  const ProfiledCosts long_source =
      ScaledToStep(costs, model, measured, {.rows = 4, .source_len = 20, .target_len = 8});
  const double encoder = long_source.units[1].forward_s / costs.units[1].forward_s;
  const double decoder = long_source.units[3].forward_s / costs.units[3].forward_s;
  EXPECT_GT(encoder, 2.0);  // twice the tokens, and attention over twice the length
  EXPECT_GT(decoder, 1.0);
  EXPECT_LT(decoder, encoder);
  EXPECT_DOUBLE_EQ(long_source.units.back().forward_s, costs.units.back().forward_s);  // T only
}

// The work-weighted shape of a shard of short and long sentences (lengths 5..60): its rows ×
// lengths match the epoch's mean tokens, which mean rows × mean length overstates (long rows come
// in batches of few), its lengths are E[b·L²] / E[b·L], and the sampled steps are the batches
// themselves when there are at most kSampledSteps of them.
TEST(MicroBatchShapeTest, WorkWeightedMeanAndSampledSteps) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("micro_batch_shape_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  ShardWriter writer(40, SpecialIds{});
  for (int e = 0; e < 120; ++e) {
    const int length = 5 + (e * 37) % 56;
    std::vector<int32_t> source(length, 7), target(length / 2 + 3, 9);
    source.back() = target.back() = SpecialIds{}.eos;
    writer.Add(source, target);
  }
  ASSERT_TRUE(writer.Write((dir / "train.bin").string()).ok());
  config::RunConfig config;
  config.mutable_data()->set_data_dir(dir.string());
  config.mutable_data()->set_max_tokens_per_batch(200);
  config.mutable_parallel()->set_micro_batches(2);
  const MicroBatchShape shape = MeanMicroBatchShape(config);
  ASSERT_FALSE(shape.sampled_steps.empty()) << shape.source;
  ASSERT_LE(shape.sampled_steps.size(), static_cast<size_t>(kSampledSteps));
  double bs = 0, bss = 0, bt = 0, btt = 0, rows = 0, s = 0;
  for (const StepShape& step : shape.sampled_steps) {
    bs += step.rows * step.source_len;
    bss += step.rows * step.source_len * step.source_len;
    bt += step.rows * step.target_len;
    btt += step.rows * step.target_len * step.target_len;
    rows += step.rows;
    s += step.source_len;
  }
  const double n = static_cast<double>(shape.sampled_steps.size());
  EXPECT_NEAR(shape.mean_source_tokens, bs / n, 1e-9);
  EXPECT_NEAR(shape.mean_target_tokens, bt / n, 1e-9);
  EXPECT_EQ(shape.shape.source_len, std::llround(bss / bs));
  EXPECT_EQ(shape.shape.target_len, std::llround(btt / bt));
  EXPECT_NEAR(shape.mean_rows, 0.5 * (bs / (bss / bs) + bt / (btt / bt)) / n, 1e-9);
  EXPECT_GT((rows / n) * (s / n), bs / n);  // mean rows × mean length overstates the tokens
  std::filesystem::remove_all(dir);
}

TEST(PredictionTest, BoundaryMessageCarriesBothStreams) {
  const config::ModelConfig model = TinyModel();
  EXPECT_EQ(BoundaryMessageBytes(model, {4, 10, 8}), 4 * (4 * 10 + 4 * 8) * 16);
}

TEST(ProfileFormatTest, TableAndJson) {
  const ModelProfile profile = ProfileTiny(TinyModel(), Recompute::kNone);
  const std::string table = FormatModelProfile(profile);
  EXPECT_NE(table.find("decoder_layer"), std::string::npos);
  EXPECT_NE(table.find("B=4 S=10 T=8"), std::string::npos);
  const std::string json = ModelProfileToJson(profile);
  EXPECT_NE(json.find("\"saved_activation_bytes\""), std::string::npos);
  EXPECT_NE(json.find("\"kind\": \"output\""), std::string::npos);
  EXPECT_EQ(FormatPassTime(0.0123), "12.30 ms");
  EXPECT_EQ(FormatPassTime(2.5), "2.50 s");
  EXPECT_EQ(FormatPassTime(5e-5), "50 us");
}

}  // namespace
}  // namespace deepnet
