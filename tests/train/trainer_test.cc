// The trainer in process: learning happens, resume is bit-exact, checkpoints are atomic and
// pruned, export round-trips.
#include "train/trainer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "configs/config.h"
#include "runtime/json.h"
#include "runtime/safetensors.h"
#include "tests/runtime/test_files.h"
#include "tests/train/tiny_run.h"
#include "train/checkpoint.h"
#include "train/export.h"
#include "train/progress.h"

namespace deepnet {
namespace {

config::RunConfig TinyConfig(const std::string& root, const std::string& checkpoint_dir,
                             int64_t max_steps, bool resume = false) {
  StatusOr<config::RunConfig> config =
      config::LoadConfigFromText(TinyConfigText(root, checkpoint_dir, max_steps), "tiny", {});
  CHECK(config.ok()) << config.status();
  config->mutable_checkpoint()->set_resume(resume);
  return *config;
}

std::unique_ptr<Trainer> MakeTrainer(const config::RunConfig& config,
                                     FileSystem& fs = LocalFileSystem()) {
  StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(config, fs);
  CHECK(trainer.ok()) << trainer.status();
  return std::move(trainer).value();
}

class TrainerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(WriteTinyData(dir_.path()).ok()); }
  std::string Ckpt(const std::string& name) const { return dir_.path() + "/" + name; }
  TempDir dir_{"trainer_" +
               std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())};
};

TEST_F(TrainerTest, LossGoesDown) {
  config::RunConfig config = TinyConfig(dir_.path(), "", 40);
  config.mutable_model()->set_dropout(0);
  config.mutable_model()->set_attention_dropout(0);
  auto trainer = MakeTrainer(config);
  const double before = *trainer->ValidationLoss();
  double first = 0, last = 0;
  for (int step = 0; step < 40; ++step) {
    const StepResult result = *trainer->TrainStep();
    ASSERT_GT(result.loss_tokens, 0);
    ASSERT_GT(result.optimizer.grad_norm, 0);
    const double loss = result.loss_sum / static_cast<double>(result.loss_tokens);
    if (step == 0) first = loss;
    last = loss;
  }
  EXPECT_EQ(trainer->step(), 40);
  EXPECT_EQ(trainer->config().model().vocab_size(), kTinyVocab);  // taken from the shard
  EXPECT_LT(last, first - 0.3);
  EXPECT_LT(*trainer->ValidationLoss(), before - 0.3);
}

TEST_F(TrainerTest, ResumeIsBitExact) {
  // 6 uninterrupted steps.
  ASSERT_TRUE(MakeTrainer(TinyConfig(dir_.path(), Ckpt("straight"), 6))->Run().ok());
  // 3 steps (a checkpoint at the end), then a new trainer resumes to 6 (checkpoints at 4, 6).
  ASSERT_TRUE(MakeTrainer(TinyConfig(dir_.path(), Ckpt("resumed"), 3))->Run().ok());
  auto resumed = MakeTrainer(TinyConfig(dir_.path(), Ckpt("resumed"), 6, /*resume=*/true));
  EXPECT_EQ(resumed->step(), 3);
  ASSERT_TRUE(resumed->Run().ok());
  EXPECT_EQ(resumed->step(), 6);

  for (const char* file : {kParamsFileName, kOptimizerFileName}) {
    const std::string a = FileBytes(Ckpt("straight") + "/step-0000006/" + file);
    const std::string b = FileBytes(Ckpt("resumed") + "/step-0000006/" + file);
    EXPECT_TRUE(a == b) << file << " differs between the straight and the resumed run";
  }
  const TrainingState a = *ReadTrainingState(Ckpt("straight") + "/step-0000006");
  const TrainingState b = *ReadTrainingState(Ckpt("resumed") + "/step-0000006");
  EXPECT_EQ(a.data_position, b.data_position);
  EXPECT_GT(a.data_position.epoch, 0) << "the run should cross an epoch boundary";
}

TEST_F(TrainerTest, ResumeRejectsAnotherModel) {
  ASSERT_TRUE(MakeTrainer(TinyConfig(dir_.path(), Ckpt("c"), 2))->Run().ok());
  config::RunConfig other = TinyConfig(dir_.path(), Ckpt("c"), 4, /*resume=*/true);
  other.mutable_model()->set_ffn_dim(48);
  StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(other);
  EXPECT_EQ(trainer.status().code(), StatusCode::kFailedPrecondition) << trainer.status();
}

TEST_F(TrainerTest, CheckpointsEveryStepsAtTheEndAndPrunes) {
  config::RunConfig config = TinyConfig(dir_.path(), Ckpt("c"), 5);
  config.mutable_checkpoint()->set_every_steps(1);
  config.mutable_checkpoint()->set_keep_last(2);
  ASSERT_TRUE(MakeTrainer(config)->Run().ok());
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(Ckpt("c"))) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step-0000004", "step-0000005"}));
  EXPECT_EQ(*FindLatestCheckpoint(Ckpt("c")), Ckpt("c") + "/step-0000005");
}

TEST_F(TrainerTest, FailedCheckpointWriteKeepsThePreviousOne) {
  FailingFileSystem fs;
  auto trainer = MakeTrainer(TinyConfig(dir_.path(), Ckpt("c"), 10), fs);
  ASSERT_TRUE(trainer->TrainStep().ok());
  ASSERT_TRUE(trainer->SaveCheckpoint().ok());
  const std::string good_params = FileBytes(Ckpt("c") + "/step-0000001/params.safetensors");
  ASSERT_TRUE(trainer->TrainStep().ok());
  for (int64_t fail_after : {int64_t{0}, int64_t{5000}, int64_t{40000}}) {
    fs.fail_append_after_bytes = fail_after;
    EXPECT_FALSE(trainer->SaveCheckpoint().ok());
  }
  EXPECT_EQ(*FindLatestCheckpoint(Ckpt("c")), Ckpt("c") + "/step-0000001");
  EXPECT_EQ(FileBytes(Ckpt("c") + "/step-0000001/params.safetensors"), good_params);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(Ckpt("c"))) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp."), std::string::npos)
        << "temporary file left: " << entry.path();
  }
  // The intact checkpoint still restores.
  auto resumed = MakeTrainer(TinyConfig(dir_.path(), Ckpt("c"), 10, /*resume=*/true));
  EXPECT_EQ(resumed->step(), 1);
}

TEST_F(TrainerTest, SaveRemovesWhatInterruptedSavesLeft) {
  auto trainer = MakeTrainer(TinyConfig(dir_.path(), Ckpt("c"), 10));
  ASSERT_TRUE(trainer->TrainStep().ok());
  ASSERT_TRUE(trainer->SaveCheckpoint().ok());
  // A crash mid-commit and a full disk mid-save leave these behind.
  ASSERT_TRUE(ReplaceFileAtomically(Ckpt("c") + "/latest.tmp.4242.0", "step-0000009\n").ok());
  std::filesystem::create_directories(Ckpt("c") + "/step-0000009");
  ASSERT_TRUE(
      ReplaceFileAtomically(Ckpt("c") + "/step-0000009/params.safetensors", "partial").ok());
  ASSERT_TRUE(trainer->TrainStep().ok());
  ASSERT_TRUE(trainer->SaveCheckpoint().ok());
  const std::vector<std::string> left = DirectoryEntries(Ckpt("c"));
  EXPECT_EQ(left, (std::vector<std::string>{"latest", "step-0000001", "step-0000002"}));
}

TEST_F(TrainerTest, ExportRoundTrip) {
  auto trainer = MakeTrainer(TinyConfig(dir_.path(), "", 2));
  ASSERT_TRUE(trainer->TrainStep().ok());
  std::vector<Unit*> units;
  for (auto& unit : trainer->model().units()) units.push_back(unit.get());
  const std::string path = dir_.path() + "/model.safetensors";
  ASSERT_TRUE(ExportModel(path, units, trainer->config().model(), SpecialIds(), CpuBackend()).ok());

  const SafetensorsReader reader = *SafetensorsReader::Open(path);
  size_t primaries = 0;
  for (const Unit* unit : units) {
    for (const Parameter& p : unit->parameters()) {
      if (p.tied_copy) continue;
      ++primaries;
      const StatusOr<Tensor> read = reader.Read(p.name);
      ASSERT_TRUE(read.ok()) << read.status();
      ASSERT_EQ(read->shape(), p.value.shape()) << p.name;
      EXPECT_EQ(std::memcmp(read->raw_data(), p.value.raw_data(), p.value.nbytes()), 0) << p.name;
    }
  }
  EXPECT_EQ(reader.entries().size(), primaries);
  EXPECT_NE(reader.Find("embed_tokens.weight"), nullptr);
  EXPECT_NE(reader.Find("decoder.layers.0.encoder_attn.k_proj.weight"), nullptr);
  EXPECT_EQ(reader.metadata().at("d_model"), "16");
  EXPECT_EQ(reader.metadata().at("norm"), "DEEPNORM");
  EXPECT_EQ(reader.metadata().at("vocab_size"), "64");
  EXPECT_EQ(reader.metadata().at("eos_id"), "3");
  EXPECT_EQ(reader.metadata().at("pad_id"), "0");
}

TEST_F(TrainerTest, MissingDataNamesPrepare) {
  config::RunConfig config = TinyConfig(dir_.path() + "/nowhere", "", 2);
  StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(config);
  EXPECT_EQ(trainer.status().code(), StatusCode::kNotFound);
  EXPECT_NE(trainer.status().message().find("deepnet prepare"), std::string::npos);
}

TEST_F(TrainerTest, PipelineConfigIsRefused) {
  config::RunConfig config = TinyConfig(dir_.path(), "", 2);
  config.mutable_parallel()->set_pipeline_stages(2);
  EXPECT_EQ(Trainer::Create(config).status().code(), StatusCode::kFailedPrecondition);
}

TEST_F(TrainerTest, MetricsFileGetsOneJsonObjectPerLogAndValidation) {
  config::RunConfig config = TinyConfig(dir_.path(), "", 4);
  config.mutable_logging()->set_log_every(2);
  config.mutable_logging()->set_json_metrics(dir_.path() + "/metrics/run.jsonl");
  ASSERT_TRUE(MakeTrainer(config)->Run().ok());
  std::vector<JsonValue> lines;
  std::istringstream in(FileBytes(dir_.path() + "/metrics/run.jsonl"));
  for (std::string line; std::getline(in, line);) lines.push_back(*ParseJson(line));
  ASSERT_EQ(lines.size(), 3u);  // progress at 2, validation at 3, progress at 4
  EXPECT_EQ(*lines[0].Find("step")->AsInt64(), 2);
  EXPECT_GT(*lines[0].Find("loss")->AsDouble(), 0.0);
  EXPECT_GT(*lines[0].Find("lr")->AsDouble(), 0.0);
  EXPECT_NE(lines[0].Find("grad_norm"), nullptr);
  EXPECT_NE(lines[0].Find("tokens_per_second"), nullptr);
  EXPECT_EQ(*lines[1].Find("step")->AsInt64(), 3);
  EXPECT_GT(*lines[1].Find("valid_loss")->AsDouble(), 0.0);
  EXPECT_EQ(*lines[2].Find("step")->AsInt64(), 4);
}

TEST(ProgressTest, LineAndDurations) {
  EXPECT_EQ(FormatDuration(0), "0:00:00");
  EXPECT_EQ(FormatDuration(62.4), "0:01:02");
  EXPECT_EQ(FormatDuration(3 * 3600 + 61), "3:01:01");
  ProgressRecord record;
  record.step = 120;
  record.loss = 7.41234;
  record.lr = 1.5e-5;
  record.grad_norm = 2.31;
  record.tokens_per_second = 5123.4;
  record.elapsed_seconds = 62;
  record.eta_seconds = 9670;
  EXPECT_EQ(FormatProgressLine(record, 20000),
            "step 120/20000 | loss 7.4123 | lr 1.500e-05 | gnorm 2.310 | 5123 tok/s | "
            "elapsed 0:01:02 | eta 2:41:10");
  ProgressMeter meter(100, 200);
  meter.AddStep(30.0, 10, 1e-3, 1.0);
  meter.AddStep(10.0, 10, 2e-3, 0.5);
  const ProgressRecord r = meter.TakeRecord(102);
  EXPECT_DOUBLE_EQ(r.loss, 2.0);
  EXPECT_EQ(r.lr, 2e-3);
  EXPECT_EQ(r.grad_norm, 0.5);
  meter.AddStep(5.0, 5, 1e-3, 1.0);
  EXPECT_DOUBLE_EQ(meter.TakeRecord(103).loss, 1.0);  // a new interval
}

}  // namespace
}  // namespace deepnet
