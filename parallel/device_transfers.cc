// Device tensors over any transport (see the header).
#include "parallel/device_transfers.h"

#include <vector>

namespace deepnet {

DeviceTransfers::DeviceTransfers(Communicator& comm, const Backend& backend)
    : comm_(comm), backend_(backend), staged_(!comm.ReadsDeviceMemory(backend.device())) {}

Tensor DeviceTransfers::Stage(const Tensor& like) {
  return staging_.AcquireHostStaging(like.shape(), like.dtype(), backend_);
}

StatusOr<Request> DeviceTransfers::Isend(const Tensor& tensor, int peer, int tag) {
  if (!staged_ || tensor.device().is_cpu()) return comm_.Isend(tensor, peer, tag);
  Tensor host = Stage(tensor);
  backend_.Copy(host, tensor);  // waits for the device: the buffer holds the data when posted
  ASSIGN_OR_RETURN(const Request request, comm_.Isend(host, peer, tag));
  in_flight_[request.id()] = {std::move(host), Tensor()};
  return request;
}

StatusOr<Request> DeviceTransfers::Irecv(const Tensor& tensor, int peer, int tag) {
  if (!staged_ || tensor.device().is_cpu()) return comm_.Irecv(tensor, peer, tag);
  Tensor host = Stage(tensor);
  ASSIGN_OR_RETURN(const Request request, comm_.Irecv(host, peer, tag));
  in_flight_[request.id()] = {std::move(host), tensor};
  return request;
}

Status DeviceTransfers::WaitAll(std::span<Request> requests) {
  std::vector<Staged> staged;
  for (const Request& request : requests) {
    const auto it = in_flight_.find(request.id());
    if (it == in_flight_.end()) continue;
    staged.push_back(std::move(it->second));
    in_flight_.erase(it);
  }
  RETURN_IF_ERROR(comm_.WaitAll(requests));
  for (const Staged& s : staged) {
    if (s.device.defined()) backend_.Copy(s.device, s.host);
  }
  return OkStatus();
}

Status DeviceTransfers::Send(const Tensor& tensor, int peer, int tag) {
  ASSIGN_OR_RETURN(Request request, Isend(tensor, peer, tag));
  return WaitAll(std::span<Request>(&request, 1));
}

Status DeviceTransfers::Recv(const Tensor& tensor, int peer, int tag) {
  ASSIGN_OR_RETURN(Request request, Irecv(tensor, peer, tag));
  return WaitAll(std::span<Request>(&request, 1));
}

Status DeviceTransfers::AllReduceSum(const Tensor& tensor) {
  if (!staged_ || tensor.device().is_cpu()) return comm_.AllReduceSum(tensor);
  Tensor host = Stage(tensor);
  backend_.Copy(host, tensor);
  RETURN_IF_ERROR(comm_.AllReduceSum(host));
  backend_.Copy(tensor, host);
  return OkStatus();
}

}  // namespace deepnet
