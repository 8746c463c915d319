// Communicator: point-to-point and collective communication between the ranks of a job.
//
// One interface, several transports: InProcessCommunicator (threads of one process sharing
// in-memory mailboxes; tests and single-process runs), MpiCommunicator (host memory; device
// tensors are staged through the host by parallel/device_transfers.h) and NcclCommunicator (CUDA
// device memory). Pipeline stages exchange activations and gradients with
// Isend/Irecv; data-parallel replicas and the global gradient norm use the collectives.
//
// Contract shared by every transport:
// - Never an endless hang. Every blocking call (Wait, WaitAll, the collectives, Split) gives up
//   after timeout_seconds() (default 300 s) with kDeadlineExceeded; the message names the
//   operation and the peer rank(s) that never answered, e.g.
//   "world rank 0/4: recv from rank 3 (tag 7, 1024 bytes) did not complete within 2 s".
//   A peer known to have gone away gives kUnavailable.
// - A communicator is used by one thread (the one that created it). Ops complete in post order
//   per (source, destination, tag), as in MPI; a receive must expect exactly the bytes sent.
// - Neighbouring pipeline stages send and receive at the same time (1F1B): post both with
//   Isend/Irecv (bracketed by GroupStart/GroupEnd) before waiting, never a blocking Send
//   followed by a blocking Recv, which deadlocks once messages are too large to be buffered.
// - Between GroupStart and GroupEnd only Isend/Irecv may be posted. On MPI they start at once and
//   GroupEnd only validates; on NCCL they start together at GroupEnd (ncclGroupStart/End), so a
//   Wait or a collective inside a group is refused everywhere to keep the transports alike.
// - Collectives are called by every rank of the communicator in the same order.
// - After a collective times out the communicator is unusable (later calls fail): the job is
//   expected to report the error and stop.
//
// Determinism: AllReduceSum adds the ranks' buffers in an order the transport chooses. The
// in-process transport adds in rank order, so results are reproducible and identical on all
// ranks; MPI_Allreduce picks its algorithm (and hence the order of float additions) from the
// message size and the number of ranks. A data-parallel run is therefore equal to the
// single-process run within a floating-point tolerance, not bitwise. Code that needs bitwise
// results (tests comparing against a reference) must reduce in a fixed order itself, e.g. an
// AllGather followed by a sum in rank order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"
#include "runtime/tensor.h"

namespace deepnet {

// A handle to a posted Isend or Irecv. Wait/WaitAll complete it and reset it to the empty state.
class Request {
 public:
  Request() = default;
  explicit Request(uint64_t id) : id_(id) {}

  bool pending() const { return id_ != 0; }
  uint64_t id() const { return id_; }
  void Reset() { id_ = 0; }

 private:
  uint64_t id_ = 0;  // 0: empty (never posted, or already waited for)
};

class Communicator {
 public:
  static constexpr double kDefaultTimeoutSeconds = 300.0;
  // Tags are in [0, kMaxTag]: MPI guarantees at least this upper bound.
  static constexpr int kMaxTag = 32767;

  virtual ~Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Which communicator this is, for messages: "world", "world/split(1)".
  const std::string& name() const { return name_; }
  // "rank 3", or "rank 1 (world rank 3)" in a communicator obtained from Split.
  virtual std::string DescribeRank(int rank) const;

  // Whether buffers in `device`'s memory may be passed as they are (host memory for the in-process
  // and MPI transports; CUDA memory for NCCL, which in turn cannot read host memory).
  virtual bool ReadsDeviceMemory(Device device) const { return device.is_cpu(); }

  double timeout_seconds() const { return timeout_seconds_; }
  void set_timeout_seconds(double seconds);

  // Point-to-point. The buffer must stay valid and untouched until the request completes.
  StatusOr<Request> Isend(const void* data, size_t bytes, int peer, int tag);
  StatusOr<Request> Irecv(void* data, size_t bytes, int peer, int tag);
  StatusOr<Request> Isend(const Tensor& tensor, int peer, int tag);
  StatusOr<Request> Irecv(const Tensor& tensor, int peer, int tag);  // fills tensor's storage
  Status Wait(Request& request);
  // Completes every pending request; empty ones are skipped. On failure the remaining requests
  // are cancelled where the transport allows it, and all are reset.
  Status WaitAll(std::span<Request> requests);
  // Lets posted transfers move on while this rank computes (no waiting; transports that progress
  // on their own do nothing). A rank that posts transfers and completes them only later calls it
  // between pieces of work: over TCP, MPI moves a large message's data only inside MPI calls on
  // both sides.
  virtual void Progress() {}
  // Blocking conveniences: Isend/Irecv + Wait.
  Status Send(const void* data, size_t bytes, int peer, int tag);
  Status Recv(void* data, size_t bytes, int peer, int tag);
  Status Send(const Tensor& tensor, int peer, int tag);
  Status Recv(const Tensor& tensor, int peer, int tag);

  // Ops posted between GroupStart and GroupEnd start together (see the file comment).
  void GroupStart();
  Status GroupEnd();
  bool in_group() const { return group_depth_ > 0; }

  // Collectives, in place. AllReduceSum leaves the element-wise sum over ranks in every rank.
  Status AllReduceSum(float* data, size_t count);
  Status AllReduceSum(double* data, size_t count);
  Status AllReduceSum(const Tensor& tensor);  // f32 or f64
  // Copies root's `bytes` into every other rank's buffer.
  Status Broadcast(void* data, size_t bytes, int root);
  Status Broadcast(const Tensor& tensor, int root);
  // recv (size() * bytes_per_rank) receives every rank's send buffer in rank order. send may be
  // recv + rank() * bytes_per_rank (in place); otherwise the buffers must not overlap.
  Status AllGather(const void* send, size_t bytes_per_rank, void* recv);
  Status Barrier();

  // Collective: ranks with the same color form a new communicator, ordered by (key, rank).
  // A negative color leaves this rank out: it gets a null communicator (and OK).
  // The new communicator inherits the timeout.
  StatusOr<std::unique_ptr<Communicator>> Split(int color, int key);

  // OK, or the failure that made this communicator unusable.
  const Status& health() const { return broken_; }

 protected:
  explicit Communicator(std::string name, double timeout_seconds = kDefaultTimeoutSeconds);

  // The transport's mechanics; arguments are already validated by the public methods.
  virtual StatusOr<Request> IsendImpl(const void* data, size_t bytes, int peer, int tag) = 0;
  virtual StatusOr<Request> IrecvImpl(void* data, size_t bytes, int peer, int tag) = 0;
  // `requests` holds only pending requests (each posted on this communicator).
  virtual Status WaitAllImpl(std::span<Request> requests) = 0;
  virtual void GroupStartImpl() {}
  virtual Status GroupEndImpl() { return OkStatus(); }
  virtual Status AllReduceSumImpl(float* data, size_t count) = 0;
  virtual Status AllReduceSumImpl(double* data, size_t count) = 0;
  virtual Status BroadcastImpl(void* data, size_t bytes, int root) = 0;
  virtual Status AllGatherImpl(const void* send, size_t bytes_per_rank, void* recv) = 0;
  virtual Status BarrierImpl() = 0;
  virtual StatusOr<std::unique_ptr<Communicator>> SplitImpl(int color, int key) = 0;

  // Called by a transport when a failure leaves it unusable; later calls return this error.
  void MarkBroken(const Status& status);
  // "world rank 0/4": the prefix of every error message.
  std::string Prefix() const;
  // "rank 1, rank 3": the ranks named in timeout messages.
  std::string DescribeRanks(const std::vector<int>& ranks) const;

 private:
  Status CheckUsable(std::string_view op) const;
  Status CheckPeer(int peer, int tag, const void* data, size_t bytes) const;
  Status CheckCollective(std::string_view op) const;

  std::string name_;
  double timeout_seconds_;
  int group_depth_ = 0;
  Status broken_;
};

// "2 s", "0.25 s": durations in messages.
std::string FormatSeconds(double seconds);

}  // namespace deepnet
