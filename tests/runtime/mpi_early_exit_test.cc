// A rank that leaves early must not hang the others (run under mpirun -np 2 and -np 4).
//
// The last rank skips the exchange: it finalizes MPI and exits 0. The others receive from it and
// then all-reduce with a 2-second timeout; each must get kDeadlineExceeded naming the missing
// rank within a few seconds, print the message and exit 0. Any other outcome exits 1, and a hang
// is caught by the ctest TIMEOUT. (Open MPI's MPI_Finalize waits for every process, so the early
// rank stays in it until the survivors finalize too; the job then ends normally. deepnet train
// ends a job with a failed rank by MpiCommunicator::Abort instead, see
// tests/launch/fault_matrix_test.sh.)
#include <chrono>
#include <cstdio>
#include <string>

#include "runtime/mpi_communicator.h"

namespace deepnet {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kTimeout = 2.0;
constexpr double kLatestAnswer = 5.0;  // seconds: the timeout plus the diagnosis grace, with room

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// True when `status` is the expected timeout, names `must_name` and arrives in time.
bool IsTimelyDeadline(const char* what, const Status& status, const std::string& must_name,
                      double seconds, int rank) {
  std::printf("rank %d: %s gave after %.2f s: %s\n", rank, what, seconds,
              status.ToString().c_str());
  std::fflush(stdout);
  bool ok = true;
  if (status.code() != StatusCode::kDeadlineExceeded) {
    std::fprintf(stderr, "rank %d: %s: expected DEADLINE_EXCEEDED\n", rank, what);
    ok = false;
  }
  if (status.message().find(must_name) == std::string::npos) {
    std::fprintf(stderr, "rank %d: %s: message does not contain \"%s\"\n", rank, what,
                 must_name.c_str());
    ok = false;
  }
  if (seconds < kTimeout * 0.99 || seconds > kLatestAnswer) {
    std::fprintf(stderr, "rank %d: %s: answered after %.2f s, expected %.1f..%.1f s\n", rank, what,
                 seconds, kTimeout, kLatestAnswer);
    ok = false;
  }
  return ok;
}

// The survivors' side; true when both operations failed as expected.
bool SurviveTheMissingRank(Communicator& world) {
  const int missing = world.size() - 1;
  world.set_timeout_seconds(kTimeout);

  double value = 1.0;
  auto start = Clock::now();
  const Status recv = world.Recv(&value, sizeof(value), missing, /*tag=*/0);
  bool ok = IsTimelyDeadline("recv", recv, "recv from rank " + std::to_string(missing),
                             SecondsSince(start), world.rank());

  start = Clock::now();
  const Status reduce = world.AllReduceSum(&value, 1);
  ok &= IsTimelyDeadline("all-reduce", reduce, "(missing: rank " + std::to_string(missing) + ")",
                         SecondsSince(start), world.rank());
  return ok;
}

int Run(int* argc, char*** argv) {
  const Status init = MpiCommunicator::Init(argc, argv);
  if (!init.ok()) {
    std::fprintf(stderr, "%s\n", init.ToString().c_str());
    return 1;
  }
  bool ok = true;
  {
    auto world = MpiCommunicator::World(30.0);
    if (!world.ok()) {
      std::fprintf(stderr, "%s\n", world.status().ToString().c_str());
      return 1;
    }
    // The process-wide view that deepnet train's failure path uses (no communicator needed).
    if (MpiCommunicator::WorldRank() != (*world)->rank() ||
        MpiCommunicator::WorldSize() != (*world)->size()) {
      std::fprintf(stderr, "WorldRank/WorldSize %d/%d differ from the world's %d/%d\n",
                   MpiCommunicator::WorldRank(), MpiCommunicator::WorldSize(), (*world)->rank(),
                   (*world)->size());
      ok = false;
    }
    if ((*world)->size() < 2) {
      std::printf("needs at least 2 ranks; nothing to test\n");
    } else if ((*world)->rank() == (*world)->size() - 1) {
      std::printf("rank %d: leaving early\n", (*world)->rank());
      std::fflush(stdout);
    } else {
      ok = SurviveTheMissingRank(**world);
    }
  }
  const auto start = Clock::now();
  const Status finalized = MpiCommunicator::Finalize();
  if (MpiCommunicator::WorldSize() != 1) {  // MPI is not running any more
    std::fprintf(stderr, "WorldSize after Finalize: %d\n", MpiCommunicator::WorldSize());
    ok = false;
  }
  std::printf("finalized in %.2f s: %s\n", SecondsSince(start), finalized.ToString().c_str());
  return ok && finalized.ok() ? 0 : 1;
}

}  // namespace
}  // namespace deepnet

int main(int argc, char** argv) { return deepnet::Run(&argc, &argv); }
