// Communicator tests on the in-process transport: N threads, one communicator each.
#include "runtime/communicator.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <numeric>
#include <thread>
#include <vector>

#include "runtime/inprocess_communicator.h"

namespace deepnet {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kShortTimeout = 0.2;  // seconds: long enough for a loaded machine to match

// Runs body(comm) on one thread per rank of a fresh group and joins them.
void RunRanks(int size, const std::function<void(InProcessCommunicator&)>& body,
              double timeout_seconds = 10.0) {
  auto comms = InProcessCommunicator::CreateGroup(size, timeout_seconds);
  std::vector<std::thread> threads;
  for (auto& comm : comms) threads.emplace_back([&body, c = comm.get()] { body(*c); });
  for (auto& t : threads) t.join();
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool Contains(const Status& status, const std::string& text) {
  return status.message().find(text) != std::string::npos;
}

TEST(SingleProcessCommunicatorTest, SelfSendAndCollectivesAreCopies) {
  auto comm = MakeSingleProcessCommunicator();
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  int sent = 42, received = 0;
  comm->GroupStart();
  auto send = comm->Isend(&sent, sizeof(sent), 0, 3);
  auto recv = comm->Irecv(&received, sizeof(received), 0, 3);
  ASSERT_TRUE(send.ok() && recv.ok());
  ASSERT_TRUE(comm->GroupEnd().ok());
  std::vector<Request> requests = {*send, *recv};
  ASSERT_TRUE(comm->WaitAll(requests).ok());
  EXPECT_EQ(received, 42);
  EXPECT_FALSE(requests[0].pending());

  std::vector<float> values = {1.5f, -2.0f};
  ASSERT_TRUE(comm->AllReduceSum(values.data(), values.size()).ok());
  EXPECT_EQ(values, (std::vector<float>{1.5f, -2.0f}));
  std::vector<int> gathered(1);
  ASSERT_TRUE(comm->AllGather(&sent, sizeof(int), gathered.data()).ok());
  EXPECT_EQ(gathered[0], 42);
  ASSERT_TRUE(comm->Broadcast(&sent, sizeof(sent), 0).ok());
  ASSERT_TRUE(comm->Barrier().ok());
  auto sub = comm->Split(0, 0);
  ASSERT_TRUE(sub.ok());
  EXPECT_EQ((*sub)->size(), 1);
}

TEST(InProcessCommunicatorTest, PointToPointMatchesByTagInPostOrder) {
  RunRanks(2, [](InProcessCommunicator& comm) {
    if (comm.rank() == 0) {
      for (int tag : {5, 6}) {
        for (int i = 0; i < 2; ++i) {
          int value = tag * 10 + i;
          ASSERT_TRUE(comm.Send(&value, sizeof(value), 1, tag).ok());
        }
      }
    } else {
      // Tag 6 first would deadlock with synchronous sends; post everything, then wait.
      int values[4] = {};
      std::vector<Request> requests;
      for (int i = 0; i < 4; ++i) {
        const int tag = i < 2 ? 6 : 5;
        requests.push_back(*comm.Irecv(&values[i], sizeof(int), 0, tag));
      }
      ASSERT_TRUE(comm.WaitAll(requests).ok());
      EXPECT_EQ(values[0], 60);
      EXPECT_EQ(values[1], 61);
      EXPECT_EQ(values[2], 50);
      EXPECT_EQ(values[3], 51);
    }
  });
}

TEST(InProcessCommunicatorTest, TensorSendRecv) {
  RunRanks(2, [](InProcessCommunicator& comm) {
    Tensor t = Tensor::Zeros({2, 3}, DType::kF32, MemoryCategory::kActivations);
    if (comm.rank() == 0) {
      for (int i = 0; i < 6; ++i) t.data<float>()[i] = static_cast<float>(i);
      ASSERT_TRUE(comm.Send(t, 1, 0).ok());
    } else {
      ASSERT_TRUE(comm.Recv(t, 0, 0).ok());
      EXPECT_EQ(t.data<float>()[5], 5.0f);
    }
  });
}

// 1F1B steady state: stage r sends activations to r+1 and receives gradients from r+1 (and the
// mirror image with r-1), all posted in one group before anything is waited for.
TEST(InProcessCommunicatorTest, GroupedExchangeInBothDirections) {
  constexpr size_t kCount = 1 << 18;  // 1 MiB of floats per message
  RunRanks(4, [](InProcessCommunicator& comm) {
    const int r = comm.rank();
    const int n = comm.size();
    std::vector<float> to_next(kCount, 100.0f + r), to_prev(kCount, 200.0f + r);
    std::vector<float> from_next(kCount), from_prev(kCount);
    std::vector<Request> requests;
    comm.GroupStart();
    if (r + 1 < n) {
      requests.push_back(*comm.Isend(to_next.data(), kCount * 4, r + 1, /*tag=*/0));
      requests.push_back(*comm.Irecv(from_next.data(), kCount * 4, r + 1, /*tag=*/1));
    }
    if (r > 0) {
      requests.push_back(*comm.Isend(to_prev.data(), kCount * 4, r - 1, /*tag=*/1));
      requests.push_back(*comm.Irecv(from_prev.data(), kCount * 4, r - 1, /*tag=*/0));
    }
    ASSERT_TRUE(comm.GroupEnd().ok());
    ASSERT_TRUE(comm.WaitAll(requests).ok());
    if (r + 1 < n) {
      EXPECT_EQ(from_next[kCount - 1], 200.0f + r + 1);
    }
    if (r > 0) {
      EXPECT_EQ(from_prev[0], 100.0f + r - 1);
    }
  });
}

// Two blocking sends facing each other never match: the error names the peer, no hang.
TEST(InProcessCommunicatorTest, FacingBlockingSendsTimeOutNamingThePeer) {
  RunRanks(
      2,
      [](InProcessCommunicator& comm) {
        const int peer = 1 - comm.rank();
        int value = comm.rank();
        Status status = comm.Send(&value, sizeof(value), peer, 0);
        EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status;
        EXPECT_TRUE(Contains(status, "send to rank " + std::to_string(peer))) << status;
      },
      kShortTimeout);
}

TEST(InProcessCommunicatorTest, AllReduceSumIsInRankOrderAndIdenticalOnAllRanks) {
  constexpr int kRanks = 4;
  constexpr size_t kCount = 1000;
  auto value = [](int rank, size_t i) { return 0.1 * (rank + 1) + 1e-3 * static_cast<double>(i); };
  std::vector<std::vector<float>> results(kRanks);
  RunRanks(kRanks, [&](InProcessCommunicator& comm) {
    std::vector<float> f(kCount);
    std::vector<double> d(kCount);
    for (size_t i = 0; i < kCount; ++i) {
      f[i] = static_cast<float>(value(comm.rank(), i));
      d[i] = value(comm.rank(), i);
    }
    ASSERT_TRUE(comm.AllReduceSum(f.data(), kCount).ok());
    ASSERT_TRUE(comm.AllReduceSum(d.data(), kCount).ok());
    for (size_t i = 0; i < kCount; ++i) {
      float expected_f = 0;
      double expected_d = 0;
      for (int q = 0; q < kRanks; ++q) {
        expected_f += static_cast<float>(value(q, i));
        expected_d += value(q, i);
      }
      ASSERT_EQ(f[i], expected_f) << i;  // bitwise: summed in rank order
      ASSERT_EQ(d[i], expected_d) << i;
    }
    results[comm.rank()] = f;
  });
  for (int r = 1; r < kRanks; ++r) EXPECT_EQ(results[r], results[0]);
}

TEST(InProcessCommunicatorTest, AllReduceTensor) {
  RunRanks(3, [](InProcessCommunicator& comm) {
    Tensor t = Tensor::Zeros({4}, DType::kF64, MemoryCategory::kGradients);
    t.Fill(comm.rank() + 1.0);
    ASSERT_TRUE(comm.AllReduceSum(t).ok());
    EXPECT_EQ(t.data<double>()[3], 6.0);
    Tensor ints = Tensor::Zeros({4}, DType::kI32, MemoryCategory::kGradients);
    EXPECT_EQ(comm.AllReduceSum(ints).code(), StatusCode::kUnimplemented);
  });
}

TEST(InProcessCommunicatorTest, BroadcastAndAllGather) {
  RunRanks(4, [](InProcessCommunicator& comm) {
    const int r = comm.rank();
    std::vector<int> data(16, r == 2 ? 7 : -1);
    ASSERT_TRUE(comm.Broadcast(data.data(), data.size() * sizeof(int), /*root=*/2).ok());
    EXPECT_EQ(data, std::vector<int>(16, 7));

    struct Pair {
      int x, y;
    };
    Pair mine = {r, 10 * r};
    std::vector<Pair> all(comm.size());
    ASSERT_TRUE(comm.AllGather(&mine, sizeof(mine), all.data()).ok());
    std::vector<int> in_place(comm.size(), -1);
    in_place[r] = r * r;
    ASSERT_TRUE(comm.AllGather(&in_place[r], sizeof(int), in_place.data()).ok());
    for (int q = 0; q < comm.size(); ++q) {
      EXPECT_EQ(all[q].x, q);
      EXPECT_EQ(all[q].y, 10 * q);
      EXPECT_EQ(in_place[q], q * q);
    }
    EXPECT_TRUE(comm.Barrier().ok());
  });
}

TEST(InProcessCommunicatorTest, SplitIntoEvenAndOddGroups) {
  RunRanks(5, [](InProcessCommunicator& comm) {
    const int r = comm.rank();
    // key = -r reverses the order inside each sub-group.
    auto sub = comm.Split(/*color=*/r % 2, /*key=*/-r);
    ASSERT_TRUE(sub.ok()) << sub.status();
    Communicator& group = **sub;
    const int members = r % 2 == 0 ? 3 : 2;  // {0, 2, 4} and {1, 3}
    EXPECT_EQ(group.size(), members);
    EXPECT_EQ(group.rank(), (members - 1) - r / 2);
    EXPECT_EQ(group.name(), "world/split(" + std::to_string(r % 2) + ")");
    double sum = r;
    ASSERT_TRUE(group.AllReduceSum(&sum, 1).ok());
    EXPECT_EQ(sum, r % 2 == 0 ? 0 + 2 + 4 : 1 + 3);
    auto none = comm.Split(r == 0 ? -1 : 0, 0);  // rank 0 opts out
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(*none == nullptr, r == 0);
    if (r != 0) {
      EXPECT_EQ((*none)->size(), 4);
    }
  });
}

// The last rank dies without a word: every survivor gets kDeadlineExceeded naming it, on time.
TEST(InProcessCommunicatorTest, SilentlyDroppedPeerIsNamedWithinTheTimeout) {
  RunRanks(
      3,
      [](InProcessCommunicator& comm) {
        if (comm.rank() == 2) {
          comm.DropRank(2, DropMode::kSilent);
          int value = 0;
          EXPECT_EQ(comm.Send(&value, sizeof(value), 0, 0).code(), StatusCode::kUnavailable);
          return;
        }
        int value = 0;
        auto start = Clock::now();
        Status recv = comm.Recv(&value, sizeof(value), 2, 9);
        EXPECT_EQ(recv.code(), StatusCode::kDeadlineExceeded) << recv;
        EXPECT_TRUE(Contains(recv, "recv from rank 2 (tag 9, 4 bytes)")) << recv;
        EXPECT_GE(SecondsSince(start), kShortTimeout * 0.99);
        EXPECT_LT(SecondsSince(start), kShortTimeout + 1.0);

        start = Clock::now();
        float sum = 1;
        Status reduce = comm.AllReduceSum(&sum, 1);
        EXPECT_EQ(reduce.code(), StatusCode::kDeadlineExceeded) << reduce;
        EXPECT_TRUE(Contains(reduce, "(missing: rank 2)")) << reduce;
        EXPECT_LT(SecondsSince(start), kShortTimeout + 1.0);
        // A timed-out collective leaves the communicator unusable.
        EXPECT_EQ(comm.Barrier().code(), StatusCode::kFailedPrecondition);
        EXPECT_FALSE(comm.health().ok());
      },
      kShortTimeout);
}

TEST(InProcessCommunicatorTest, AnnouncedDropFailsAtOnceInSubGroupsToo) {
  RunRanks(4, [](InProcessCommunicator& comm) {
    auto sub = comm.Split(comm.rank() / 2, 0);  // {0, 1} and {2, 3}
    ASSERT_TRUE(sub.ok());
    if (comm.rank() == 3) {
      comm.DropRank(3, DropMode::kAnnounced);
      return;
    }
    if (comm.rank() != 2) return;
    const auto start = Clock::now();
    float x = 0;
    Status status = (*sub)->AllReduceSum(&x, 1);
    EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status;
    EXPECT_TRUE(Contains(status, "rank 1 (world rank 3) left the group")) << status;
    EXPECT_LT(SecondsSince(start), 1.0);  // well before the 10 s timeout
  });
}

TEST(InProcessCommunicatorTest, MismatchesAreReported) {
  RunRanks(2, [](InProcessCommunicator& comm) {
    char buffer[16] = {};
    Status p2p = comm.rank() == 0 ? comm.Send(buffer, 8, 1, 0) : comm.Recv(buffer, 16, 0, 0);
    EXPECT_EQ(p2p.code(), StatusCode::kInvalidArgument) << p2p;
    EXPECT_TRUE(Contains(p2p, "sent 8 bytes")) << p2p;
    Status collective =
        comm.rank() == 0 ? comm.Barrier() : comm.Broadcast(buffer, sizeof(buffer), 0);
    EXPECT_EQ(collective.code(), StatusCode::kInvalidArgument) << collective;
    EXPECT_TRUE(Contains(collective, "mismatch")) << collective;
  });
}

TEST(InProcessCommunicatorTest, MisuseIsRefused) {
  auto comms = InProcessCommunicator::CreateGroup(2);
  Communicator& comm = *comms[0];
  int value = 0;
  EXPECT_EQ(comm.GroupEnd().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(comm.Isend(&value, 4, 2, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.Isend(&value, 4, 1, -1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.Isend(nullptr, 4, 1, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.Broadcast(&value, 4, 5).code(), StatusCode::kInvalidArgument);
  comm.GroupStart();
  auto request = comm.Irecv(&value, 4, 1, 0);
  ASSERT_TRUE(request.ok());
  EXPECT_EQ(comm.Wait(*request).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(comm.Barrier().code(), StatusCode::kFailedPrecondition);
  EXPECT_TRUE(comm.GroupEnd().ok());
  // The receive is still posted; destroying the communicator withdraws it.
  EXPECT_TRUE((*request).pending());
}

}  // namespace
}  // namespace deepnet
