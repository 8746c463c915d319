// Stop requests (train/signals.h): SIGUSR1 and SIGTERM set the flag without killing the process,
// a second SIGTERM kills it, and the trainer turns a request into a checkpoint at the end of the
// step plus StoppedForRequeue, from which a resumed run finishes the job.
#include "train/signals.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>

#include "configs/config.h"
#include "tests/runtime/test_files.h"
#include "tests/train/tiny_run.h"
#include "train/trainer.h"

namespace deepnet {
namespace {

class SignalsTest : public ::testing::Test {
 protected:
  void SetUp() override { ClearStopRequest(); }
  void TearDown() override { ClearStopRequest(); }
};

TEST_F(SignalsTest, RequestAndClear) {
  EXPECT_FALSE(StopRequested());
  RequestStop();
  EXPECT_TRUE(StopRequested());
  EXPECT_EQ(StopSignal(), 0);
  ClearStopRequest();
  EXPECT_FALSE(StopRequested());
}

TEST_F(SignalsTest, SignalsSetTheFlagAndTheProcessLivesOn) {
  InstallStopSignalHandlers();
  ASSERT_EQ(std::raise(SIGUSR1), 0);
  EXPECT_TRUE(StopRequested());
  EXPECT_EQ(StopSignal(), SIGUSR1);
  ClearStopRequest();
  InstallStopSignalHandlers();
  ASSERT_EQ(std::raise(SIGTERM), 0);
  EXPECT_EQ(StopSignal(), SIGTERM);
}

TEST_F(SignalsTest, SecondSigtermKills) {
  EXPECT_EXIT(
      {
        InstallStopSignalHandlers();
        std::raise(SIGTERM);
        if (!StopRequested()) std::_Exit(3);
        std::raise(SIGTERM);
        std::_Exit(4);
      },
      ::testing::KilledBySignal(SIGTERM), "");
}

TEST_F(SignalsTest, StoppedForRequeueStatus) {
  const Status stopped = StoppedForRequeue(17);
  EXPECT_TRUE(IsStoppedForRequeue(stopped));
  EXPECT_TRUE(IsStoppedForRequeue(stopped.WithContext("rank 2")));
  EXPECT_NE(stopped.message().find("step 17"), std::string::npos);
  EXPECT_FALSE(IsStoppedForRequeue(OkStatus()));
  EXPECT_FALSE(IsStoppedForRequeue(Unavailable("peer went away")));
  EXPECT_EQ(kExitStoppedForRequeue, 75);
}

config::RunConfig TinyRun(const std::string& root, int64_t max_steps, bool resume) {
  StatusOr<config::RunConfig> config = config::LoadConfigFromText(
      TinyConfigText(root, root + "/checkpoints", max_steps), "tiny", {});
  CHECK(config.ok()) << config.status();
  config->mutable_checkpoint()->set_resume(resume);
  config->mutable_checkpoint()->set_every_steps(100);  // only the stop and the final checkpoint
  return *config;
}

TEST_F(SignalsTest, TrainerCheckpointsStopsAndResumes) {
  TempDir dir("signals_trainer");
  ASSERT_TRUE(WriteTinyData(dir.path()).ok());
  {
    StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(TinyRun(dir.path(), 5, false));
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    RequestStop();  // as if SIGUSR1 arrived during the first step
    const Status status = (*trainer)->Run();
    EXPECT_TRUE(IsStoppedForRequeue(status)) << status;
    EXPECT_EQ((*trainer)->step(), 1);
  }
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/checkpoints/step-0000001/state.json"));
  ClearStopRequest();
  StatusOr<std::unique_ptr<Trainer>> resumed = Trainer::Create(TinyRun(dir.path(), 5, true));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ((*resumed)->step(), 1);
  EXPECT_TRUE((*resumed)->Run().ok());
  EXPECT_EQ((*resumed)->step(), 5);
  EXPECT_TRUE(std::filesystem::exists(dir.path() + "/checkpoints/step-0000005/state.json"));
}

TEST_F(SignalsTest, RequestDuringTheLastStepFinishesNormally) {
  TempDir dir("signals_last_step");
  ASSERT_TRUE(WriteTinyData(dir.path()).ok());
  StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(TinyRun(dir.path(), 1, false));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  RequestStop();
  EXPECT_TRUE((*trainer)->Run().ok());
  EXPECT_EQ((*trainer)->step(), 1);
}

}  // namespace
}  // namespace deepnet
