// main() of the MPI GoogleTest binaries (one process per rank under mpirun): rank 0 prints the
// usual report, the other ranks only their failures (prefixed with the rank); every rank exits
// with the same code, non-zero if any rank failed. Tests that make a rank leave early write their
// own main: the closing all-reduce needs every rank.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "runtime/mpi_communicator.h"

namespace deepnet::testing {

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }

 private:
  int rank_;
};

inline int RunMpiTests(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  const Status init = MpiCommunicator::Init(&argc, &argv);
  if (!init.ok()) {
    std::fprintf(stderr, "%s\n", init.ToString().c_str());
    return 1;
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(rank));
  }
  const int result = RUN_ALL_TESTS();
  double failed_ranks = result == 0 ? 0.0 : 1.0;
  {
    auto world = MpiCommunicator::World(60.0);
    if (!world.ok() || !(*world)->AllReduceSum(&failed_ranks, 1).ok()) failed_ranks = 1.0;
  }
  if (rank == 0 && failed_ranks > 0) std::fprintf(stderr, "%g rank(s) failed\n", failed_ranks);
  if (!MpiCommunicator::Finalize().ok()) return 1;
  return failed_ranks > 0 ? 1 : 0;
}

// The world communicator of a test (a fresh duplicate).
inline std::unique_ptr<MpiCommunicator> MpiWorld(double timeout_seconds = 60.0) {
  auto world = MpiCommunicator::World(timeout_seconds);
  CHECK(world.ok()) << world.status();
  return std::move(world).value();
}

}  // namespace deepnet::testing
