// `mpirun -np 2 deepnet train`: a 2-stage pipeline from the command line. k steps, then a new
// job resuming for k more, gives bit for bit the parameters of 2k steps of one process; rank 0
// prints the grid, the progress lines and every rank's activation peak; a config asking for more
// ranks than the job has is refused with the mpirun command to use. On the strict test device
// (device memory the host cannot read, staged over MPI) the same holds, in fp32 against the CPU
// and in bf16 mixed precision against one strict process. A ZB-V schedule saved by `deepnet
// schedule` and read back through parallel.schedule_file trains to the same parameters.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>

#include "runtime/atomic_file.h"
#include "runtime/safetensors.h"
#include "tests/parallel/pipeline_test_util.h"
#include "tests/runtime/test_files.h"
#include "train/checkpoint.h"

namespace deepnet::testing {
namespace {

// Runs `command` with stdout and stderr in <dir>/output.txt; returns the exit code.
int Shell(const std::string& command, const std::string& dir) {
  const int status = std::system((command + " > " + dir + "/output.txt 2>&1").c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Output(const std::string& dir) {
  StatusOr<std::string> text = ReadWholeFile(dir + "/output.txt");
  return text.ok() ? *text : "";
}

std::string Mpirun(int ranks) {
  return std::string(MPIEXEC) + " -np " + std::to_string(ranks) +
         " --allow-run-as-root --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 " +
         DEEPNET_BINARY;
}

class EngineCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteData(dir_.path(), 200).ok());
    RunShape shape;
    shape.stages = 2;
    shape.micro_batches = 3;
    shape.recompute = config::ParallelConfig::FULL;
    config_ = dir_.path() + "/pipeline.pbtxt";
    ASSERT_TRUE(
        ReplaceFileAtomically(config_, config::ConfigToText(MakeConfig(dir_.path(), shape))).ok());
    reference_ = ReferenceRun(MakeConfig(dir_.path(), shape), 4);
  }
  std::string Train(int64_t steps, bool resume) const {
    return " train --config " + config_ + " --checkpoint_dir " + dir_.path() + "/ckpt" +
           " --set train.max_steps=" + std::to_string(steps) + (resume ? " --resume" : "");
  }

  // One CPU process resumes from the checkpoint in ckpt/: step 4, the reference's parameters.
  void ExpectCheckpointIsTheReference() const {
    RunShape shape;
    config::RunConfig single = SingleProcessConfig(MakeConfig(dir_.path(), shape));
    single.mutable_checkpoint()->set_dir(dir_.path() + "/ckpt");
    single.mutable_checkpoint()->set_resume(true);
    StatusOr<std::unique_ptr<Trainer>> restored = Trainer::Create(single);
    ASSERT_TRUE(restored.ok()) << restored.status();
    EXPECT_EQ((*restored)->step(), 4);
    std::vector<Unit*> units;
    for (auto& unit : (*restored)->model().units()) units.push_back(unit.get());
    EXPECT_TRUE(SameParameters(reference_, units));
  }

  TempDir dir_{"engine_cli"};
  std::string config_;
  Snapshot reference_;
};

TEST_F(EngineCliTest, ResumedPipelineEqualsOneProcess) {
  ASSERT_EQ(Shell(Mpirun(2) + Train(2, false), dir_.path()), 0) << Output(dir_.path());
  const std::string first = Output(dir_.path());
  for (const char* expected : {"rank 1  replica 0  stage 1  units [", "step 2/2 | loss",
                               "peak activation memory: rank 1 (replica 0, stage 1)"}) {
    EXPECT_NE(first.find(expected), std::string::npos) << expected << " missing in\n" << first;
  }
  ASSERT_EQ(Shell(Mpirun(2) + Train(4, true), dir_.path()), 0) << Output(dir_.path());
  EXPECT_NE(Output(dir_.path()).find("resumed from"), std::string::npos) << Output(dir_.path());

  // One process restores the stage files of step 4: exactly the reference's parameters.
  ExpectCheckpointIsTheReference();
}

// Every tensor of the params files in checkpoint `dir` (whole or per stage), by name.
std::map<std::string, std::string> ParamBytes(const std::string& dir) {
  std::map<std::string, std::string> bytes;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("params")) continue;
    StatusOr<SafetensorsReader> reader = SafetensorsReader::Open(entry.path().string());
    CHECK(reader.ok()) << reader.status();
    for (const SafetensorsEntry& tensor : reader->entries()) {
      StatusOr<Tensor> host = reader->Read(tensor.name);
      CHECK(host.ok()) << host.status();
      bytes[tensor.name].assign(static_cast<const char*>(host->raw_data()), host->nbytes());
    }
  }
  return bytes;
}

TEST_F(EngineCliTest, StrictDevicePipelineEqualsOneCpuProcess) {
  const std::string strict = " --set parallel.backend=STRICT";
  ASSERT_EQ(Shell(Mpirun(2) + Train(2, false) + strict, dir_.path()), 0) << Output(dir_.path());
  const std::string first = Output(dir_.path());
  for (const char* expected : {"strict (CPU-emulated device)", "staged through host buffers"}) {
    EXPECT_NE(first.find(expected), std::string::npos) << expected << " missing in\n" << first;
  }
  ASSERT_EQ(Shell(Mpirun(2) + Train(4, true) + strict, dir_.path()), 0) << Output(dir_.path());

  ExpectCheckpointIsTheReference();  // restored on the CPU
}

TEST_F(EngineCliTest, StrictBf16PipelineEqualsOneStrictBf16Process) {
  const std::string bf16 = " --set parallel.backend=STRICT --set parallel.precision=BF16";
  ASSERT_EQ(Shell(Mpirun(2) + Train(3, false) + bf16, dir_.path()), 0) << Output(dir_.path());
  const std::string one = " train --config " + config_ + " --checkpoint_dir " + dir_.path() +
                          "/single --set train.max_steps=3 --set parallel.pipeline_stages=1";
  ASSERT_EQ(Shell(std::string(DEEPNET_BINARY) + one + bf16, dir_.path()), 0)
      << Output(dir_.path());
  const auto pipeline = ParamBytes(dir_.path() + "/ckpt/step-0000003");
  const auto process = ParamBytes(dir_.path() + "/single/step-0000003");
  ASSERT_FALSE(process.empty());
  EXPECT_EQ(pipeline.size(), process.size());
  for (const auto& [name, bytes] : process) {
    const auto it = pipeline.find(name);
    ASSERT_NE(it, pipeline.end()) << name << " missing in the pipeline's checkpoint";
    EXPECT_TRUE(it->second == bytes) << name << " differs";
  }
}

// `deepnet schedule` saves ZB-V as a schedule file; a 2-rank job trains from that file
// (parallel.schedule_file) to exactly the single-process parameters; a broken file is named with
// its line.
TEST_F(EngineCliTest, ScheduleFileTrainsLikeOneProcess) {
  const std::string file = dir_.path() + "/zb-v.schedule";
  ASSERT_EQ(Shell(std::string(DEEPNET_BINARY) +
                      " schedule --schedule zb-v --stages 2 --micro_batches 3 --save " + file,
                  dir_.path()),
            0)
      << Output(dir_.path());
  EXPECT_NE(Output(dir_.path()).find("chunks placed V (rank r holds r and 3-r)"), std::string::npos)
      << Output(dir_.path());
  ASSERT_EQ(Shell(std::string(DEEPNET_BINARY) + " schedule --from " + file, dir_.path()), 0)
      << Output(dir_.path());
  EXPECT_NE(Output(dir_.path()).find("bubble"), std::string::npos) << Output(dir_.path());

  const std::string use_file = " --set 'parallel { schedule_file: \"" + file + "\" }'";
  ASSERT_EQ(Shell(Mpirun(2) + Train(4, false) + use_file, dir_.path()), 0) << Output(dir_.path());
  ExpectCheckpointIsTheReference();

  const std::string broken = dir_.path() + "/broken.schedule";
  ASSERT_TRUE(ReplaceFileAtomically(broken, "0 F 0 0\n0 Q 0 0\n").ok());
  EXPECT_NE(Shell(std::string(DEEPNET_BINARY) + " schedule --from " + broken, dir_.path()), 0);
  EXPECT_NE(Output(dir_.path()).find("broken.schedule:2: unknown kind \"Q\""), std::string::npos)
      << Output(dir_.path());
}

TEST_F(EngineCliTest, TooFewRanksNamesTheCommand) {
  EXPECT_EQ(Shell(std::string(DEEPNET_BINARY) + Train(1, false), dir_.path()), 1);
  EXPECT_NE(Output(dir_.path()).find("mpirun -np 2"), std::string::npos) << Output(dir_.path());
}

}  // namespace
}  // namespace deepnet::testing
