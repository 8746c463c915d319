// The trainer on a device: the strict test device (kernels/strict), whose memory the host cannot
// read, stands in for a GPU. fp32 on it is the CPU run bit for bit; bf16 and fp16 mixed precision
// keep fp32 master weights and land within their rounding of fp32; an fp16 overflow is skipped,
// counted and resumed; checkpoints move between devices; a CUDA request without a GPU fails at
// start, naming the host.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "configs/config.h"
#include "kernels/backends.h"
#include "runtime/safetensors.h"
#include "tests/runtime/test_files.h"
#include "tests/train/tiny_run.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace deepnet {
namespace {

config::RunConfig TinyConfig(
    const std::string& root, const std::string& checkpoint_dir, int64_t max_steps,
    config::ParallelConfig::Backend backend,
    config::ParallelConfig::Precision precision = config::ParallelConfig::FP32) {
  StatusOr<config::RunConfig> config =
      config::LoadConfigFromText(TinyConfigText(root, checkpoint_dir, max_steps), "tiny", {});
  CHECK(config.ok()) << config.status();
  config->mutable_parallel()->set_backend(backend);
  config->mutable_parallel()->set_precision(precision);
  return *config;
}

std::unique_ptr<Trainer> MakeTrainer(const config::RunConfig& config) {
  StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(config);
  CHECK(trainer.ok()) << trainer.status();
  return std::move(trainer).value();
}

std::vector<double> StepLosses(Trainer& trainer, int steps) {
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    const StatusOr<StepResult> result = trainer.TrainStep();
    CHECK(result.ok()) << result.status();
    losses.push_back(result->loss_sum / static_cast<double>(result->loss_tokens));
  }
  return losses;
}

// Every unit's trained (master) weights, copied to the host as floats.
std::vector<float> HostWeights(Trainer& trainer) {
  std::vector<float> all;
  const Backend& backend = trainer.model().backend();
  for (auto& unit : trainer.model().units()) {
    for (const Parameter& p : unit->parameters()) {
      Tensor host = Tensor::Empty(p.weights().shape(), p.weights().dtype(), MemoryCategory::kOther);
      backend.Copy(host, p.weights());
      all.insert(all.end(), host.data<float>(), host.data<float>() + host.numel());
    }
  }
  return all;
}

class DeviceTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(WriteTinyData(dir_.path()).ok()); }
  std::string Ckpt(const std::string& name) const { return dir_.path() + "/" + name; }
  TempDir dir_{"device_trainer_" +
               std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())};
};

TEST_F(DeviceTrainerTest, StrictFp32IsTheCpuRunBitForBit) {
  // Dropout, label smoothing, clipping, Adam with L2 and two flushes per step: every op runs.
  ASSERT_TRUE(MakeTrainer(TinyConfig(dir_.path(), Ckpt("cpu"), 4, config::ParallelConfig::CPU))
                  ->Run()
                  .ok());
  auto strict =
      MakeTrainer(TinyConfig(dir_.path(), Ckpt("strict"), 4, config::ParallelConfig::STRICT));
  EXPECT_EQ(strict->model().backend().device(), Device::Strict());
  ASSERT_TRUE(strict->Run().ok());
  for (const char* file : {kParamsFileName, kOptimizerFileName}) {
    EXPECT_TRUE(FileBytes(Ckpt("cpu") + "/step-0000004/" + file) ==
                FileBytes(Ckpt("strict") + "/step-0000004/" + file))
        << file << " differs between the CPU and the strict device";
  }
}

TEST_F(DeviceTrainerTest, Bf16KeepsFp32MastersAndTracksTheFp32Loss) {
  auto fp32 = MakeTrainer(TinyConfig(dir_.path(), "", 6, config::ParallelConfig::CPU));
  auto bf16 = MakeTrainer(TinyConfig(dir_.path(), Ckpt("bf16"), 6, config::ParallelConfig::STRICT,
                                     config::ParallelConfig::BF16));
  EXPECT_EQ(bf16->model().compute_dtype(), DType::kBF16);
  const Parameter& fc1 = bf16->model().units()[1]->parameters().front();
  EXPECT_EQ(fc1.value.dtype(), DType::kBF16);
  EXPECT_EQ(fc1.weights().dtype(), DType::kF32);
  EXPECT_EQ(fc1.grad.dtype(), DType::kF32);

  const std::vector<double> want = StepLosses(*fp32, 6);
  const std::vector<double> got = StepLosses(*bf16, 6);
  bool any_difference = false;
  for (size_t s = 0; s < want.size(); ++s) {
    EXPECT_NEAR(got[s], want[s], 2e-2 * want[s]) << "step " << s + 1;
    any_difference |= got[s] != want[s];
  }
  EXPECT_TRUE(any_difference) << "bf16 gave the fp32 losses exactly: no rounding happened";

  // The checkpoint holds the fp32 masters, not the bf16 compute copies.
  ASSERT_TRUE(bf16->SaveCheckpoint().ok());
  StatusOr<SafetensorsReader> params =
      SafetensorsReader::Open(Ckpt("bf16") + "/step-0000006/" + kParamsFileName);
  ASSERT_TRUE(params.ok()) << params.status();
  ASSERT_FALSE(params->entries().empty());
  for (const SafetensorsEntry& entry : params->entries()) {
    EXPECT_EQ(entry.dtype, DType::kF32) << entry.name;
  }
}

TEST_F(DeviceTrainerTest, Fp16OverflowIsSkippedCountedAndResumed) {
  const config::RunConfig config = TinyConfig(
      dir_.path(), Ckpt("fp16"), 3, config::ParallelConfig::STRICT, config::ParallelConfig::FP16);
  auto trainer = MakeTrainer(config);
  EXPECT_EQ(trainer->optimizer().loss_scale(), 65536.0);
  // Plant an overflow: a loss scale far beyond fp16's range makes the gradients infinite.
  LossScaler::State planted = trainer->optimizer().loss_scaler().state();
  planted.scale = 1e30;
  trainer->optimizer().loss_scaler().Restore(planted);
  const std::vector<float> before = HostWeights(*trainer);
  const StatusOr<StepResult> overflowed = trainer->TrainStep();
  ASSERT_TRUE(overflowed.ok()) << overflowed.status();
  EXPECT_TRUE(overflowed->optimizer.skipped);
  EXPECT_EQ(trainer->optimizer().skipped_steps(), 1);
  EXPECT_EQ(trainer->optimizer().step(), 0);
  EXPECT_EQ(trainer->optimizer().loss_scale(), 5e29);
  EXPECT_TRUE(HostWeights(*trainer) == before) << "a skipped step changed the weights";

  // A sane scale trains again; the checkpoint records the skip and resumes with it.
  planted = trainer->optimizer().loss_scaler().state();
  planted.scale = 1024.0;
  trainer->optimizer().loss_scaler().Restore(planted);
  const StatusOr<StepResult> finite = trainer->TrainStep();
  ASSERT_TRUE(finite.ok()) << finite.status();
  EXPECT_FALSE(finite->optimizer.skipped);
  EXPECT_TRUE(std::isfinite(finite->optimizer.grad_norm));
  EXPECT_EQ(trainer->optimizer().step(), 1);
  ASSERT_TRUE(trainer->SaveCheckpoint().ok());
  for (float w : HostWeights(*trainer)) ASSERT_TRUE(std::isfinite(w));

  config::RunConfig again = config;
  again.mutable_checkpoint()->set_resume(true);
  auto resumed = MakeTrainer(again);
  EXPECT_EQ(resumed->step(), 2);
  EXPECT_EQ(resumed->optimizer().step(), 1);
  EXPECT_EQ(resumed->optimizer().skipped_steps(), 1);
  EXPECT_EQ(resumed->optimizer().loss_scale(), 1024.0);
  EXPECT_TRUE(HostWeights(*resumed) == HostWeights(*trainer));
}

TEST_F(DeviceTrainerTest, CheckpointsMoveBetweenDevices) {
  // 6 steps on the CPU, against 3 on the strict device resumed for 3 on the CPU, and the reverse.
  ASSERT_TRUE(MakeTrainer(TinyConfig(dir_.path(), Ckpt("straight"), 6, config::ParallelConfig::CPU))
                  ->Run()
                  .ok());
  const std::vector<std::pair<config::ParallelConfig::Backend, config::ParallelConfig::Backend>>
      moves = {{config::ParallelConfig::STRICT, config::ParallelConfig::CPU},
               {config::ParallelConfig::CPU, config::ParallelConfig::STRICT}};
  for (const auto& [first, second] : moves) {
    const std::string dir = Ckpt("moved-" + config::ParallelConfig::Backend_Name(first));
    ASSERT_TRUE(MakeTrainer(TinyConfig(dir_.path(), dir, 3, first))->Run().ok());
    config::RunConfig resume = TinyConfig(dir_.path(), dir, 6, second);
    resume.mutable_checkpoint()->set_resume(true);
    auto resumed = MakeTrainer(resume);
    EXPECT_EQ(resumed->step(), 3);
    ASSERT_TRUE(resumed->Run().ok());
    EXPECT_TRUE(FileBytes(Ckpt("straight") + "/step-0000006/" + kParamsFileName) ==
                FileBytes(dir + "/step-0000006/" + kParamsFileName))
        << config::ParallelConfig::Backend_Name(first) << " -> "
        << config::ParallelConfig::Backend_Name(second);
  }
}

TEST_F(DeviceTrainerTest, CudaWithoutAGpuFailsAtStartNamingTheHost) {
  if (OpenBackend(BackendKind::kCuda).ok()) GTEST_SKIP() << "this machine has a usable GPU";
  StatusOr<std::unique_ptr<Trainer>> trainer =
      Trainer::Create(TinyConfig(dir_.path(), "", 2, config::ParallelConfig::CUDA));
  ASSERT_FALSE(trainer.ok());
  EXPECT_EQ(trainer.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(trainer.status().message().find("cuda on host " + HostName()), std::string::npos)
      << trainer.status();
}

}  // namespace
}  // namespace deepnet
