// ModelDecoder against the model itself: every incremental step (with key/value caches, row
// reordering and repetition) gives the log-softmax of Model::Logits over the whole prefix, for
// DeepNorm and Pre-LN, in fp64 (to 1e-10) and fp32 (to 1e-4); and on the strict test device
// (memory the host cannot read), bit-identical to the CPU.
// Letters: B sentences, S source length, T prefix length, V vocab.
#include "infer/model_decoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "infer/beam_search.h"
#include "kernels/strict/strict_backend.h"
#include "tests/infer/infer_test_util.h"

namespace deepnet {
namespace {

using testing::BuildTinyModel;
using testing::PadSources;
using testing::RandomSources;
using testing::TinyTranslationConfig;

// log p(next token | source, prefix) of one row, through the full forward over the prefix.
std::vector<double> ReferenceLogProbs(Model& model, const std::vector<int32_t>& source,
                                      const std::vector<int32_t>& prefix) {
  const auto [tokens, mask] = PadSources({source});
  const int64_t T = static_cast<int64_t>(prefix.size());
  MicroBatch mb;
  mb.source = tokens;
  mb.source_mask = mask;
  mb.target_input = Tensor::Zeros({1, T}, DType::kI32, MemoryCategory::kOther);
  mb.target_mask = Tensor::Zeros({1, T}, DType::kU8, MemoryCategory::kOther);
  for (int64_t t = 0; t < T; ++t) mb.target_input.data<int32_t>()[t] = prefix[t];
  StepContext ctx;
  ctx.training = false;
  const Tensor logits = model.Logits(ctx, mb);  // (1, T, V)
  const int64_t V = logits.dim(2);
  std::vector<double> last(V);
  for (int64_t v = 0; v < V; ++v) {
    const int64_t i = (T - 1) * V + v;
    last[v] = logits.dtype() == DType::kF64 ? logits.data<double>()[i] : logits.data<float>()[i];
  }
  LogSoftmaxRows(last, 1, V);
  return last;
}

struct Case {
  config::ModelConfig::Norm norm;
  DType dtype;
  double tolerance;
};

class ModelDecoderTest : public ::testing::TestWithParam<Case> {};

TEST_P(ModelDecoderTest, StepsMatchFullPrefixForwardWithReordering) {
  const Case c = GetParam();
  const config::ModelConfig config = TinyTranslationConfig(c.norm);
  std::unique_ptr<Model> model = BuildTinyModel(config, c.dtype);
  const std::vector<std::vector<int32_t>> sources =
      RandomSources({5, 3, 7}, config.vocab_size(), 17);
  const auto [tokens, mask] = PadSources(sources);
  const StatusOr<EncodedSource> encoded = EncodeSource(*model, tokens, mask);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  StatusOr<std::unique_ptr<ModelDecoder>> decoder = ModelDecoder::Create(*model, *encoded);
  ASSERT_TRUE(decoder.ok()) << decoder.status();

  std::vector<int64_t> sentence = {0, 1, 2};  // of each row
  std::vector<std::vector<int32_t>> prefix(3, {SpecialIds().bos});
  std::mt19937 rng(3);
  std::uniform_int_distribution<int32_t> piece(4, config.vocab_size() - 1);
  for (int step = 0; step < 6; ++step) {
    if (step == 2 || step == 4) {
      // Reorder, repeat and (at step 4) drop rows, as beam search does.
      const std::vector<int64_t> rows =
          step == 2 ? std::vector<int64_t>{2, 0, 0, 1} : std::vector<int64_t>{3, 1};
      (*decoder)->SelectRows(rows);
      std::vector<int64_t> new_sentence;
      std::vector<std::vector<int32_t>> new_prefix;
      for (const int64_t r : rows) {
        new_sentence.push_back(sentence[r]);
        new_prefix.push_back(prefix[r]);
      }
      sentence = new_sentence;
      prefix = new_prefix;
    }
    ASSERT_EQ((*decoder)->num_rows(), static_cast<int64_t>(prefix.size()));
    std::vector<int32_t> feed;
    for (const auto& p : prefix) feed.push_back(p.back());
    const std::vector<double> log_probs = (*decoder)->Advance(feed);
    const int64_t V = config.vocab_size();
    ASSERT_EQ(log_probs.size(), prefix.size() * V);
    for (size_t r = 0; r < prefix.size(); ++r) {
      const std::vector<double> expected =
          ReferenceLogProbs(*model, sources[sentence[r]], prefix[r]);
      for (int64_t v = 0; v < V; ++v) {
        ASSERT_NEAR(log_probs[r * V + v], expected[v], c.tolerance)
            << "step " << step << " row " << r << " token " << v;
      }
    }
    for (auto& p : prefix) p.push_back(piece(rng));
  }
  EXPECT_EQ((*decoder)->position(), 6);
}

INSTANTIATE_TEST_SUITE_P(Norms, ModelDecoderTest,
                         ::testing::Values(Case{config::ModelConfig::DEEPNORM, DType::kF64, 1e-10},
                                           Case{config::ModelConfig::PRELN, DType::kF64, 1e-10},
                                           Case{config::ModelConfig::POSTLN, DType::kF32, 1e-4}));

// The tiny model on `backend` with the weights of `cpu_model` (copied host -> device).
std::unique_ptr<Model> CopyOfModelOn(const config::ModelConfig& config, Model& cpu_model,
                                     const Backend& backend) {
  ModelBuildOptions options;
  options.seed = 99;  // different initial weights: the copy below must replace them all
  options.backend = &backend;
  StatusOr<std::unique_ptr<Model>> model = Model::Build(config, options);
  EXPECT_TRUE(model.ok()) << model.status();
  for (size_t i = 0; i < cpu_model.units().size(); ++i) {
    backend.Copy((*model)->units()[i]->flat_values(), cpu_model.units()[i]->flat_values());
  }
  return std::move(model).value();
}

// Every step's log-probabilities of the incremental decoder on the strict device equal the CPU's
// bit for bit, through row expansion, reordering and dropping (the cache copies), and any host
// read of device memory would crash the test.
TEST(ModelDecoderDevice, StrictEqualsCpuBitForBit) {
  for (const auto norm : {config::ModelConfig::DEEPNORM, config::ModelConfig::PRELN}) {
    const config::ModelConfig config = TinyTranslationConfig(norm);
    std::unique_ptr<Model> cpu = BuildTinyModel(config, DType::kF32);
    std::unique_ptr<Model> strict = CopyOfModelOn(config, *cpu, StrictBackend());
    const std::vector<std::vector<int32_t>> sources =
        RandomSources({5, 3, 7}, config.vocab_size(), 21);
    const auto [tokens, mask] = PadSources(sources);  // host tensors: copied to the device
    std::vector<std::unique_ptr<ModelDecoder>> decoders;
    for (Model* model : {cpu.get(), strict.get()}) {
      StatusOr<EncodedSource> encoded = EncodeSource(*model, tokens, mask);
      ASSERT_TRUE(encoded.ok()) << encoded.status();
      EXPECT_EQ(encoded->states.device(), model->backend().device());
      EXPECT_EQ(encoded->source_mask.device(), model->backend().device());
      StatusOr<std::unique_ptr<ModelDecoder>> decoder = ModelDecoder::Create(*model, *encoded);
      ASSERT_TRUE(decoder.ok()) << decoder.status();
      decoders.push_back(std::move(decoder).value());
    }
    std::mt19937 rng(8);
    std::uniform_int_distribution<int32_t> piece(4, config.vocab_size() - 1);
    std::vector<int32_t> feed(3, SpecialIds().bos);
    const std::vector<std::vector<int64_t>> selections = {
        {}, {0, 0, 1, 1, 2, 2}, {1, 0, 3, 2, 5, 4}, {}, {5, 0, 0, 3}, {2, 1}};
    for (size_t step = 0; step < selections.size(); ++step) {
      if (!selections[step].empty()) {
        for (auto& decoder : decoders) decoder->SelectRows(selections[step]);
        feed.resize(selections[step].size());
      }
      const std::vector<double> expected = decoders[0]->Advance(feed);
      const std::vector<double> actual = decoders[1]->Advance(feed);
      ASSERT_EQ(actual.size(), expected.size());
      for (size_t i = 0; i < expected.size(); ++i) {
        ASSERT_EQ(actual[i], expected[i]) << "step " << step << " element " << i;
      }
      for (int32_t& t : feed) t = piece(rng);
    }
  }
}

// Beam search over the strict decoder finds the CPU's hypotheses with the CPU's scores.
TEST(ModelDecoderDevice, StrictBeamSearchEqualsCpu) {
  const config::ModelConfig config = TinyTranslationConfig(config::ModelConfig::POSTLN);
  std::unique_ptr<Model> cpu = BuildTinyModel(config, DType::kF32);
  std::unique_ptr<Model> strict = CopyOfModelOn(config, *cpu, StrictBackend());
  const std::vector<std::vector<int32_t>> sources =
      RandomSources({6, 2, 4, 9}, config.vocab_size(), 5);
  const auto [tokens, mask] = PadSources(sources);
  std::vector<int64_t> lengths;
  for (const auto& s : sources) lengths.push_back(static_cast<int64_t>(s.size()));
  DecodeOptions options;
  options.beam = 3;
  options.max_positions = config.max_positions();
  std::vector<std::vector<std::vector<Hypothesis>>> results;
  for (Model* model : {cpu.get(), strict.get()}) {
    StatusOr<EncodedSource> encoded = EncodeSource(*model, tokens, mask);
    ASSERT_TRUE(encoded.ok()) << encoded.status();
    StatusOr<std::unique_ptr<ModelDecoder>> decoder = ModelDecoder::Create(*model, *encoded);
    ASSERT_TRUE(decoder.ok()) << decoder.status();
    StatusOr<std::vector<std::vector<Hypothesis>>> nbest =
        BeamSearch(**decoder, lengths, SpecialIds(), options);
    ASSERT_TRUE(nbest.ok()) << nbest.status();
    results.push_back(std::move(nbest).value());
  }
  ASSERT_EQ(results[0].size(), results[1].size());
  for (size_t i = 0; i < results[0].size(); ++i) {
    ASSERT_EQ(results[0][i].size(), results[1][i].size()) << "sentence " << i;
    for (size_t h = 0; h < results[0][i].size(); ++h) {
      EXPECT_EQ(results[0][i][h].tokens, results[1][i][h].tokens) << "sentence " << i;
      EXPECT_EQ(results[0][i][h].score, results[1][i][h].score) << "sentence " << i;
    }
  }
}

TEST(ModelDecoderErrors, RejectsDecoderOnlyModels) {
  config::ModelConfig config = TinyTranslationConfig(config::ModelConfig::DEEPNORM);
  config.set_architecture(config::ModelConfig::DECODER_ONLY);
  config.set_encoder_layers(0);
  std::unique_ptr<Model> model = testing::BuildTinyModel(config, DType::kF32);
  const auto [tokens, mask] = PadSources({{5, 3}});
  EXPECT_EQ(EncodeSource(*model, tokens, mask).status().code(), StatusCode::kFailedPrecondition);
}

TEST(LogSoftmaxRows, NormalisesEachRowStably) {
  std::vector<double> logits = {1000.0, 1000.0, -5.0, 0.0, 1.0, 2.0};
  LogSoftmaxRows(logits, 2, 3);
  EXPECT_NEAR(logits[0], std::log(0.5), 1e-12);
  EXPECT_NEAR(logits[1], std::log(0.5), 1e-12);
  double sum = 0.0;
  for (int v = 3; v < 6; ++v) sum += std::exp(logits[v]);
  EXPECT_NEAR(sum, 1.0, 1e-12);
}

}  // namespace
}  // namespace deepnet
