// The real `deepnet` binary: k steps, a new process resuming for k more, bit-identical to 2k
// uninterrupted steps; export of the checkpoint; errors as messages and exit codes; a forgotten
// --resume refused; a diverging run stopped without saving its poisoned state.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <cstring>
#include <string>

#include "runtime/atomic_file.h"
#include "runtime/safetensors.h"
#include "tests/runtime/test_files.h"
#include "tests/train/tiny_run.h"
#include "train/checkpoint.h"

namespace deepnet {
namespace {

// The directory name `latest` points to, e.g. "step-0000003".
StatusOr<std::string> FindLatestCheckpointName(const std::string& root) {
  ASSIGN_OR_RETURN(const std::string dir, FindLatestCheckpoint(root));
  return std::filesystem::path(dir).filename().string();
}

// Runs `deepnet <args>` with stderr in <dir>/stderr.txt; returns the exit code.
int Deepnet(const std::string& args, const std::string& dir) {
  const std::string command = std::string(DEEPNET_BINARY) + " " + args + " > " + dir +
                              "/stdout.txt 2> " + dir + "/stderr.txt";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Output(const std::string& dir, const char* stream) {
  StatusOr<std::string> text = ReadWholeFile(dir + "/" + stream + ".txt");
  return text.ok() ? *text : "";
}

void ExpectSameTensors(const std::string& a_path, const std::string& b_path) {
  const SafetensorsReader a = *SafetensorsReader::Open(a_path);
  const SafetensorsReader b = *SafetensorsReader::Open(b_path);
  ASSERT_EQ(a.entries().size(), b.entries().size());
  for (const SafetensorsEntry& entry : a.entries()) {
    const Tensor x = *a.Read(entry.name);
    const StatusOr<Tensor> y = b.Read(entry.name);
    ASSERT_TRUE(y.ok()) << y.status();
    ASSERT_EQ(x.shape(), y->shape()) << entry.name;
    EXPECT_EQ(std::memcmp(x.raw_data(), y->raw_data(), x.nbytes()), 0)
        << entry.name << " differs bitwise";
  }
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteTinyData(dir_.path()).ok());
    config_ = dir_.path() + "/tiny.pbtxt";
    ASSERT_TRUE(ReplaceFileAtomically(config_, TinyConfigText(dir_.path(), "unused", 8)).ok());
  }
  std::string Train(const std::string& checkpoint_dir, int64_t steps, bool resume) {
    return "train --config " + config_ + " --checkpoint_dir " + checkpoint_dir +
           " --set train.max_steps=" + std::to_string(steps) + (resume ? " --resume" : "");
  }

  TempDir dir_{"cli_" +
               std::string(::testing::UnitTest::GetInstance()->current_test_info()->name())};
  std::string config_;
};

TEST_F(CliTest, TrainResumeInNewProcessIsBitExact) {
  const std::string straight = dir_.path() + "/straight";
  const std::string resumed = dir_.path() + "/resumed";
  ASSERT_EQ(Deepnet(Train(straight, 8, false), dir_.path()), 0) << Output(dir_.path(), "stderr");
  EXPECT_NE(Output(dir_.path(), "stderr").find("step 8/8 | loss"), std::string::npos);
  ASSERT_EQ(Deepnet(Train(resumed, 4, false), dir_.path()), 0) << Output(dir_.path(), "stderr");
  ASSERT_EQ(Deepnet(Train(resumed, 8, true), dir_.path()), 0) << Output(dir_.path(), "stderr");
  EXPECT_NE(Output(dir_.path(), "stderr").find("resumed from"), std::string::npos);
  ExpectSameTensors(straight + "/step-0000008/params.safetensors",
                    resumed + "/step-0000008/params.safetensors");
  ExpectSameTensors(straight + "/step-0000008/optimizer.safetensors",
                    resumed + "/step-0000008/optimizer.safetensors");
}

TEST_F(CliTest, ExportMatchesCheckpointParameters) {
  const std::string checkpoints = dir_.path() + "/c";
  ASSERT_EQ(Deepnet(Train(checkpoints, 2, false), dir_.path()), 0) << Output(dir_.path(), "stderr");
  const std::string out = dir_.path() + "/model.safetensors";
  ASSERT_EQ(Deepnet("export --checkpoint " + checkpoints + " --out " + out, dir_.path()), 0)
      << Output(dir_.path(), "stderr");
  const SafetensorsReader exported = *SafetensorsReader::Open(out);
  const SafetensorsReader params =
      *SafetensorsReader::Open(checkpoints + "/step-0000002/params.safetensors");
  size_t primaries = 0;
  for (const SafetensorsEntry& entry : params.entries()) {
    if (entry.name.starts_with("tied/")) {
      EXPECT_EQ(exported.Find(entry.name), nullptr);
      continue;
    }
    ++primaries;
    const Tensor a = *params.Read(entry.name);
    const StatusOr<Tensor> b = exported.Read(entry.name);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(std::memcmp(a.raw_data(), b->raw_data(), a.nbytes()), 0) << entry.name;
  }
  EXPECT_EQ(exported.entries().size(), primaries);
  EXPECT_EQ(exported.metadata().at("heads"), "2");
  EXPECT_EQ(exported.metadata().at("architecture"), "ENCODER_DECODER");
}

TEST_F(CliTest, ExistingCheckpointsNeedResumeOrRestart) {
  const std::string checkpoints = dir_.path() + "/c";
  ASSERT_EQ(Deepnet(Train(checkpoints, 3, false), dir_.path()), 0) << Output(dir_.path(), "stderr");
  // Forgetting --resume would start over and move `latest` back: refused, naming both choices.
  EXPECT_EQ(Deepnet(Train(checkpoints, 6, false), dir_.path()), 1);
  for (const char* expected : {"already holds checkpoints", "--resume", "--restart"}) {
    EXPECT_NE(Output(dir_.path(), "stderr").find(expected), std::string::npos)
        << expected << " missing in\n" << Output(dir_.path(), "stderr");
  }
  EXPECT_EQ(*FindLatestCheckpointName(checkpoints), "step-0000003");
  EXPECT_EQ(Deepnet(Train(checkpoints, 6, false) + " --resume --restart", dir_.path()), 1);
  ASSERT_EQ(Deepnet(Train(checkpoints, 2, false) + " --restart", dir_.path()), 0)
      << Output(dir_.path(), "stderr");
  EXPECT_EQ(*FindLatestCheckpointName(checkpoints), "step-0000002");
  // A resume below the checkpoint's step has nothing to train: an error, not a silent exit 0.
  EXPECT_EQ(Deepnet(Train(checkpoints, 1, true), dir_.path()), 1);
  EXPECT_NE(Output(dir_.path(), "stderr").find("past train.max_steps 1"), std::string::npos)
      << Output(dir_.path(), "stderr");
}

TEST_F(CliTest, DivergingRunStopsAndNeverSavesPoisonedState) {
  const std::string checkpoints = dir_.path() + "/c";
  const std::string diverge =
      " --set optimizer.lr=1e30 --set train.clip_norm=0 --set lr_schedule.warmup_steps=1"
      " --set train.max_consecutive_skips=3 --set checkpoint.every_steps=1";
  EXPECT_EQ(Deepnet(Train(checkpoints, 30, false) + diverge, dir_.path()), 1);
  const std::string err = Output(dir_.path(), "stderr");
  for (const char* expected : {"gradients not finite", "3 in a row", "training diverged"}) {
    EXPECT_NE(err.find(expected), std::string::npos) << expected << " missing in\n" << err;
  }
  // Every checkpoint on disk holds finite parameters and moments.
  for (const auto& entry : std::filesystem::directory_iterator(checkpoints)) {
    if (!entry.is_directory()) continue;
    for (const char* file : {"params.safetensors", "optimizer.safetensors"}) {
      const SafetensorsReader reader = *SafetensorsReader::Open((entry.path() / file).string());
      for (const SafetensorsEntry& tensor : reader.entries()) {
        const Tensor values = *reader.Read(tensor.name);
        for (int64_t i = 0; i < values.numel(); ++i) {
          ASSERT_TRUE(std::isfinite(values.data<float>()[i]))
              << entry.path() << "/" << file << ": " << tensor.name << "[" << i << "]";
        }
      }
    }
  }
}

TEST_F(CliTest, ConfigPrintsMergedOverrides) {
  ASSERT_EQ(Deepnet("config --config " + config_ + " --set model.d_model=32 --set=train.seed=9",
                    dir_.path()),
            0)
      << Output(dir_.path(), "stderr");
  const std::string out = Output(dir_.path(), "stdout");
  EXPECT_NE(out.find("d_model: 32"), std::string::npos) << out;
  EXPECT_NE(out.find("seed: 9"), std::string::npos) << out;
}

TEST_F(CliTest, ErrorsAreMessagesAndExitCodes) {
  EXPECT_EQ(Deepnet("config --config " + config_ + " --set model.dmodel=3", dir_.path()), 1);
  EXPECT_NE(Output(dir_.path(), "stderr").find("did you mean \"d_model\""), std::string::npos);
  EXPECT_EQ(Deepnet("train --config " + dir_.path() + "/missing.pbtxt", dir_.path()), 1);
  EXPECT_NE(Output(dir_.path(), "stderr").find("missing.pbtxt"), std::string::npos);
  EXPECT_EQ(
      Deepnet("train --config " + config_ + " --data_dir " + dir_.path() + "/none", dir_.path()),
      1);
  EXPECT_NE(Output(dir_.path(), "stderr").find("deepnet prepare"), std::string::npos);
  EXPECT_EQ(Deepnet("export --checkpoint " + dir_.path() + "/none --out x", dir_.path()), 1);
  EXPECT_EQ(Deepnet("frobnicate", dir_.path()), 2);
  EXPECT_EQ(Deepnet("config --set", dir_.path()), 2);
  EXPECT_EQ(Deepnet("config --config " + config_ + " --set ''", dir_.path()), 2);
  EXPECT_NE(Output(dir_.path(), "stderr").find("got an empty one"), std::string::npos);
  EXPECT_EQ(Deepnet("", dir_.path()), 2);
}

}  // namespace
}  // namespace deepnet
