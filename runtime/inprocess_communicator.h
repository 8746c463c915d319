// InProcessCommunicator: a group of N communicators for N threads of one process.
//
// The ranks share in-memory mailboxes: a send is matched with the receive of the same
// (source, destination, tag) in post order and copied when both are posted (so a send completes
// only once received, like a large MPI message: tests see the deadlocks MPI would have).
// Collectives add in rank order, so results are bitwise reproducible and identical on all ranks.
// A group of one is the single-process communicator. Tests can drop a rank to simulate a dead
// peer and check that every waiting rank gets an error naming it instead of hanging.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/communicator.h"

namespace deepnet {

namespace inprocess {
struct Group;
struct PointToPointOp;
struct Contribution;
struct CollectiveSlot;
}  // namespace inprocess

// How a dropped rank disappears.
enum class DropMode {
  kSilent,     // it just stops answering: peers waiting on it get kDeadlineExceeded
  kAnnounced,  // its departure is known (a closed connection): peers get kUnavailable at once
};

class InProcessCommunicator : public Communicator {
 public:
  // `size` communicators sharing one group; give communicator r to thread r.
  static std::vector<std::unique_ptr<InProcessCommunicator>> CreateGroup(
      int size, double timeout_seconds = kDefaultTimeoutSeconds);
  ~InProcessCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override;
  std::string DescribeRank(int rank) const override;

  // Simulates the death of `rank` (of this communicator; it is dropped from every communicator
  // split from the same group too). Any thread may call it. The dropped rank's own later calls
  // fail with kUnavailable.
  void DropRank(int rank, DropMode mode);

 protected:
  StatusOr<Request> IsendImpl(const void* data, size_t bytes, int peer, int tag) override;
  StatusOr<Request> IrecvImpl(void* data, size_t bytes, int peer, int tag) override;
  Status WaitAllImpl(std::span<Request> requests) override;
  Status AllReduceSumImpl(float* data, size_t count) override;
  Status AllReduceSumImpl(double* data, size_t count) override;
  Status BroadcastImpl(void* data, size_t bytes, int root) override;
  Status AllGatherImpl(const void* send, size_t bytes_per_rank, void* recv) override;
  Status BarrierImpl() override;
  StatusOr<std::unique_ptr<Communicator>> SplitImpl(int color, int key) override;

 private:
  using Combine = void (*)(inprocess::CollectiveSlot& slot);

  InProcessCommunicator(std::shared_ptr<inprocess::Group> group, int rank, std::string name,
                        double timeout_seconds);

  StatusOr<Request> Post(bool is_send, void* data, size_t bytes, int peer, int tag);
  Status SelfDroppedError() const;
  // Posts this rank's contribution to the next collective and waits until every rank has
  // posted and `combine` (run once, by the last to arrive) has filled every rank's buffers.
  Status RunCollective(const inprocess::Contribution& contribution, Combine combine,
                       std::unique_ptr<InProcessCommunicator>* split_result = nullptr);
  // Why the collective in `slot` can no longer complete for this rank; OK while it still can.
  Status CollectiveFailure(const inprocess::CollectiveSlot& slot, const std::string& what) const;
  template <typename T>
  Status AllReduce(T* data, size_t count, const char* type_name);
  static void CombineSplit(inprocess::CollectiveSlot& slot);

  std::shared_ptr<inprocess::Group> group_;
  int rank_;
  uint64_t next_request_id_ = 1;
  std::unordered_map<uint64_t, std::shared_ptr<inprocess::PointToPointOp>> requests_;
  int64_t collective_seq_ = 0;
};

// The communicator of a run without peers: rank 0 of 1 (self-sends work, collectives are copies).
std::unique_ptr<Communicator> MakeSingleProcessCommunicator();

}  // namespace deepnet
