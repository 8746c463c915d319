// MpiCommunicator tests: one process per rank under mpirun -np 2 and -np 4 (see ctest).
// Rank 0 prints the usual GoogleTest report; the other ranks print only their failures. Every
// rank exits with the same code: non-zero if any rank failed.
#include "runtime/mpi_communicator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <numeric>
#include <vector>

#include "tests/mpi_test_main.h"

namespace deepnet {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kTestTimeout = 20.0;  // a hang fails the test instead of the ctest timeout

std::unique_ptr<MpiCommunicator> World(double timeout_seconds = kTestTimeout) {
  auto world = MpiCommunicator::World(timeout_seconds);
  CHECK(world.ok()) << world.status();
  return std::move(*world);
}

bool Contains(const Status& status, const std::string& text) {
  return status.message().find(text) != std::string::npos;
}

TEST(MpiCommunicatorTest, WorldMatchesMpiAndNode) {
  auto world = World();
  int rank = -1, size = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  EXPECT_EQ(world->rank(), rank);
  EXPECT_EQ(world->size(), size);
  EXPECT_EQ(world->local_size(), size);  // ctest runs every rank on this machine
  EXPECT_EQ(world->local_rank(), rank);
  EXPECT_EQ(world->DescribeRank(1), "rank 1");
}

TEST(MpiCommunicatorTest, PointToPointRing) {
  auto world = World();
  const int r = world->rank(), n = world->size();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  std::vector<int> out(100), in(100, -1);
  std::iota(out.begin(), out.end(), 1000 * r);
  std::vector<Request> requests(2);
  world->GroupStart();
  requests[0] = *world->Isend(out.data(), out.size() * sizeof(int), next, 5);
  requests[1] = *world->Irecv(in.data(), in.size() * sizeof(int), prev, 5);
  ASSERT_TRUE(world->GroupEnd().ok());
  ASSERT_TRUE(world->WaitAll(requests).ok());
  EXPECT_EQ(in[0], 1000 * prev);
  EXPECT_EQ(in[99], 1000 * prev + 99);
}

// 1F1B steady state between neighbours: each rank sends 8 MiB to r+1 and receives 8 MiB from r+1
// at once (and the mirror image with r-1). Blocking sends on both sides would deadlock: messages
// this large are not buffered. Run once whole and once split into odd-sized chunks.
TEST(MpiCommunicatorTest, GroupedExchangeOfLargeBuffersInBothDirections) {
  constexpr size_t kCount = (8u << 20) / sizeof(float);
  auto world = World();
  const int r = world->rank(), n = world->size();
  for (size_t chunk : {size_t{1} << 30, size_t{(1u << 20) + 12}}) {
    world->set_max_chunk_bytes_for_testing(chunk);
    std::vector<float> to_next(kCount, 100.0f + r), to_prev(kCount, 200.0f + r);
    std::vector<float> from_next(kCount, -1), from_prev(kCount, -1);
    to_next[kCount - 1] = -3.0f * r;
    const auto start = Clock::now();
    std::vector<Request> requests;
    world->GroupStart();
    if (r + 1 < n) {
      requests.push_back(*world->Isend(to_next.data(), kCount * 4, r + 1, 0));
      requests.push_back(*world->Irecv(from_next.data(), kCount * 4, r + 1, 1));
    }
    if (r > 0) {
      requests.push_back(*world->Isend(to_prev.data(), kCount * 4, r - 1, 1));
      requests.push_back(*world->Irecv(from_prev.data(), kCount * 4, r - 1, 0));
    }
    ASSERT_TRUE(world->GroupEnd().ok());
    const Status status = world->WaitAll(requests);
    ASSERT_TRUE(status.ok()) << status;
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (r + 1 < n) {
      EXPECT_EQ(from_next[0], 200.0f + r + 1);
      EXPECT_EQ(from_next[kCount - 1], 200.0f + r + 1);
    }
    if (r > 0) {
      EXPECT_EQ(from_prev[0], 100.0f + r - 1);
      EXPECT_EQ(from_prev[kCount - 1], -3.0f * (r - 1));
    }
    if (r == 0) {
      std::printf("8 MiB exchange each way, chunk %zu bytes: %.1f ms\n", chunk, seconds * 1e3);
    }
  }
}

// Why the exchange above is posted as one group: two blocking 8 MiB sends facing each other
// never complete (MPI cannot buffer messages this large). The timeout turns the deadlock into an
// error that names the peer.
TEST(MpiCommunicatorTest, FacingBlockingSendsOfLargeBuffersTimeOut) {
  constexpr size_t kBytes = 8u << 20;
  auto world = World(0.5);
  if (world->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const int r = world->rank();
  if (r < 2) {
    std::vector<char> buffer(kBytes);
    const Status status = world->Send(buffer.data(), kBytes, 1 - r, 7);
    EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status;
    EXPECT_TRUE(Contains(status, "send to rank " + std::to_string(1 - r) +
                                     " (tag 7, 8388608 bytes) did not complete within 0.5 s"))
        << status;
  }
  world->set_timeout_seconds(kTestTimeout);
  EXPECT_TRUE(world->Barrier().ok());
}

// Progress (called between units while transfers are in flight) only lets MPI move data: a
// message that arrives meanwhile is still there, whole, for the receive posted after it.
TEST(MpiCommunicatorTest, ProgressConsumesNothing) {
  constexpr size_t kCount = 1u << 20;  // 4 MiB: past every eager limit
  auto world = World();
  if (world->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  const int r = world->rank();
  std::vector<float> data(kCount);
  if (r == 0) {
    for (size_t i = 0; i < kCount; ++i) data[i] = static_cast<float>(i);
    StatusOr<Request> send = world->Isend(data.data(), kCount * sizeof(float), 1, 11);
    ASSERT_TRUE(send.ok()) << send.status();
    for (int i = 0; i < 1000; ++i) world->Progress();
    ASSERT_TRUE(world->Wait(*send).ok());
  } else if (r == 1) {
    for (int i = 0; i < 1000; ++i) world->Progress();
    ASSERT_TRUE(world->Recv(data.data(), kCount * sizeof(float), 0, 11).ok());
    for (size_t i = 0; i < kCount; ++i) ASSERT_EQ(data[i], static_cast<float>(i)) << i;
  }
  EXPECT_TRUE(world->Barrier().ok());
}

TEST(MpiCommunicatorTest, AllReduceSumFloatAndDouble) {
  auto world = World();
  const int r = world->rank(), n = world->size();
  for (size_t chunk : {size_t{1} << 30, size_t{1000}}) {  // whole, then 1000-byte pieces
    world->set_max_chunk_bytes_for_testing(chunk);
    constexpr size_t kCount = 10001;
    std::vector<float> f(kCount);
    std::vector<double> d(kCount);
    for (size_t i = 0; i < kCount; ++i) {
      f[i] = static_cast<float>(0.5 * r + static_cast<double>(i));  // exact in any order
      d[i] = 0.1 * (r + 1) + 1e-3 * static_cast<double>(i);
    }
    ASSERT_TRUE(world->AllReduceSum(f.data(), kCount).ok());
    ASSERT_TRUE(world->AllReduceSum(d.data(), kCount).ok());
    for (size_t i = 0; i < kCount; ++i) {
      ASSERT_EQ(f[i], static_cast<float>(0.25 * n * (n - 1) + n * static_cast<double>(i))) << i;
      // Tolerance-equal, not bitwise: MPI picks the order of the additions.
      ASSERT_NEAR(d[i], 0.05 * n * (n + 1) + 1e-3 * n * static_cast<double>(i), 1e-12) << i;
    }
  }
}

TEST(MpiCommunicatorTest, BroadcastFromLastRank) {
  auto world = World();
  world->set_max_chunk_bytes_for_testing(4096 + 8);
  const int root = world->size() - 1;
  std::vector<uint8_t> data(100000);
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = world->rank() == root ? static_cast<uint8_t>(i * 7) : 0;
  }
  ASSERT_TRUE(world->Broadcast(data.data(), data.size(), root).ok());
  for (size_t i = 0; i < data.size(); ++i) ASSERT_EQ(data[i], static_cast<uint8_t>(i * 7)) << i;
}

TEST(MpiCommunicatorTest, AllGatherAndBarrier) {
  auto world = World();
  const int r = world->rank(), n = world->size();
  const double mine[2] = {1.0 * r, -2.0 * r};
  std::vector<double> all(2 * n);
  ASSERT_TRUE(world->AllGather(mine, sizeof(mine), all.data()).ok());
  std::vector<int> in_place(n, -1);
  in_place[r] = r * r;
  ASSERT_TRUE(world->AllGather(&in_place[r], sizeof(int), in_place.data()).ok());
  for (int q = 0; q < n; ++q) {
    EXPECT_EQ(all[2 * q], 1.0 * q);
    EXPECT_EQ(all[2 * q + 1], -2.0 * q);
    EXPECT_EQ(in_place[q], q * q);
  }
  EXPECT_TRUE(world->Barrier().ok());
}

TEST(MpiCommunicatorTest, SplitIntoEvenAndOddGroups) {
  auto world = World();
  const int r = world->rank(), n = world->size();
  auto sub = world->Split(r % 2, r);
  ASSERT_TRUE(sub.ok()) << sub.status();
  Communicator& group = **sub;
  EXPECT_EQ(group.rank(), r / 2);
  EXPECT_EQ(group.size(), (n + 1 - r % 2) / 2);
  EXPECT_EQ(group.name(), "world/split(" + std::to_string(r % 2) + ")");
  EXPECT_EQ(group.DescribeRank(0), "rank 0 (world rank " + std::to_string(r % 2) + ")");
  float sum = static_cast<float>(r);
  ASSERT_TRUE(group.AllReduceSum(&sum, 1).ok());
  float expected = 0;
  for (int q = r % 2; q < n; q += 2) expected += static_cast<float>(q);
  EXPECT_EQ(sum, expected);

  auto without_first = world->Split(r == 0 ? -1 : 0, 0);
  ASSERT_TRUE(without_first.ok());
  EXPECT_EQ(*without_first == nullptr, r == 0);
}

// Rank 0 waits for a message nobody sends: the error names rank 1 and comes on time; the
// receive is cancelled and the communicator stays usable.
TEST(MpiCommunicatorTest, UnansweredReceiveTimesOutNamingThePeer) {
  auto world = World(0.3);
  if (world->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  if (world->rank() == 0) {
    int value = 0;
    const auto start = Clock::now();
    const Status status = world->Recv(&value, sizeof(value), 1, 99);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status;
    EXPECT_TRUE(
        Contains(status, "recv from rank 1 (tag 99, 4 bytes) did not complete within 0.3 s"))
        << status;
    EXPECT_GE(seconds, 0.29);
    EXPECT_LT(seconds, 2.0);
  }
  world->set_timeout_seconds(kTestTimeout);
  EXPECT_TRUE(world->Barrier().ok());
}

TEST(MpiCommunicatorTest, ReceiveOfTheWrongSizeIsAnError) {
  auto world = World();
  if (world->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  char buffer[16] = {};
  if (world->rank() == 0) {
    EXPECT_TRUE(world->Send(buffer, 8, 1, 3).ok());
    EXPECT_TRUE(world->Send(buffer, 16, 1, 4).ok());
  } else if (world->rank() == 1) {
    const Status longer = world->Recv(buffer, 16, 0, 3);
    EXPECT_EQ(longer.code(), StatusCode::kInvalidArgument) << longer;
    EXPECT_TRUE(Contains(longer, "expected 16 bytes, got 8")) << longer;
    const Status shorter = world->Recv(buffer, 8, 0, 4);  // MPI_ERR_TRUNCATE
    EXPECT_EQ(shorter.code(), StatusCode::kInvalidArgument) << shorter;
  }
  EXPECT_TRUE(world->Barrier().ok());
}

}  // namespace
}  // namespace deepnet

int main(int argc, char** argv) { return deepnet::testing::RunMpiTests(argc, argv); }
