// A rank that leaves mid-run (run under mpirun -np 2 and -np 4): after one good step the last rank
// leaves (finalizes and exits); every other rank's next step must fail with an error naming the
// missing rank, not hang, and within the communication timeout plus a few seconds: the step's
// transfer times out, then (4 ranks) a check bounded to 2 s finds which rank is gone, where an
// unbounded check would wait the whole timeout again. Any other outcome exits 1; a hang is caught
// by the ctest TIMEOUT. (Open MPI's MPI_Finalize waits for every process, so the early rank waits
// there until the survivors finalize too; deepnet train ends a failed job with MPI_Abort
// instead, tests/launch/fault_matrix_test.sh.)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "parallel/pipeline_trainer.h"
#include "runtime/mpi_communicator.h"
#include "tests/parallel/pipeline_test_util.h"

namespace deepnet::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kTimeoutSeconds = 4;
// The step's timeout, the bounded check (2 s) and its 0.5 s grace, with 2 s of room; a check that
// waited the full timeout would take at least 4 + 4 + 1 s.
constexpr double kLatestAnswer = kTimeoutSeconds + 2.0 + 0.5 + 2.0;

// True when the survivor's failed step is what we expect.
bool FailedAsExpected(const Status& status, int missing, double seconds, int rank) {
  std::printf("rank %d: step 2 gave after %.2f s: %s\n", rank, seconds, status.ToString().c_str());
  std::fflush(stdout);
  bool ok = true;
  if (status.code() != StatusCode::kDeadlineExceeded && status.code() != StatusCode::kUnavailable) {
    std::fprintf(stderr, "rank %d: expected DEADLINE_EXCEEDED or UNAVAILABLE\n", rank);
    ok = false;
  }
  const std::string name = "rank " + std::to_string(missing);
  if (status.message().find(name) == std::string::npos) {
    std::fprintf(stderr, "rank %d: the error does not name \"%s\"\n", rank, name.c_str());
    ok = false;
  }
  if (seconds > kLatestAnswer) {
    std::fprintf(stderr, "rank %d: answered after %.2f s (> %.1f s)\n", rank, seconds,
                 kLatestAnswer);
    ok = false;
  }
  return ok;
}

bool Run(Communicator& world, const std::string& root) {
  RunShape shape;
  shape.stages = world.size();
  shape.micro_batches = 4;
  shape.schedule = ScheduleKind::kOneFOneB;
  shape.comm_timeout_seconds = kTimeoutSeconds;
  StatusOr<std::unique_ptr<PipelineTrainer>> trainer =
      PipelineTrainer::Create(MakeConfig(root, shape), world);
  if (!trainer.ok() || !(*trainer)->TrainStep().ok()) {
    std::fprintf(stderr, "rank %d: set-up or the first step failed\n", world.rank());
    return false;
  }
  const int missing = world.size() - 1;
  if (world.rank() == missing) {
    std::printf("rank %d: leaving early\n", world.rank());
    std::fflush(stdout);
    return true;
  }
  const auto start = Clock::now();
  const StatusOr<StepResult> step = (*trainer)->TrainStep();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (step.ok()) {
    std::fprintf(stderr, "rank %d: step 2 succeeded without rank %d\n", world.rank(), missing);
    return false;
  }
  return FailedAsExpected(step.status(), missing, seconds, world.rank());
}

int Main(int* argc, char*** argv) {
  if (!MpiCommunicator::Init(argc, argv).ok()) return 1;
  bool ok = true;
  {
    auto world = MpiCommunicator::World(30.0);
    if (!world.ok()) return 1;
    const std::string root = (std::filesystem::temp_directory_path() /
                              ("deepnet_engine_failure_" + std::to_string(getpid())))
                                 .string();
    std::filesystem::create_directories(root);
    ok = WriteData(root, 200).ok();
    if (ok && (*world)->size() >= 2) ok = Run(**world, root);
    std::filesystem::remove_all(root);
  }
  const bool finalized = MpiCommunicator::Finalize().ok();
  return ok && finalized ? 0 : 1;
}

}  // namespace
}  // namespace deepnet::testing

int main(int argc, char** argv) { return deepnet::testing::Main(&argc, &argv); }
