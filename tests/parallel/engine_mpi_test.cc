// The pipeline trainer under mpirun (-np 2 and -np 4), one process per rank: every schedule and
// recompute mode with p = world size against the single-process trainer (computed in process on
// every rank), bit for bit; data parallelism (2 replicas) within 1e-6; checkpoint and resume; the
// same on the strict test device.
#include <unistd.h>

#include <filesystem>

#include "parallel/pipeline_trainer.h"
#include "tests/mpi_test_main.h"
#include "tests/parallel/pipeline_test_util.h"
#include "train/checkpoint.h"
#include "train/signals.h"

namespace deepnet::testing {
namespace {

// A directory every rank sees: rank 0 creates it (named after its pid), the others are told.
class SharedDir {
 public:
  SharedDir(Communicator& world, const std::string& name) : world_(world) {
    int pid = static_cast<int>(getpid());
    CHECK(world.Broadcast(&pid, sizeof(pid), 0).ok());
    path_ =
        (std::filesystem::temp_directory_path() / ("deepnet_" + name + "_" + std::to_string(pid)))
            .string();
    if (world.rank() == 0) {
      std::filesystem::remove_all(path_);
      std::filesystem::create_directories(path_);
    }
    CHECK(world.Barrier().ok());
  }
  ~SharedDir() {
    (void)world_.Barrier();
    if (world_.rank() == 0) std::filesystem::remove_all(path_);
  }
  const std::string& path() const { return path_; }

 private:
  Communicator& world_;
  std::string path_;
};

class EngineMpiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    world_ = MpiWorld();
    dir_ = std::make_unique<SharedDir>(*world_, "engine_mpi");
    if (world_->rank() == 0) {
      ASSERT_TRUE(WriteData(dir_->path()).ok());
    }
    ASSERT_TRUE(world_->Barrier().ok());
  }
  void TearDown() override {
    dir_.reset();
    world_.reset();
  }

  std::unique_ptr<PipelineTrainer> MakePipeline(const config::RunConfig& config) {
    StatusOr<std::unique_ptr<PipelineTrainer>> trainer = PipelineTrainer::Create(config, *world_);
    CHECK(trainer.ok()) << trainer.status();
    return std::move(trainer).value();
  }

  // Trains `shape` on the world and compares this rank's units with `reference`.
  void ExpectMatches(const RunShape& shape, const Snapshot& reference, double relative) {
    SCOPED_TRACE(Describe(shape));
    auto trainer = MakePipeline(MakeConfig(dir_->path(), shape));
    for (int64_t s = 0; s < shape.max_steps; ++s) {
      StatusOr<StepResult> step = trainer->TrainStep();
      ASSERT_TRUE(step.ok()) << step.status();
      if (relative == 0.0) {
        EXPECT_EQ(step->optimizer.grad_norm, reference.grad_norms[s]) << "step " << s;
      }
    }
    EXPECT_TRUE(SameParameters(reference, trainer->Units(), relative))
        << "stage " << trainer->grid().stage() << ", replica " << trainer->grid().replica();
  }

  std::unique_ptr<MpiCommunicator> world_;
  std::unique_ptr<SharedDir> dir_;
};

TEST_F(EngineMpiTest, EveryScheduleBitIdenticalToSingleProcess) {
  std::map<std::string, Snapshot> references;
  for (const RunShape& shape : Combinations(world_->size())) {
    const std::string key = ReferenceKey(shape);
    if (!references.contains(key)) {
      references[key] = ReferenceRun(MakeConfig(dir_->path(), shape), shape.max_steps);
    }
    ExpectMatches(shape, references[key], 0.0);
    if (HasFailure()) return;
  }
}

TEST_F(EngineMpiTest, DataParallelWithinRounding) {
  for (const auto order :
       {config::ParallelConfig::STAGE_MAJOR, config::ParallelConfig::DATA_MAJOR}) {
    RunShape shape;
    shape.data_parallel = 2;
    shape.stages = world_->size() / 2;
    shape.micro_batches = 4;
    shape.schedule = ScheduleKind::kOneFOneB;
    shape.recompute = config::ParallelConfig::SELECTIVE;
    shape.rank_order = order;
    ExpectMatches(shape, ReferenceRun(MakeConfig(dir_->path(), shape), shape.max_steps), 1e-6);
  }
}

// The strict test device (device memory the host cannot read): activations, gradients, the tied
// embedding swap and the data-parallel all-reduce are staged through host buffers over MPI, and
// the result is still the CPU's single process bit for bit (within rounding with replicas).
TEST_F(EngineMpiTest, StrictDeviceMatchesTheCpuSingleProcess) {
  std::vector<std::pair<RunShape, double>> runs;
  RunShape pipeline;
  pipeline.stages = world_->size();
  pipeline.micro_batches = 4;
  for (const ScheduleKind schedule : {ScheduleKind::kOneFOneB, ScheduleKind::kZeroBubbleH1}) {
    pipeline.schedule = schedule;
    pipeline.recompute = schedule == ScheduleKind::kOneFOneB ? config::ParallelConfig::FULL
                                                             : config::ParallelConfig::SELECTIVE;
    runs.push_back({pipeline, 0.0});
  }
  RunShape replicas = pipeline;
  replicas.data_parallel = 2;
  replicas.stages = world_->size() / 2;
  replicas.schedule = ScheduleKind::kOneFOneB;
  runs.push_back({replicas, 1e-6});
  for (const auto& [shape, relative] : runs) {
    SCOPED_TRACE(Describe(shape));
    const Snapshot reference = ReferenceRun(MakeConfig(dir_->path(), shape), shape.max_steps);
    config::RunConfig config = MakeConfig(dir_->path(), shape);
    config.mutable_parallel()->set_backend(config::ParallelConfig::STRICT);
    auto trainer = MakePipeline(config);
    for (int64_t s = 0; s < shape.max_steps; ++s) {
      StatusOr<StepResult> step = trainer->TrainStep();
      ASSERT_TRUE(step.ok()) << step.status();
    }
    EXPECT_TRUE(SameParameters(reference, trainer->Units(), relative));
    if (HasFailure()) return;
  }
}

// k steps, then a new trainer resumes from the checkpoint for k more: equal to 2k straight.
TEST_F(EngineMpiTest, ResumeIsBitExact) {
  RunShape shape;
  shape.stages = world_->size();
  shape.micro_batches = 3;
  shape.schedule = ScheduleKind::kOneFOneB;
  shape.recompute = config::ParallelConfig::FULL;
  shape.max_steps = 4;
  const Snapshot straight = ReferenceRun(MakeConfig(dir_->path(), shape), shape.max_steps);

  shape.checkpoint_dir = dir_->path() + "/checkpoints";
  config::RunConfig config = MakeConfig(dir_->path(), shape);
  config.mutable_train()->set_max_steps(2);
  ASSERT_TRUE(MakePipeline(config)->Run().ok());
  const std::string step_dir = shape.checkpoint_dir + "/" + CheckpointDirName(2);
  for (int stage = 0; stage < world_->size(); ++stage) {
    EXPECT_TRUE(std::filesystem::exists(step_dir + "/" + StageFileName(kParamsFileName, stage)));
  }
  config.mutable_train()->set_max_steps(4);
  config.mutable_checkpoint()->set_resume(true);
  auto resumed = MakePipeline(config);
  EXPECT_EQ(resumed->step(), 2);
  ASSERT_TRUE(resumed->Run().ok());
  EXPECT_TRUE(SameParameters(straight, resumed->Units()));
}

// A stop request reaching one rank only (signals arrive at different moments) stops every rank
// after the same step, with a checkpoint of that step.
TEST_F(EngineMpiTest, StopOnOneRankStopsAllAfterTheSameStep) {
  RunShape shape;
  shape.stages = world_->size();
  shape.micro_batches = 2;
  shape.max_steps = 5;
  shape.checkpoint_dir = dir_->path() + "/stopped";
  auto trainer = MakePipeline(MakeConfig(dir_->path(), shape));
  ClearStopRequest();
  if (world_->rank() == world_->size() - 1) RequestStop();
  const Status stopped = trainer->Run();
  ClearStopRequest();
  EXPECT_TRUE(IsStoppedForRequeue(stopped)) << stopped;
  EXPECT_EQ(trainer->step(), 1);
  EXPECT_TRUE(std::filesystem::exists(shape.checkpoint_dir + "/" + CheckpointDirName(1)));
}

}  // namespace
}  // namespace deepnet::testing

int main(int argc, char** argv) { return deepnet::testing::RunMpiTests(argc, argv); }
