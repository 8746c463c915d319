// NcclCommunicator tests: one process per rank under mpirun -np 2 (see ctest). Without a GPU for
// every rank, set-up must fail on all ranks together and quickly (that part runs everywhere); the
// transfer tests then skip with the reason. Rank 0 prints the GoogleTest report; every rank exits
// with the same code.
#include "runtime/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

#include "tests/mpi_test_main.h"

namespace deepnet {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kTestTimeout = 20.0;  // a hang fails the test instead of the ctest timeout

std::unique_ptr<MpiCommunicator> World() {
  auto world = MpiCommunicator::World(kTestTimeout);
  CHECK(world.ok()) << world.status();
  return std::move(*world);
}

bool Contains(const Status& status, const std::string& text) {
  return status.message().find(text) != std::string::npos;
}

// Device memory holding `count` values of T.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t count) : count_(count) {
    CHECK_EQ(cudaMalloc(&data_, count * sizeof(T)), cudaSuccess);
  }
  ~DeviceBuffer() { cudaFree(data_); }
  T* data() const { return static_cast<T*>(data_); }
  void Upload(const std::vector<T>& values) {
    CHECK_EQ(cudaMemcpy(data_, values.data(), count_ * sizeof(T), cudaMemcpyHostToDevice),
             cudaSuccess);
  }
  std::vector<T> Download() const {
    std::vector<T> values(count_);
    CHECK_EQ(cudaMemcpy(values.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost),
             cudaSuccess);
    return values;
  }

 private:
  void* data_ = nullptr;
  size_t count_;
};

// The NCCL communicator over `world`, or null with the reason (the same on every rank).
std::unique_ptr<NcclCommunicator> NcclOrNull(MpiCommunicator& world, std::string* reason) {
  auto nccl = NcclCommunicator::Create(world, kTestTimeout);
  if (!nccl.ok()) {
    *reason = nccl.status().ToString();
    return nullptr;
  }
  return std::move(*nccl);
}

#define NCCL_OR_SKIP(nccl, world)                                                \
  std::string nccl##_reason;                                                     \
  std::unique_ptr<NcclCommunicator> nccl = NcclOrNull(*(world), &nccl##_reason); \
  if (nccl == nullptr) GTEST_SKIP() << "no usable GPU per rank: " << nccl##_reason

TEST(NcclCommunicatorTest, UniqueIdNeedsNoGpu) {
  ncclUniqueId id;
  EXPECT_EQ(ncclGetUniqueId(&id), ncclSuccess);
}

// Runs everywhere: with a GPU per rank set-up succeeds; without, every rank gets the error well
// before the timeout (no rank is left waiting inside NCCL).
TEST(NcclCommunicatorTest, SetUpSucceedsOrFailsOnEveryRankTogether) {
  auto world = World();
  int devices = 0;
  const bool enough_gpus =
      cudaGetDeviceCount(&devices) == cudaSuccess && devices >= world->local_size();
  cudaGetLastError();
  const auto start = Clock::now();
  auto nccl = NcclCommunicator::Create(*world, kTestTimeout);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  if (enough_gpus) {
    ASSERT_TRUE(nccl.ok()) << nccl.status();
    EXPECT_EQ((*nccl)->rank(), world->rank());
    EXPECT_EQ((*nccl)->size(), world->size());
  } else {
    ASSERT_FALSE(nccl.ok());
    EXPECT_TRUE(nccl.status().code() == StatusCode::kUnavailable ||
                nccl.status().code() == StatusCode::kFailedPrecondition)
        << nccl.status();
    EXPECT_LT(seconds, kTestTimeout / 2) << nccl.status();
    std::printf("rank %d: set-up refused as expected: %s\n", world->rank(),
                nccl.status().ToString().c_str());
  }
}

TEST(NcclCommunicatorTest, RingWithoutGroupDoesNotDeadlock) {
  auto world = World();
  NCCL_OR_SKIP(nccl, world);
  const int r = nccl->rank(), n = nccl->size();
  constexpr size_t kCount = (4u << 20) / sizeof(float);  // large: not buffered by NCCL
  DeviceBuffer<float> out(kCount), in(kCount);
  out.Upload(std::vector<float>(kCount, 100.0f + r));
  std::vector<Request> requests(2);
  requests[0] = *nccl->Isend(out.data(), kCount * sizeof(float), (r + 1) % n, 0);
  requests[1] = *nccl->Irecv(in.data(), kCount * sizeof(float), (r + n - 1) % n, 0);
  ASSERT_TRUE(nccl->WaitAll(requests).ok());
  const std::vector<float> got = in.Download();
  EXPECT_EQ(got.front(), 100.0f + (r + n - 1) % n);
  EXPECT_EQ(got.back(), 100.0f + (r + n - 1) % n);
}

TEST(NcclCommunicatorTest, GroupedExchangeWithBothNeighbours) {
  auto world = World();
  NCCL_OR_SKIP(nccl, world);
  const int r = nccl->rank(), n = nccl->size();
  constexpr size_t kCount = 1 << 20;
  DeviceBuffer<float> to_next(kCount), to_prev(kCount), from_next(kCount), from_prev(kCount);
  to_next.Upload(std::vector<float>(kCount, 10.0f * r + 1));
  to_prev.Upload(std::vector<float>(kCount, 10.0f * r + 2));
  std::vector<Request> requests;
  nccl->GroupStart();
  if (r + 1 < n) {
    requests.push_back(*nccl->Isend(to_next.data(), kCount * 4, r + 1, 0));
    requests.push_back(*nccl->Irecv(from_next.data(), kCount * 4, r + 1, 1));
  }
  if (r > 0) {
    requests.push_back(*nccl->Isend(to_prev.data(), kCount * 4, r - 1, 1));
    requests.push_back(*nccl->Irecv(from_prev.data(), kCount * 4, r - 1, 0));
  }
  ASSERT_TRUE(nccl->GroupEnd().ok());
  ASSERT_TRUE(nccl->WaitAll(requests).ok());
  if (r + 1 < n) {
    EXPECT_EQ(from_next.Download()[kCount - 1], 10.0f * (r + 1) + 2);
  }
  if (r > 0) {
    EXPECT_EQ(from_prev.Download()[0], 10.0f * (r - 1) + 1);
  }
}

TEST(NcclCommunicatorTest, Collectives) {
  auto world = World();
  NCCL_OR_SKIP(nccl, world);
  const int r = nccl->rank(), n = nccl->size();
  DeviceBuffer<float> sum(1000);
  sum.Upload(std::vector<float>(1000, static_cast<float>(r + 1)));
  ASSERT_TRUE(nccl->AllReduceSum(sum.data(), 1000).ok());
  EXPECT_EQ(sum.Download()[999], n * (n + 1) / 2.0f);

  DeviceBuffer<double> sum64(3);
  sum64.Upload({1.0 * r, 2.0, 0.5});
  ASSERT_TRUE(nccl->AllReduceSum(sum64.data(), 3).ok());
  EXPECT_EQ(sum64.Download()[1], 2.0 * n);

  DeviceBuffer<int> broadcast(16);
  broadcast.Upload(std::vector<int>(16, r == 1 ? 42 : -1));
  ASSERT_TRUE(nccl->Broadcast(broadcast.data(), 16 * sizeof(int), 1).ok());
  EXPECT_EQ(broadcast.Download()[15], 42);

  DeviceBuffer<int> gathered(4 * n);
  std::vector<int> mine(4 * n, -1);
  std::iota(mine.begin() + 4 * r, mine.begin() + 4 * r + 4, 100 * r);
  gathered.Upload(mine);
  ASSERT_TRUE(nccl->AllGather(gathered.data() + 4 * r, 4 * sizeof(int), gathered.data()).ok());
  const std::vector<int> all = gathered.Download();
  for (int q = 0; q < n; ++q) EXPECT_EQ(all[4 * q + 3], 100 * q + 3);

  EXPECT_TRUE(nccl->Barrier().ok());
}

TEST(NcclCommunicatorTest, SplitIntoEvenAndOddRanks) {
  auto world = World();
  NCCL_OR_SKIP(nccl, world);
  const int r = nccl->rank();
  auto half = nccl->Split(r % 2, r);
  ASSERT_TRUE(half.ok()) << half.status();
  ASSERT_NE(*half, nullptr);
  EXPECT_EQ((*half)->rank(), r / 2);
  DeviceBuffer<float> value(1);
  value.Upload({1.0f});
  ASSERT_TRUE((*half)->AllReduceSum(value.data(), 1).ok());
  EXPECT_EQ(value.Download()[0], static_cast<float>((*half)->size()));

  auto none = nccl->Split(r == 0 ? -1 : 0, r);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(*none == nullptr, r == 0);
}

TEST(NcclCommunicatorTest, HostBuffersAreRefused) {
  auto world = World();
  NCCL_OR_SKIP(nccl, world);
  std::vector<float> host(8);
  auto request = nccl->Isend(host.data(), host.size() * sizeof(float), 0, 0);
  ASSERT_FALSE(request.ok());
  EXPECT_EQ(request.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(request.status(), "not device memory")) << request.status();
}

// The last rank never posts its receive: the sender gives up after its timeout, names the peer,
// and the communicator is unusable afterwards. Keep this test last: it aborts a communicator.
TEST(NcclCommunicatorTest, UnansweredSendTimesOutNamingThePeer) {
  auto world = World();
  NCCL_OR_SKIP(nccl, world);
  const int last = nccl->size() - 1;
  if (nccl->rank() == 0) {
    nccl->set_timeout_seconds(1.0);
    DeviceBuffer<float> data(1 << 20);
    const auto start = Clock::now();
    const Status sent = nccl->Send(data.data(), (1 << 20) * sizeof(float), last, 3);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    EXPECT_EQ(sent.code(), StatusCode::kDeadlineExceeded) << sent;
    EXPECT_TRUE(Contains(sent, "send to rank " + std::to_string(last))) << sent;
    EXPECT_LT(seconds, 5.0);
    EXPECT_FALSE(nccl->health().ok());
    EXPECT_FALSE(nccl->Barrier().ok());
  }
  EXPECT_TRUE(world->Barrier().ok());
}

}  // namespace
}  // namespace deepnet

int main(int argc, char** argv) { return deepnet::testing::RunMpiTests(argc, argv); }
