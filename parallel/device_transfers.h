// DeviceTransfers: point-to-point and all-reduce of a backend's tensors over one Communicator.
//
// When the transport reads the backend's memory (host tensors on any transport; CUDA tensors on
// NCCL) the tensors go as they are. Otherwise (CUDA or the strict device over MPI) they travel
// through host staging buffers (pinned on CUDA): a send copies the tensor to a host buffer before
// posting it, a receive lands in a host buffer and is copied to the device when WaitAll completes
// it; an all-reduce copies out, reduces on the host and copies back. Staging buffers come from a
// pool (transfer_buffers.h), so steady-state steps stage without allocating. This is what lets
// several ranks share one GPU over MPI, and what runs the pipeline on the strict device in tests.
#pragma once

#include <cstdint>
#include <map>
#include <span>

#include "kernels/backend.h"
#include "parallel/transfer_buffers.h"
#include "runtime/communicator.h"
#include "runtime/status.h"

namespace deepnet {

class DeviceTransfers {
 public:
  // `comm` and `backend` must outlive this object.
  DeviceTransfers(Communicator& comm, const Backend& backend);

  Communicator& comm() const { return comm_; }
  // Whether the backend's tensors go through host buffers on this transport.
  bool staged() const { return staged_; }

  void GroupStart() { comm_.GroupStart(); }
  Status GroupEnd() { return comm_.GroupEnd(); }
  StatusOr<Request> Isend(const Tensor& tensor, int peer, int tag);
  StatusOr<Request> Irecv(const Tensor& tensor, int peer, int tag);
  // Completes every request and, for staged receives among them, copies the data to the device.
  Status WaitAll(std::span<Request> requests);
  void Progress() { comm_.Progress(); }
  Status Send(const Tensor& tensor, int peer, int tag);
  Status Recv(const Tensor& tensor, int peer, int tag);
  Status AllReduceSum(const Tensor& tensor);

  const TransferBuffers& staging_buffers() const { return staging_; }

 private:
  Tensor Stage(const Tensor& like);

  Communicator& comm_;
  const Backend& backend_;
  bool staged_ = false;
  TransferBuffers staging_;  // host buffers
  // Posted staged requests: the host buffer (kept alive until completion) and, for a receive, the
  // device tensor it lands in.
  struct Staged {
    Tensor host;
    Tensor device;  // empty for a send
  };
  std::map<uint64_t, Staged> in_flight_;
};

}  // namespace deepnet
