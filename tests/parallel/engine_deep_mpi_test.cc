// A 1,000-layer (500 encoder + 500 decoder layers) DeepNet, d_model 16, on 4 pipeline ranks with
// 1F1B and full recompute: two steps run with a finite loss, the partition gives every stage a
// share, and each rank reports its activation peak.
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "parallel/pipeline_trainer.h"
#include "tests/mpi_test_main.h"
#include "tests/parallel/pipeline_test_util.h"

namespace deepnet::testing {
namespace {

TEST(EngineDeepMpiTest, ThousandLayersTrainTwoSteps) {
  auto world = MpiWorld(120.0);
  // Every rank writes the same data into its own directory.
  const std::string root =
      (std::filesystem::temp_directory_path() / ("deepnet_engine_deep_" + std::to_string(getpid())))
          .string();
  std::filesystem::create_directories(root);
  ASSERT_TRUE(WriteData(root, 200).ok());

  RunShape shape;
  shape.stages = world->size();
  shape.micro_batches = 4;
  shape.schedule = ScheduleKind::kOneFOneB;
  shape.recompute = config::ParallelConfig::FULL;
  shape.encoder_layers = 500;
  shape.decoder_layers = 500;
  shape.max_steps = 2;
  shape.comm_timeout_seconds = 120;
  StatusOr<std::unique_ptr<PipelineTrainer>> trainer =
      PipelineTrainer::Create(MakeConfig(root, shape), *world);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const PartitionPlan& plan = (*trainer)->partition();
  ASSERT_EQ(plan.stages.size(), static_cast<size_t>(world->size()));
  EXPECT_EQ(plan.stages.back().end_unit, 1002);  // embedding + 1,000 layers + output
  for (const StagePlan& stage : plan.stages) EXPECT_GT(stage.end_unit - stage.first_unit, 100);

  for (int step = 0; step < 2; ++step) {
    StatusOr<StepResult> result = (*trainer)->TrainStep();
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_GT(result->loss_tokens, 0);
    const double loss = result->loss_sum / static_cast<double>(result->loss_tokens);
    EXPECT_TRUE(std::isfinite(loss)) << loss;
    EXPECT_TRUE(std::isfinite(result->optimizer.grad_norm));
    if (world->rank() == 0) {
      std::printf("step %d: loss %.4f, grad norm %.4f\n", step + 1, loss,
                  result->optimizer.grad_norm);
    }
  }
  StatusOr<std::string> report = (*trainer)->ActivationMemoryReport();
  ASSERT_TRUE(report.ok()) << report.status();
  if (world->rank() == 0) std::printf("%s", report->c_str());
  EXPECT_GT((*trainer)->PeakActivationBytes(), 0);
  trainer->reset();
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace deepnet::testing

int main(int argc, char** argv) { return deepnet::testing::RunMpiTests(argc, argv); }
