// NcclCommunicator: the Communicator over NCCL, for the CUDA backend. Buffers are device memory.
//
// Launch (docs/design.md#launch): MPI is initialised by MpiCommunicator; Create takes the MPI
// communicator of the ranks, picks this process's GPU by its rank on the node (MPI_Comm_split_type,
// one GPU per rank), lets rank 0 make the NCCL unique id and broadcasts it over MPI, and joins with
// ncclCommInitRank. Split uses ncclCommSplit (and splits a private MPI twin alongside).
//
// Streams: NCCL runs on a communication stream of its own. Before each launch it waits (on the
// GPU, through an event) for the work already enqueued on the compute stream given to
// set_compute_stream, so it sends what the kernels produced; Wait returns only when the transfer
// has finished, so later compute work sees received data.
//
// Never a silent hang: the communicator is NCCL's non-blocking kind, and every wait (set-up,
// launches, Wait/WaitAll, collectives, Split) polls cudaEventQuery and ncclCommGetAsyncError
// against timeout_seconds(). At the deadline it calls ncclCommAbort and returns kDeadlineExceeded
// naming the operation and the peer rank(s): for point-to-point the peers of the unfinished
// requests; for collectives the ranks that did not reach an MPI check on the twin communicator
// (as MpiCommunicator reports them). An NCCL error gives kUnavailable. Either leaves the
// communicator unusable.
//
// Differences from MpiCommunicator (the Communicator contract allows them):
// - Isend/Irecv start together at the next GroupEnd, Wait or collective, all in one NCCL group;
//   so "Isend, Irecv, WaitAll" cannot deadlock even without GroupStart/GroupEnd.
// - NCCL has no tags: tags are range-checked only, and messages between two ranks pair up in
//   post order. Pipeline schedules post them in the same order on both sides.
// - AllReduceSum adds in NCCL's order (ring or tree, chosen by size): like MPI, reproducible run
//   to run for a fixed configuration but not equal to a rank-ordered sum.
#pragma once

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "runtime/communicator.h"
#include "runtime/mpi_communicator.h"

namespace deepnet {

class NcclCommunicator : public Communicator {
 public:
  // Collective over the ranks of `mpi`. Every rank returns the same failure when some rank has no
  // usable GPU (kUnavailable / kFailedPrecondition with the reason) instead of some of them
  // hanging in NCCL's set-up.
  static StatusOr<std::unique_ptr<NcclCommunicator>> Create(
      MpiCommunicator& mpi, double timeout_seconds = kDefaultTimeoutSeconds);
  ~NcclCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string DescribeRank(int rank) const override { return twin_->DescribeRank(rank); }

  int device() const { return device_; }
  bool ReadsDeviceMemory(Device device) const override {
    return device.kind == DeviceKind::kCuda && device.index == device_;
  }
  cudaStream_t stream() const { return stream_; }
  // NCCL launches wait for the work enqueued on `compute` before them (null: no ordering; the
  // caller synchronises). Communicators split from this one inherit it.
  void set_compute_stream(cudaStream_t compute) { compute_stream_ = compute; }

 protected:
  StatusOr<Request> IsendImpl(const void* data, size_t bytes, int peer, int tag) override;
  StatusOr<Request> IrecvImpl(void* data, size_t bytes, int peer, int tag) override;
  Status WaitAllImpl(std::span<Request> requests) override;
  Status GroupEndImpl() override;
  Status AllReduceSumImpl(float* data, size_t count) override;
  Status AllReduceSumImpl(double* data, size_t count) override;
  Status BroadcastImpl(void* data, size_t bytes, int root) override;
  Status AllGatherImpl(const void* send, size_t bytes_per_rank, void* recv) override;
  Status BarrierImpl() override;
  StatusOr<std::unique_ptr<Communicator>> SplitImpl(int color, int key) override;

 private:
  class Event;
  // A posted Isend/Irecv: queued until the next launch, then tied to its group's event.
  struct PointToPoint {
    bool is_send = false;
    void* data = nullptr;
    size_t bytes = 0;
    int peer = 0;
    int tag = 0;
    std::shared_ptr<Event> done;  // null until launched (and for empty messages)
    std::string Describe(const NcclCommunicator& comm) const;
  };

  NcclCommunicator(ncclComm_t comm, std::unique_ptr<MpiCommunicator> twin, int device,
                   std::string name, double timeout_seconds);
  // Creates the stream, the ordering event and the barrier's scratch.
  Status Start();

  StatusOr<Request> Post(bool is_send, void* data, size_t bytes, int peer, int tag);
  // Launches every queued Isend/Irecv in one NCCL group.
  Status LaunchPending();
  // Makes the communication stream wait for the compute stream.
  Status OrderAfterCompute();
  // Waits until a non-blocking NCCL call on comm has been enqueued (ncclInProgress is over).
  Status WaitEnqueued(ncclComm_t comm, const std::string& what);
  // Launches a collective and waits for it; `op` #k (`detail`) names it in errors.
  Status RunCollective(ncclResult_t launched, const std::string& op, const std::string& detail);
  // Polls `events` until all completed, an NCCL error, or the deadline (then false).
  StatusOr<bool> PollEvents(const std::vector<Event*>& events);
  // The NCCL error of `result` as a Status; aborts the communicator.
  Status Fail(Status status);
  Status CheckDeviceBuffer(const void* data, size_t bytes, const char* what) const;

  ncclComm_t comm_ = nullptr;
  std::unique_ptr<MpiCommunicator> twin_;  // the same ranks over MPI: set-up and diagnosis
  int device_ = 0;
  int rank_ = 0;
  int size_ = 1;
  cudaStream_t stream_ = nullptr;
  cudaStream_t compute_stream_ = nullptr;
  cudaEvent_t compute_ready_ = nullptr;
  float* barrier_scratch_ = nullptr;
  uint64_t next_request_id_ = 1;
  std::unordered_map<uint64_t, PointToPoint> requests_;
  std::vector<uint64_t> pending_;  // posted, not launched, in post order
  int64_t collective_seq_ = 0;
};

}  // namespace deepnet
