// train.update_norm_every: ||F(x; θ_t) − F(x; θ_0)|| on the first validation batch
// (train/update_norm.h), measured by the single-process trainer and written to the metrics file.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "configs/config.h"
#include "runtime/json.h"
#include "tests/runtime/test_files.h"
#include "tests/train/tiny_run.h"
#include "train/trainer.h"

namespace deepnet {
namespace {

config::RunConfig ProbeConfig(const std::string& root, const std::string& checkpoint_dir,
                              int64_t max_steps) {
  StatusOr<config::RunConfig> config = config::LoadConfigFromText(
      TinyConfigText(root, checkpoint_dir, max_steps), "tiny",
      {"train.update_norm_every=2", "model.dropout=0", "model.attention_dropout=0"});
  CHECK(config.ok()) << config.status();
  return *config;
}

std::unique_ptr<Trainer> MakeTrainer(const config::RunConfig& config) {
  StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(config);
  CHECK(trainer.ok()) << trainer.status();
  return std::move(trainer).value();
}

class UpdateNormTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(WriteTinyData(dir_.path()).ok()); }
  TempDir dir_{"update_norm_" +
               std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())};
};

TEST_F(UpdateNormTest, ZeroAtTheStartThenGrowsWithTraining) {
  auto trainer = MakeTrainer(ProbeConfig(dir_.path(), "", 8));
  EXPECT_EQ(*trainer->UpdateNorm(), 0.0);  // θ_t = θ_0: the same logits, bit for bit
  ASSERT_TRUE(trainer->TrainStep().ok());
  const double after_one = *trainer->UpdateNorm();
  for (int step = 1; step < 8; ++step) ASSERT_TRUE(trainer->TrainStep().ok());
  const double after_eight = *trainer->UpdateNorm();
  EXPECT_GT(after_one, 0.0);
  EXPECT_TRUE(std::isfinite(after_eight));
  EXPECT_GT(after_eight, after_one);  // Adam at lr 3e-3 keeps moving the same way early on
}

TEST_F(UpdateNormTest, MeasuredFromTheInitialParametersAfterAResume) {
  const std::string straight_dir = dir_.path() + "/straight",
                    resumed_dir = dir_.path() + "/resumed";
  auto straight = MakeTrainer(ProbeConfig(dir_.path(), straight_dir, 6));
  ASSERT_TRUE(straight->Run().ok());
  ASSERT_TRUE(MakeTrainer(ProbeConfig(dir_.path(), resumed_dir, 3))->Run().ok());
  config::RunConfig resume = ProbeConfig(dir_.path(), resumed_dir, 6);
  resume.mutable_checkpoint()->set_resume(true);
  auto resumed = MakeTrainer(resume);
  ASSERT_EQ(resumed->step(), 3);
  ASSERT_TRUE(resumed->Run().ok());
  EXPECT_EQ(*resumed->UpdateNorm(), *straight->UpdateNorm());
}

TEST_F(UpdateNormTest, WrittenToTheMetricsFileEveryKSteps) {
  config::RunConfig config = ProbeConfig(dir_.path(), "", 4);
  config.mutable_logging()->set_log_every(4);
  config.mutable_train()->set_valid_every(4);
  config.mutable_logging()->set_json_metrics(dir_.path() + "/metrics.jsonl");
  ASSERT_TRUE(MakeTrainer(config)->Run().ok());
  std::vector<std::pair<int64_t, double>> norms;
  std::istringstream in(FileBytes(dir_.path() + "/metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    const JsonValue json = *ParseJson(line);
    if (const JsonValue* norm = json.Find("update_norm"); norm != nullptr) {
      norms.emplace_back(*json.Find("step")->AsInt64(), *norm->AsDouble());
    }
  }
  ASSERT_EQ(norms.size(), 2u);
  EXPECT_EQ(norms[0].first, 2);
  EXPECT_EQ(norms[1].first, 4);
  EXPECT_GT(norms[0].second, 0.0);
}

TEST(UpdateNormConfigTest, NeedsValidationAndOneProcess) {
  const std::string base = TinyConfigText("/nonexistent", "", 4);
  StatusOr<config::RunConfig> no_validation = config::LoadConfigFromText(
      base, "tiny", {"train.update_norm_every=5", "train.valid_every=0"});
  ASSERT_FALSE(no_validation.ok());
  EXPECT_NE(no_validation.status().message().find("--set #1"), std::string::npos)
      << no_validation.status();
  EXPECT_NE(no_validation.status().message().find("train.update_norm_every: the update norm is "
                                                  "measured on the first validation batch"),
            std::string::npos)
      << no_validation.status();

  StatusOr<config::RunConfig> pipeline = config::LoadConfigFromText(
      base, "tiny", {"train.update_norm_every=5", "parallel.pipeline_stages=2"});
  ASSERT_FALSE(pipeline.ok());
  EXPECT_NE(pipeline.status().message().find("single-process trainer only"), std::string::npos)
      << pipeline.status();

  StatusOr<config::RunConfig> negative =
      config::LoadConfigFromText(base, "tiny", {"train.update_norm_every=-1"});
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("train.update_norm_every: got -1"), std::string::npos)
      << negative.status();
}

}  // namespace
}  // namespace deepnet
