// Communicator: argument checks and conveniences shared by every transport.
#include "runtime/communicator.h"

#include <cstdio>
#include <utility>

namespace deepnet {

std::string FormatSeconds(double seconds) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g s", seconds);
  return text;
}

Communicator::Communicator(std::string name, double timeout_seconds)
    : name_(std::move(name)), timeout_seconds_(timeout_seconds) {}

std::string Communicator::DescribeRank(int rank) const { return "rank " + std::to_string(rank); }

std::string Communicator::DescribeRanks(const std::vector<int>& ranks) const {
  std::string text;
  for (int r : ranks) {
    if (!text.empty()) text += ", ";
    text += DescribeRank(r);
  }
  return text;
}

std::string Communicator::Prefix() const {
  return name_ + " rank " + std::to_string(rank()) + "/" + std::to_string(size());
}

void Communicator::set_timeout_seconds(double seconds) {
  CHECK_GT(seconds, 0.0) << "a communicator timeout must be positive";
  timeout_seconds_ = seconds;
}

void Communicator::MarkBroken(const Status& status) {
  if (broken_.ok() && !status.ok()) broken_ = status;
}

Status Communicator::CheckUsable(std::string_view op) const {
  if (broken_.ok()) return OkStatus();
  return FailedPrecondition(
      Prefix() + ": " + std::string(op) +
      " on a communicator made unusable by an earlier failure: " + broken_.message());
}

Status Communicator::CheckPeer(int peer, int tag, const void* data, size_t bytes) const {
  if (peer < 0 || peer >= size()) {
    return InvalidArgument(Prefix() + ": peer " + std::to_string(peer) + " is outside [0, " +
                           std::to_string(size()) + ")");
  }
  if (tag < 0 || tag > kMaxTag) {
    return InvalidArgument(Prefix() + ": tag " + std::to_string(tag) + " is outside [0, " +
                           std::to_string(kMaxTag) + "]");
  }
  if (data == nullptr && bytes > 0) {
    return InvalidArgument(Prefix() + ": null buffer for " + std::to_string(bytes) + " bytes");
  }
  return OkStatus();
}

Status Communicator::CheckCollective(std::string_view op) const {
  RETURN_IF_ERROR(CheckUsable(op));
  if (in_group()) {
    return FailedPrecondition(Prefix() + ": " + std::string(op) +
                              " inside GroupStart/GroupEnd (a group holds only Isend/Irecv)");
  }
  return OkStatus();
}

StatusOr<Request> Communicator::Isend(const void* data, size_t bytes, int peer, int tag) {
  RETURN_IF_ERROR(CheckUsable("send"));
  RETURN_IF_ERROR(CheckPeer(peer, tag, data, bytes));
  return IsendImpl(data, bytes, peer, tag);
}

StatusOr<Request> Communicator::Irecv(void* data, size_t bytes, int peer, int tag) {
  RETURN_IF_ERROR(CheckUsable("recv"));
  RETURN_IF_ERROR(CheckPeer(peer, tag, data, bytes));
  return IrecvImpl(data, bytes, peer, tag);
}

StatusOr<Request> Communicator::Isend(const Tensor& tensor, int peer, int tag) {
  return Isend(tensor.raw_data(), tensor.nbytes(), peer, tag);
}

StatusOr<Request> Communicator::Irecv(const Tensor& tensor, int peer, int tag) {
  return Irecv(tensor.raw_data(), tensor.nbytes(), peer, tag);
}

Status Communicator::Wait(Request& request) { return WaitAll(std::span<Request>(&request, 1)); }

Status Communicator::WaitAll(std::span<Request> requests) {
  if (in_group()) {
    return FailedPrecondition(Prefix() +
                              ": Wait inside GroupStart/GroupEnd (a group starts at GroupEnd)");
  }
  std::vector<Request> pending;
  for (Request& request : requests) {
    if (request.pending()) pending.push_back(request);
    request.Reset();
  }
  if (pending.empty()) return OkStatus();
  return WaitAllImpl(pending);
}

Status Communicator::Send(const void* data, size_t bytes, int peer, int tag) {
  ASSIGN_OR_RETURN(Request request, Isend(data, bytes, peer, tag));
  return Wait(request);
}

Status Communicator::Recv(void* data, size_t bytes, int peer, int tag) {
  ASSIGN_OR_RETURN(Request request, Irecv(data, bytes, peer, tag));
  return Wait(request);
}

Status Communicator::Send(const Tensor& tensor, int peer, int tag) {
  return Send(tensor.raw_data(), tensor.nbytes(), peer, tag);
}

Status Communicator::Recv(const Tensor& tensor, int peer, int tag) {
  return Recv(tensor.raw_data(), tensor.nbytes(), peer, tag);
}

void Communicator::GroupStart() {
  if (group_depth_++ == 0) GroupStartImpl();
}

Status Communicator::GroupEnd() {
  if (group_depth_ == 0) return FailedPrecondition(Prefix() + ": GroupEnd without GroupStart");
  if (--group_depth_ > 0) return OkStatus();  // nested groups start with the outermost
  return GroupEndImpl();
}

Status Communicator::AllReduceSum(float* data, size_t count) {
  RETURN_IF_ERROR(CheckCollective("all-reduce"));
  if (data == nullptr && count > 0) return InvalidArgument(Prefix() + ": all-reduce of null");
  return AllReduceSumImpl(data, count);
}

Status Communicator::AllReduceSum(double* data, size_t count) {
  RETURN_IF_ERROR(CheckCollective("all-reduce"));
  if (data == nullptr && count > 0) return InvalidArgument(Prefix() + ": all-reduce of null");
  return AllReduceSumImpl(data, count);
}

Status Communicator::AllReduceSum(const Tensor& tensor) {
  const size_t count = static_cast<size_t>(tensor.numel());
  switch (tensor.dtype()) {
    case DType::kF32:
      return AllReduceSum(static_cast<float*>(tensor.raw_data()), count);
    case DType::kF64:
      return AllReduceSum(static_cast<double*>(tensor.raw_data()), count);
    default:
      return Unimplemented(Prefix() + ": all-reduce of " + std::string(DTypeName(tensor.dtype())));
  }
}

Status Communicator::Broadcast(void* data, size_t bytes, int root) {
  RETURN_IF_ERROR(CheckCollective("broadcast"));
  if (root < 0 || root >= size()) {
    return InvalidArgument(Prefix() + ": broadcast root " + std::to_string(root) +
                           " is outside [0, " + std::to_string(size()) + ")");
  }
  if (data == nullptr && bytes > 0) return InvalidArgument(Prefix() + ": broadcast of null");
  return BroadcastImpl(data, bytes, root);
}

Status Communicator::Broadcast(const Tensor& tensor, int root) {
  return Broadcast(tensor.raw_data(), tensor.nbytes(), root);
}

Status Communicator::AllGather(const void* send, size_t bytes_per_rank, void* recv) {
  RETURN_IF_ERROR(CheckCollective("all-gather"));
  if ((send == nullptr || recv == nullptr) && bytes_per_rank > 0) {
    return InvalidArgument(Prefix() + ": all-gather of null");
  }
  return AllGatherImpl(send, bytes_per_rank, recv);
}

Status Communicator::Barrier() {
  RETURN_IF_ERROR(CheckCollective("barrier"));
  return BarrierImpl();
}

StatusOr<std::unique_ptr<Communicator>> Communicator::Split(int color, int key) {
  RETURN_IF_ERROR(CheckCollective("split"));
  return SplitImpl(color, key);
}

}  // namespace deepnet
