// Tests of the run configuration: the shipped examples, defaults and their merging, --set
// overrides in both forms, and the messages of every kind of bad input.
#include "configs/config.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace deepnet::config {
namespace {

using google::protobuf::util::MessageDifferencer;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::string SourcePath(const std::string& relative) {
  return std::string(DEEPNET_SOURCE_DIR) + "/" + relative;
}

std::string TestData(const std::string& name) {
  return SourcePath("tests/configs/testdata/" + name);
}

RunConfig LoadOrDie(const std::string& path, const std::vector<std::string>& overrides = {}) {
  StatusOr<RunConfig> config = LoadConfig(path, overrides);
  EXPECT_TRUE(config.ok()) << config.status();
  return config.ok() ? *config : RunConfig();
}

// The message of a load that must fail with InvalidArgument.
std::string LoadError(const std::string& text, const std::vector<std::string>& overrides = {}) {
  StatusOr<RunConfig> config = LoadConfigFromText(text, "x.pbtxt", overrides);
  EXPECT_FALSE(config.ok()) << "expected an error for: " << text;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument) << config.status();
  return config.status().message();
}

TEST(ShippedConfigs, DemoIsTheSixSixTranslationModel) {
  const RunConfig config = LoadOrDie(SourcePath("configs/demo.pbtxt"));
  EXPECT_EQ(config.model().architecture(), ModelConfig::ENCODER_DECODER);
  EXPECT_EQ(config.model().encoder_layers(), 6);
  EXPECT_EQ(config.model().decoder_layers(), 6);
  EXPECT_EQ(config.model().d_model(), 256);
  EXPECT_EQ(config.model().heads(), 4);
  EXPECT_EQ(config.model().ffn_dim(), 1024);
  EXPECT_EQ(config.data().spm_vocab_size(), 8000);
  EXPECT_EQ(config.data().source_column(), 2);
  EXPECT_EQ(config.data().target_column(), 3);
}

TEST(ShippedConfigs, TinyIsSmall) {
  const RunConfig config = LoadOrDie(SourcePath("configs/tiny.pbtxt"));
  EXPECT_EQ(config.model().encoder_layers(), 2);
  EXPECT_EQ(config.model().decoder_layers(), 2);
  EXPECT_EQ(config.model().d_model(), 32);
  EXPECT_GT(config.model().vocab_size(), 0);
}

TEST(ShippedConfigs, ThousandLayersArePipelinedWithFullRecompute) {
  const RunConfig config = LoadOrDie(SourcePath("configs/deepnet-1000L.pbtxt"));
  EXPECT_EQ(config.model().encoder_layers(), 500);
  EXPECT_EQ(config.model().decoder_layers(), 500);
  EXPECT_EQ(config.model().d_model(), 64);
  EXPECT_EQ(config.model().heads(), 4);
  EXPECT_EQ(config.parallel().pipeline_stages(), 4);
  EXPECT_EQ(config.parallel().schedule(), ParallelConfig::ONE_F_ONE_B);
  EXPECT_EQ(config.parallel().recompute(), ParallelConfig::FULL);
}

TEST(ShippedConfigs, SingleStackModelsHaveNoOtherStack) {
  const RunConfig decoder = LoadOrDie(SourcePath("configs/decoder-lm.pbtxt"));
  EXPECT_EQ(decoder.model().architecture(), ModelConfig::DECODER_ONLY);
  EXPECT_EQ(decoder.model().encoder_layers(), 0);
  EXPECT_GE(decoder.model().decoder_layers(), 1);
  const RunConfig encoder = LoadOrDie(SourcePath("configs/encoder-only.pbtxt"));
  EXPECT_EQ(encoder.model().architecture(), ModelConfig::ENCODER_ONLY);
  EXPECT_EQ(encoder.model().decoder_layers(), 0);
  EXPECT_GE(encoder.model().encoder_layers(), 1);
}

TEST(Defaults, EmbeddedTextIsTheShippedFile) {
  std::ifstream file(SourcePath("configs/defaults.pbtxt"));
  std::stringstream text;
  text << file.rdbuf();
  EXPECT_EQ(DefaultConfigText(), text.str());
}

TEST(Defaults, SetEveryFieldAndValidate) {
  const RunConfig config = DefaultConfig();
  const google::protobuf::Reflection* root_reflection = config.GetReflection();
  const google::protobuf::Descriptor* root = config.GetDescriptor();
  for (int i = 0; i < root->field_count(); ++i) {
    ASSERT_TRUE(root_reflection->HasField(config, root->field(i))) << root->field(i)->name();
    const google::protobuf::Message& section = root_reflection->GetMessage(config, root->field(i));
    for (int j = 0; j < section.GetDescriptor()->field_count(); ++j) {
      const google::protobuf::FieldDescriptor* field = section.GetDescriptor()->field(j);
      if (field->full_name() == "deepnet.config.TrainConfig.micro_batches") continue;  // old name
      EXPECT_TRUE(section.GetReflection()->HasField(section, field)) << field->full_name();
    }
  }
  EXPECT_TRUE(ValidateConfig(config, nullptr).ok()) << ValidateConfig(config, nullptr);
}

TEST(Defaults, EmptyFileGivesTheDefaults) {
  StatusOr<RunConfig> config = LoadConfigFromText("# nothing\n", "empty.pbtxt", {});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*config, DefaultConfig()));
}

TEST(Defaults, FileReplacesOnlyWhatItWrites) {
  const RunConfig config = LoadOrDie(SourcePath("configs/tiny.pbtxt"));
  EXPECT_EQ(config.model().d_model(), 32);
  EXPECT_DOUBLE_EQ(config.optimizer().beta2(), DefaultConfig().optimizer().beta2());
  EXPECT_EQ(config.parallel().comm_timeout_seconds(),
            DefaultConfig().parallel().comm_timeout_seconds());
}

TEST(Defaults, ExplicitZeroAndFalseReplaceNonZeroDefaults) {
  const RunConfig defaults = DefaultConfig();
  ASSERT_GT(defaults.model().dropout(), 0);
  ASSERT_TRUE(defaults.model().tied_embeddings());
  ASSERT_GT(defaults.train().clip_norm(), 0);
  ASSERT_GT(defaults.train().label_smoothing(), 0);
  const RunConfig config = LoadOrDie(TestData("explicit_zero.pbtxt"));
  EXPECT_EQ(config.model().dropout(), 0);
  EXPECT_FALSE(config.model().tied_embeddings());
  EXPECT_EQ(config.train().clip_norm(), 0);
  EXPECT_EQ(config.train().label_smoothing(), 0);
  const RunConfig overridden = LoadOrDie(SourcePath("configs/demo.pbtxt"), {"model.dropout=0"});
  EXPECT_EQ(overridden.model().dropout(), 0);
}

TEST(Defaults, ChangingTheArchitectureDropsTheDefaultStack) {
  StatusOr<RunConfig> config =
      LoadConfigFromText("", "x.pbtxt", {"model { architecture: ENCODER_ONLY }"});
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->model().decoder_layers(), 0);
  EXPECT_EQ(config->model().encoder_layers(), DefaultConfig().model().encoder_layers());
  // A stack the user wrote is kept, and the conflict is reported where it was written.
  EXPECT_EQ(LoadError("model {\n  decoder_layers: 6\n}\n", {"model.architecture=ENCODER_ONLY"}),
            "x.pbtxt:2:3: model.decoder_layers: got 6 but model.architecture ENCODER_ONLY has no "
            "decoder; set model.decoder_layers: 0");
}

TEST(Overrides, BothFormsApply) {
  const RunConfig config =
      LoadOrDie(SourcePath("configs/tiny.pbtxt"),
                {"train.max_steps=5", "model { d_model: 64 heads: 8 }", "optimizer.lr: 0.002",
                 "data.train_tsv=some dir/train.tsv", "model.norm=PRELN", "checkpoint.resume=true",
                 "data.valid_tsv=\"quoted.tsv\""});
  EXPECT_EQ(config.train().max_steps(), 5);
  EXPECT_EQ(config.model().d_model(), 64);
  EXPECT_EQ(config.model().heads(), 8);
  EXPECT_DOUBLE_EQ(config.optimizer().lr(), 0.002);
  EXPECT_EQ(config.data().train_tsv(), "some dir/train.tsv");
  EXPECT_EQ(config.model().norm(), ModelConfig::PRELN);
  EXPECT_TRUE(config.checkpoint().resume());
  EXPECT_EQ(config.data().valid_tsv(), "quoted.tsv");
}

TEST(Overrides, ApplyInOrder) {
  const std::string tiny = SourcePath("configs/tiny.pbtxt");
  EXPECT_EQ(LoadOrDie(tiny, {"train.max_steps=5", "train { max_steps: 7 }"}).train().max_steps(),
            7);
  EXPECT_EQ(LoadOrDie(tiny, {"train { max_steps: 7 }", "train.max_steps=5"}).train().max_steps(),
            5);
}

TEST(Overrides, CanRepairTheFile) {
  const RunConfig config = LoadOrDie(TestData("heads_not_dividing.pbtxt"), {"model.heads=8"});
  EXPECT_EQ(config.model().heads(), 8);
}

TEST(DeprecatedNames, TrainMicroBatchesIsReadAsAccumulationSteps) {
  for (const auto& [file, overrides] :
       std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"train { micro_batches: 3 }", {}},
           {"", {"train.micro_batches=3"}},
           {"train { accumulation_steps: 2 }", {"train { micro_batches: 3 }"}}}) {
    const StatusOr<RunConfig> config = LoadConfigFromText(file, "x.pbtxt", overrides);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->train().accumulation_steps(), 3) << file;
    EXPECT_FALSE(config->train().has_micro_batches()) << "never written back: " << file;
    EXPECT_THAT(ConfigToText(*config), Not(HasSubstr("micro_batches: 3"))) << file;
  }
}

TEST(DeprecatedNames, OldAndNewNameInOneLayerIsAnError) {
  EXPECT_THAT(LoadError("train {\n  accumulation_steps: 2\n  micro_batches: 3\n}\n"),
              HasSubstr("x.pbtxt:3:3: train.micro_batches is the old name of "
                        "train.accumulation_steps; write only train.accumulation_steps"));
}

TEST(Errors, MissingFileIsNotFoundAndNamesThePath) {
  const std::string path = TestData("no_such_file.pbtxt");
  StatusOr<RunConfig> config = LoadConfig(path, {});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr(path));
}

TEST(Errors, DirectoryIsRejected) {
  StatusOr<RunConfig> config = LoadConfig(TestData(""), {});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
}

struct BadFile {
  const char* file;      // under testdata/
  const char* position;  // "line:column:" of the first message
  const char* message;
};

// Names the ctest entry after the file.
void PrintTo(const BadFile& bad, std::ostream* os) { *os << bad.file; }

class BadFiles : public ::testing::TestWithParam<BadFile> {};

TEST_P(BadFiles, NamePathLineColumnAndTheProblem) {
  const BadFile& bad = GetParam();
  const std::string path = TestData(bad.file);
  StatusOr<RunConfig> config = LoadConfig(path, {});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(), StartsWith(path + ":" + bad.position + " "));
  EXPECT_THAT(config.status().message(), HasSubstr(bad.message));
}

INSTANTIATE_TEST_SUITE_P(
    Configs, BadFiles,
    ::testing::Values(
        BadFile{"syntax_error.pbtxt", "4:9:", "Expected \":\", found \"4\""},
        BadFile{"unknown_field.pbtxt",
                "3:3:", "no field named \"d_modle\". Did you mean \"d_model\"?"},
        BadFile{"bad_enum.pbtxt", "3:9:",
                "\"DEEP_NORM\" for field \"norm\". Expected one of "
                "DEEPNORM, POSTLN, PRELN"},
        BadFile{"wrong_type.pbtxt", "4:10:", "Expected integer, got: \"four\""},
        BadFile{"duplicate_field.pbtxt", "4:3:", "field \"heads\" is specified multiple times"},
        BadFile{"heads_not_dividing.pbtxt", "5:3:",
                "model.heads: 6 does not divide model.d_model 256; choose heads in {1, 2, 4, 8,"},
        BadFile{"decoder_only_with_encoder.pbtxt", "4:3:",
                "model.encoder_layers: got 3 but model.architecture DECODER_ONLY has no encoder; "
                "set model.encoder_layers: 0"}));

TEST(Errors, EverySemanticProblemIsReportedOnItsOwnLine) {
  const std::string path = TestData("several_problems.pbtxt");
  StatusOr<RunConfig> config = LoadConfig(path, {});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(),
            path + ":3:3: model.dropout: got 1.5; use a value in [0, 1)\n" + path +
                ":6:3: optimizer.lr: got 0; use a value > 0\n" + path +
                ":9:3: parallel.precision: BF16 needs parallel.backend: CUDA (or STRICT); the CPU "
                "backend runs FP32");
}

TEST(Errors, CrossFieldProblemPointsAtTheFieldTheUserWrote) {
  EXPECT_EQ(LoadError("model { d_model: 250 }"),
            "x.pbtxt:1:9: model.heads: 4 does not divide model.d_model 250; choose heads in "
            "{1, 2, 5, 10, 25, 50, 125, 250}");
}

TEST(Errors, BadOverridesNameTheirNumber) {
  EXPECT_EQ(LoadError("", {"train.max_step=5"}),
            "--set #1 (train.max_step=5): no field \"max_step\" in train; did you mean "
            "\"max_steps\"?");
  EXPECT_EQ(LoadError("", {"model.d_model=128", "model { heads: x }"}),
            "--set #2:1:16: Expected integer, got: x");
  EXPECT_EQ(LoadError("", {"train.max_steps=many"}),
            "--set #1 (train.max_steps=many): Expected integer, got: many");
  EXPECT_THAT(LoadError("", {"model=3"}), HasSubstr("\"model\" is a section"));
  EXPECT_THAT(LoadError("", {"model.heads="}), HasSubstr("no value"));
  EXPECT_THAT(LoadError("", {"model { d_modle: 3 }"}),
              StartsWith("--set #1:1:9: Message type \"deepnet.config.ModelConfig\" has no field "
                         "named \"d_modle\""));
  EXPECT_EQ(LoadError("", {"train.max_steps=5", "model.heads=6"}),
            "--set #2 (model.heads=6): model.heads: 6 does not divide model.d_model 256; choose "
            "heads in {1, 2, 4, 8, 16, 32, 64, 128, ...}");
}

TEST(Errors, FileErrorsComeBeforeOverrides) {
  StatusOr<RunConfig> config = LoadConfig(TestData("syntax_error.pbtxt"), {"model.heads=x"});
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(), HasSubstr("syntax_error.pbtxt:4:9:"));
}

struct SemanticCase {
  const char* text;
  const char* message;
};

// Names the ctest entry after the config text.
void PrintTo(const SemanticCase& c, std::ostream* os) { *os << c.text; }

class SemanticErrors : public ::testing::TestWithParam<SemanticCase> {};

TEST_P(SemanticErrors, SayWhatToChange) {
  const std::string message = LoadError(GetParam().text);
  EXPECT_THAT(message, StartsWith("x.pbtxt:1:"));
  EXPECT_THAT(message, HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Validation, SemanticErrors,
    ::testing::Values(
        SemanticCase{"model { encoder_layers: 0 }", "needs at least 1 encoder layer"},
        SemanticCase{"model { ffn_dim: 0 }", "model.ffn_dim: got 0; use a value >= 1"},
        SemanticCase{"model { dropout: 1 }", "model.dropout: got 1; use a value in [0, 1)"},
        SemanticCase{"model { norm: NORM_UNSPECIFIED }",
                     "model.norm: is unset; choose one of DEEPNORM, POSTLN, PRELN"},
        SemanticCase{"model { activation: 9 }", "model.activation: unknown value 9"},
        SemanticCase{"model { vocab_size: 0 } data { spm_vocab_size: 0 }",
                     "set model.vocab_size or data.spm_vocab_size"},
        SemanticCase{"model { max_positions: 100 }", "shorter than data.max_source_length 256"},
        SemanticCase{"data { source_column: 3 }", "is the same column as data.source_column"},
        SemanticCase{"data { max_tokens_per_batch: 100 }", "cannot hold the longest sentence"},
        SemanticCase{"train { label_smoothing: -0.1 }", "train.label_smoothing: got -0.1"},
        SemanticCase{"train { accumulation_steps: 0 }", "train.accumulation_steps: got 0"},
        SemanticCase{"optimizer { beta2: 1 }", "optimizer.beta2: got 1; use a value in [0, 1)"},
        SemanticCase{"optimizer { lr: inf }", "optimizer.lr: got inf; use a finite number"},
        SemanticCase{"lr_schedule { warmup_steps: 0 }", "INVERSE_SQRT decays as"},
        SemanticCase{"lr_schedule { warmup_init_lr: 1 }",
                     "lr_schedule.warmup_init_lr: got 1; use a value in [0, 5e-4]"},
        SemanticCase{"parallel { pipeline_stages: 0 }", "parallel.pipeline_stages: got 0"},
        SemanticCase{"parallel { pipeline_stages: 13 }", "every piece needs at least one layer"},
        SemanticCase{"parallel { pipeline_stages: 7 schedule: ZERO_BUBBLE_V }",
                     "14 pipeline pieces (model chunks of ZERO_BUBBLE_V) for 12 layers"},
        SemanticCase{"parallel { micro_batches: 0 }", "parallel.micro_batches: got 0"},
        SemanticCase{"parallel { virtual_chunks: 2 }",
                     "model chunks need parallel.schedule: INTERLEAVED_1F1B"},
        SemanticCase{"parallel { schedule: INTERLEAVED_1F1B }", "at least 2 chunks per rank"},
        SemanticCase{"parallel { data_parallel: 0 }", "parallel.data_parallel: got 0"},
        SemanticCase{"parallel { precision: FP16 }", "FP16 needs parallel.backend: CUDA"},
        SemanticCase{"parallel { recompute: RECOMPUTE_UNSPECIFIED }",
                     "parallel.recompute: is unset"},
        SemanticCase{"checkpoint { resume: true dir: \"\" }", "set checkpoint.dir"},
        SemanticCase{"logging { log_every: 0 }", "logging.log_every: got 0"},
        SemanticCase{"logging { trace_steps: 0 }", "logging.trace_steps: got 0"}));

TEST(Validation, ValidCombinationsPass) {
  for (const char* text : {"parallel { backend: CUDA precision: BF16 }",
                           "parallel { schedule: INTERLEAVED_1F1B virtual_chunks: 2 }",
                           "parallel { pipeline_stages: 12 schedule: ZERO_BUBBLE_H1 }",
                           "parallel { pipeline_stages: 6 schedule: ZERO_BUBBLE_V }",
                           "model { architecture: DECODER_ONLY } data { source_column: 0 }",
                           "lr_schedule { type: CONSTANT warmup_steps: 0 }"}) {
    StatusOr<RunConfig> config = LoadConfigFromText(text, "x.pbtxt", {});
    EXPECT_TRUE(config.ok()) << text << ": " << config.status();
  }
}

TEST(Validation, WithoutLocationsMessagesStartWithTheField) {
  RunConfig config = DefaultConfig();
  config.mutable_model()->set_heads(6);
  const Status status = ValidateConfig(config, nullptr);
  EXPECT_THAT(status.message(), StartsWith("model.heads: 6 does not divide model.d_model 256"));
}

TEST(ConfigToText, ReadsBackToTheSameConfig) {
  const RunConfig config =
      LoadOrDie(SourcePath("configs/tiny.pbtxt"), {"model.dropout=0", "optimizer.lr=3e-4"});
  const std::string text = ConfigToText(config);
  EXPECT_THAT(text, HasSubstr("d_model: 32"));
  EXPECT_THAT(text, HasSubstr("dropout: 0\n"));
  StatusOr<RunConfig> reread = LoadConfigFromText(text, "saved.pbtxt", {});
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*reread, config));
}

}  // namespace
}  // namespace deepnet::config
