// The pipeline engine on threads (one in-process communicator per rank): every schedule and
// recompute mode against the single-process trainer, bit for bit; data parallelism within rounding;
// checkpoints and resume; a rank that disappears; the grid arithmetic and the memory report.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "parallel/grid.h"
#include "parallel/pipeline_trainer.h"
#include "parallel/schedule_file.h"
#include "runtime/atomic_file.h"
#include "runtime/inprocess_communicator.h"
#include "runtime/json.h"
#include "tests/parallel/pipeline_test_util.h"
#include "tests/runtime/test_files.h"
#include "train/checkpoint.h"

namespace deepnet::testing {
namespace {

// Runs body(world) on `size` threads, each with its own rank of an in-process group.
void OnThreads(int size, const std::function<void(InProcessCommunicator&)>& body,
               double timeout_seconds = 30.0) {
  auto group = InProcessCommunicator::CreateGroup(size, timeout_seconds);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) threads.emplace_back([&, r] { body(*group[r]); });
  for (std::thread& thread : threads) thread.join();
}

std::unique_ptr<PipelineTrainer> MakePipeline(const config::RunConfig& config,
                                              Communicator& world) {
  StatusOr<std::unique_ptr<PipelineTrainer>> trainer = PipelineTrainer::Create(config, world);
  CHECK(trainer.ok()) << trainer.status();
  return std::move(trainer).value();
}

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("engine_test");
    ASSERT_TRUE(WriteData(dir_->path()).ok());
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static const std::string& root() { return dir_->path(); }

  // The single-process reference of `shape`, computed once per key.
  static const Snapshot& Reference(const RunShape& shape) {
    static std::map<std::string, Snapshot> cache;
    const std::string key = ReferenceKey(shape);
    auto it = cache.find(key);
    if (it == cache.end()) {
      it = cache.emplace(key, ReferenceRun(MakeConfig(root(), shape), shape.max_steps)).first;
      EXPECT_GT(it->second.grad_norms.front(), 0.5) << "clipping should be active";
    }
    return it->second;
  }

  static TempDir* dir_;
};

TempDir* EngineTest::dir_ = nullptr;

// Trains `shape` on shape.stages × shape.data_parallel threads and checks every rank's units
// (and the gradient norms) against the reference.
void ExpectMatchesReference(const RunShape& shape, const Snapshot& reference,
                            const std::string& root, double relative) {
  SCOPED_TRACE(Describe(shape));
  const config::RunConfig config = MakeConfig(root, shape);
  OnThreads(shape.stages * shape.data_parallel, [&](InProcessCommunicator& world) {
    auto trainer = MakePipeline(config, world);
    for (int64_t s = 0; s < shape.max_steps; ++s) {
      StatusOr<StepResult> step = trainer->TrainStep();
      ASSERT_TRUE(step.ok()) << step.status();
      if (relative == 0.0) {
        EXPECT_EQ(step->optimizer.grad_norm, reference.grad_norms[s]) << "step " << s;
      } else {
        EXPECT_NEAR(step->optimizer.grad_norm, reference.grad_norms[s],
                    relative * reference.grad_norms[s]);
      }
    }
    EXPECT_TRUE(SameParameters(reference, trainer->Units(), relative))
        << "rank " << world.rank() << " (stage " << trainer->grid().stage() << ")";
  });
}

class EngineSweepTest : public EngineTest, public ::testing::WithParamInterface<int> {};

TEST_P(EngineSweepTest, BitIdenticalToSingleProcess) {
  for (const RunShape& shape : Combinations(GetParam())) {
    ExpectMatchesReference(shape, Reference(shape), root(), 0.0);
    if (HasFailure()) return;  // one combination's report is enough
  }
}

INSTANTIATE_TEST_SUITE_P(Stages, EngineSweepTest, ::testing::Values(1, 2, 4),
                         [](const auto& info) { return "p" + std::to_string(info.param); });

TEST_F(EngineTest, DataParallelWithinRounding) {
  for (const auto order :
       {config::ParallelConfig::STAGE_MAJOR, config::ParallelConfig::DATA_MAJOR}) {
    RunShape shape;
    shape.stages = 2;
    shape.data_parallel = 2;
    shape.micro_batches = 3;
    shape.rank_order = order;
    ExpectMatchesReference(shape, Reference(shape), root(), 1e-6);
  }
}

TEST_F(EngineTest, GridRankArithmetic) {
  GridShape shape;
  shape.data_parallel = 3;
  shape.pipeline_stages = 4;
  for (const RankOrder order : {RankOrder::kStageMajor, RankOrder::kDataMajor}) {
    shape.rank_order = order;
    for (int rank = 0; rank < shape.size(); ++rank) {
      EXPECT_EQ(WorldRankAt(shape, PositionOfRank(shape, rank)), rank);
    }
  }
  shape.rank_order = RankOrder::kStageMajor;
  EXPECT_EQ(PositionOfRank(shape, 5), (GridPosition{2, 1}));  // 5 = stage 1 · 3 + replica 2
  shape.rank_order = RankOrder::kDataMajor;
  EXPECT_EQ(PositionOfRank(shape, 5), (GridPosition{1, 1}));  // 5 = replica 1 · 4 + stage 1
}

// The config's one mapping to a schedule: the built-in kind with its placement, or a schedule file
// whose ranks and micro-batches must be the config's.
TEST_F(EngineTest, ScheduleOfConfigTakesTheKindOrAMatchingFile) {
  RunShape shape;
  shape.stages = 2;
  shape.micro_batches = 3;
  shape.schedule = ScheduleKind::kZeroBubbleV;
  config::ParallelConfig parallel = MakeConfig(root(), shape).parallel();
  const StatusOr<ConfiguredSchedule> built = ScheduleOfConfig(parallel, /*optimizer_step=*/true);
  ASSERT_TRUE(built.ok()) << built.status();
  EXPECT_EQ(built->placement, ChunkPlacement::V(2));

  const std::string file = root() + "/zb-v-m2.schedule";
  const ScheduleOptions two{.stages = 2, .micro_batches = 2};
  ASSERT_TRUE(ReplaceFileAtomically(
                  file, FormatScheduleFile(*BuildAllSchedules(ScheduleKind::kZeroBubbleV, two),
                                           ChunkPlacement::V(2)))
                  .ok());
  parallel.set_schedule_file(file);
  const StatusOr<ConfiguredSchedule> mismatched = ScheduleOfConfig(parallel, true);
  ASSERT_FALSE(mismatched.ok());
  EXPECT_NE(mismatched.status().message().find(
                "2 ranks and 2 micro-batches; the config has parallel.pipeline_stages 2 and "
                "parallel.micro_batches 3"),
            std::string::npos)
      << mismatched.status();
  parallel.set_micro_batches(2);
  const StatusOr<ConfiguredSchedule> flush = ScheduleOfConfig(parallel, /*optimizer_step=*/false);
  ASSERT_TRUE(flush.ok()) << flush.status();
  EXPECT_EQ(flush->placement, ChunkPlacement::V(2));
  EXPECT_EQ(flush->ranks,
            WithoutOptimizerStep(*BuildAllSchedules(ScheduleKind::kZeroBubbleV, two)));
}

TEST_F(EngineTest, WrongWorldSizeIsExplained) {
  RunShape shape;
  shape.stages = 4;
  std::unique_ptr<Communicator> world = MakeSingleProcessCommunicator();
  StatusOr<std::unique_ptr<PipelineTrainer>> trainer =
      PipelineTrainer::Create(MakeConfig(root(), shape), *world);
  ASSERT_FALSE(trainer.ok());
  EXPECT_NE(trainer.status().message().find("mpirun -np 4"), std::string::npos) << trainer.status();
}

TEST_F(EngineTest, ValidationLossEqualsSingleProcess) {
  for (const ScheduleKind kind :
       {ScheduleKind::kOneFOneB, ScheduleKind::kInterleaved1F1B, ScheduleKind::kZeroBubbleV}) {
    RunShape shape;
    shape.stages = 2;
    shape.micro_batches = 2;
    // interleaved: activations wrap from the last stage to the first; ZB-V: they turn on the last
    // stage without a transfer and end on the first
    shape.schedule = kind;
    config::RunConfig config = MakeConfig(root(), shape);
    config.mutable_train()->set_valid_every(1);
    auto single = Trainer::Create(SingleProcessConfig(config));
    ASSERT_TRUE(single.ok()) << single.status();
    const double want = *(*single)->ValidationLoss();
    OnThreads(2, [&](InProcessCommunicator& world) {
      auto trainer = MakePipeline(config, world);
      StatusOr<double> loss = trainer->ValidationLoss();
      ASSERT_TRUE(loss.ok()) << loss.status();
      EXPECT_EQ(*loss, want) << ScheduleKindName(kind);
    });
  }
}

TEST_F(EngineTest, CheckpointPerStageAndResumeIsBitExact) {
  TempDir checkpoints("engine_test_ckpt");
  RunShape shape;
  shape.stages = 2;
  shape.micro_batches = 3;
  shape.schedule = ScheduleKind::kZeroBubbleH1;
  shape.max_steps = 4;
  const Snapshot straight = Reference(shape);

  shape.checkpoint_dir = checkpoints.path();
  config::RunConfig config = MakeConfig(root(), shape);
  config.mutable_train()->set_max_steps(2);
  OnThreads(2, [&](InProcessCommunicator& world) {
    ASSERT_TRUE(MakePipeline(config, world)->Run().ok());
  });
  const std::string step_dir = checkpoints.path() + "/" + CheckpointDirName(2);
  for (const char* file :
       {"params-stage-0.safetensors", "params-stage-1.safetensors", "optimizer-stage-0.safetensors",
        "optimizer-stage-1.safetensors", "state.json"}) {
    EXPECT_TRUE(std::filesystem::exists(step_dir + "/" + file)) << file;
  }
  EXPECT_FALSE(std::filesystem::exists(step_dir + "/params.safetensors"));

  config.mutable_train()->set_max_steps(4);
  config.mutable_checkpoint()->set_resume(true);
  OnThreads(2, [&](InProcessCommunicator& world) {
    auto trainer = MakePipeline(config, world);
    EXPECT_EQ(trainer->step(), 2);
    ASSERT_TRUE(trainer->Run().ok());
    EXPECT_TRUE(SameParameters(straight, trainer->Units()));
  });

  // One process resumes the pipeline's checkpoint (the stage files stand in for
  // params.safetensors).
  config::RunConfig single = SingleProcessConfig(config);
  single.mutable_train()->set_max_steps(5);
  auto trainer = Trainer::Create(single);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  EXPECT_EQ((*trainer)->step(), 4);
  std::vector<Unit*> units;
  for (auto& unit : (*trainer)->model().units()) units.push_back(unit.get());
  EXPECT_TRUE(SameParameters(straight, units));
}

// Trains 2 stages of `shape` on threads with logging.trace_dir under `dir` (trace_steps
// `traced`, 0 = the default); returns each rank's trace file text.
std::vector<std::string> TracedRun(const std::string& root, RunShape shape, const TempDir& dir,
                                   int traced = 0) {
  shape.stages = 2;
  config::RunConfig config = MakeConfig(root, shape);
  config.mutable_logging()->set_trace_dir(dir.path() + "/trace");
  if (traced > 0) config.mutable_logging()->set_trace_steps(traced);
  OnThreads(2, [&](InProcessCommunicator& world) {
    ASSERT_TRUE(MakePipeline(config, world)->Run().ok());
  });
  std::vector<std::string> texts;
  for (int rank = 0; rank < 2; ++rank) {
    StatusOr<std::string> text =
        ReadWholeFile(dir.path() + "/trace/rank-" + std::to_string(rank) + ".json");
    EXPECT_TRUE(text.ok()) << text.status();
    texts.push_back(text.ok() ? *text : "");
  }
  return texts;
}

// logging.trace_dir: one Chrome trace per rank with the executed passes and transfers.
TEST_F(EngineTest, TraceHasEveryRanksActions) {
  TempDir traces("engine_test_trace");
  const std::vector<std::string> texts = TracedRun(
      root(), {.micro_batches = 2, .schedule = ScheduleKind::kZeroBubbleH1, .max_steps = 2},
      traces);
  for (int r = 0; r < 2; ++r) {
    const std::string rank = std::to_string(r);
    const std::string process = "\"rank " + rank + " (stage " + rank + ")\"";
    // Rank 0 runs each W right after its B, fused; rank 1 defers its first W.
    const std::string weight = r == 1 ? "\"W1\"" : "optimizer-step";
    for (const std::string& name : {std::string("\"F1\""), std::string("\"B1\""), weight,
                                    std::string("optimizer-step"), process}) {
      EXPECT_NE(texts[r].find(name), std::string::npos) << "rank " << rank << " lacks " << name;
    }
  }
}

// logging.trace_steps: the trace holds that many steps from the first.
TEST_F(EngineTest, TraceHoldsTraceStepsSteps) {
  for (const int traced : {1, 3}) {
    TempDir traces("engine_test_trace_steps");
    const std::string text =
        TracedRun(root(), {.micro_batches = 2, .max_steps = 3}, traces, traced)[0];
    int steps = 0;
    for (size_t at = text.find("\"optimizer-step\""); at != std::string::npos;
         at = text.find("\"optimizer-step\"", at + 1)) {
      ++steps;
    }
    EXPECT_EQ(steps, traced);
  }
}

// A receive is completed right before the pass that consumes it, never earlier: in the trace each
// "wait recv-..." event is followed by its consumer (F for an activation, B for a gradient), so a
// receive the schedule posts early does not hold up the passes before that one.
TEST_F(EngineTest, ReceivesCompleteRightBeforeTheirPass) {
  TempDir traces("engine_test_receive_waits");
  const std::vector<std::string> texts = TracedRun(
      root(), {.micro_batches = 4, .schedule = ScheduleKind::kZeroBubbleV, .max_steps = 1}, traces);
  int waits = 0;
  for (int rank = 0; rank < 2; ++rank) {
    StatusOr<JsonValue> trace = ParseJson(texts[rank]);
    ASSERT_TRUE(trace.ok()) << trace.status();
    std::vector<std::pair<double, std::string>> events;  // (start, name)
    for (const JsonValue& event : trace->Find("traceEvents")->elements()) {
      const JsonValue* ts = event.Find("ts");
      if (ts == nullptr || event.Find("dur") == nullptr) continue;
      events.emplace_back(*ts->AsDouble(), event.Find("name")->text());
    }
    std::stable_sort(events.begin(), events.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < events.size(); ++i) {
      const std::string& name = events[i].second;
      if (name.rfind("wait recv-", 0) != 0) continue;
      ++waits;
      // "wait recv-act 1.1 <- 0" -> consumer "F1.1"; "wait recv-grad 2 <- 1" -> "B2".
      const bool activation = name.rfind("wait recv-act ", 0) == 0;
      const size_t from = name.find(' ', 5) + 1;
      const std::string consumer =
          (activation ? "F" : "B") + name.substr(from, name.find(' ', from) - from);
      ASSERT_LT(i + 1, events.size()) << name;
      EXPECT_EQ(events[i + 1].second, consumer) << "rank " << rank << ": " << name;
    }
  }
  EXPECT_GT(waits, 0);
}

// A rank that stops answering: the others fail with DEADLINE_EXCEEDED naming it, not a hang.
TEST_F(EngineTest, MissingRankIsNamed) {
  RunShape shape;
  shape.stages = 4;
  shape.micro_batches = 4;
  shape.comm_timeout_seconds = 1;
  const config::RunConfig config = MakeConfig(root(), shape);
  std::mutex mu;
  std::vector<std::string> errors;
  const auto start = std::chrono::steady_clock::now();
  OnThreads(4, [&](InProcessCommunicator& world) {
    auto trainer = MakePipeline(config, world);
    ASSERT_TRUE(trainer->TrainStep().ok());
    if (world.rank() == 2) {
      world.DropRank(2, DropMode::kSilent);
      return;
    }
    StatusOr<StepResult> step = trainer->TrainStep();
    ASSERT_FALSE(step.ok());
    EXPECT_EQ(step.status().code(), StatusCode::kDeadlineExceeded) << step.status();
    std::lock_guard<std::mutex> lock(mu);
    errors.push_back(step.status().message());
  });
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 15.0);
  ASSERT_EQ(errors.size(), 3u);
  for (const std::string& error : errors) {
    EXPECT_NE(error.find("rank 2"), std::string::npos) << error;
  }
}

// Receive buffers are recycled: after the first step almost every transfer reuses a pooled
// buffer, and the pool holds no more than the transfers alive at once (activations held plus the
// gradients coming back; each Stream is an enc and a dec tensor).
TEST_F(EngineTest, ReceiveBuffersAreRecycled) {
  RunShape shape;
  shape.stages = 2;
  shape.micro_batches = 4;
  shape.max_steps = 4;
  const config::RunConfig config = MakeConfig(root(), shape);
  OnThreads(2, [&](InProcessCommunicator& world) {
    auto trainer = MakePipeline(config, world);
    ASSERT_TRUE(trainer->TrainStep().ok());
    const int64_t first_step = trainer->engine().receive_buffers().allocations();
    for (int s = 1; s < shape.max_steps; ++s) ASSERT_TRUE(trainer->TrainStep().ok());
    const TransferBuffers& buffers = trainer->engine().receive_buffers();
    SCOPED_TRACE("stage " + std::to_string(trainer->grid().stage()));
    EXPECT_GT(first_step, 0);
    // 4 steps x 4 micro-batches x 2 tensors received; later steps only replace buffers that a
    // longer batch outgrew.
    EXPECT_EQ(buffers.allocations() + buffers.reuses(), 4 * 4 * 2);
    EXPECT_GT(buffers.reuses(), 3 * buffers.allocations());
    EXPECT_LE(buffers.pooled(), 2u * 2u);  // 1F1B: at most p = 2 in flight per stage
  });
}

// Full recompute keeps less than keeping everything (allocator accounting, one thread).
TEST_F(EngineTest, FullRecomputeLowersActivationPeak) {
  std::map<int, int64_t> peaks;
  for (const auto recompute : {config::ParallelConfig::NONE, config::ParallelConfig::FULL}) {
    RunShape shape;
    shape.micro_batches = 3;
    shape.schedule = ScheduleKind::kGpipe;
    shape.recompute = recompute;
    std::unique_ptr<Communicator> world = MakeSingleProcessCommunicator();
    auto trainer = MakePipeline(MakeConfig(root(), shape), *world);
    ASSERT_TRUE(trainer->TrainStep().ok());
    peaks[recompute] = trainer->PeakActivationBytes();
    StatusOr<std::string> report = trainer->ActivationMemoryReport();
    ASSERT_TRUE(report.ok());
    EXPECT_NE(report->find("rank 0 (replica 0, stage 0)"), std::string::npos) << *report;
  }
  EXPECT_GT(peaks[config::ParallelConfig::FULL], 0);
  EXPECT_LT(peaks[config::ParallelConfig::FULL] * 2, peaks[config::ParallelConfig::NONE]);
}

}  // namespace
}  // namespace deepnet::testing
