// NcclCommunicator: NCCL's non-blocking communicator with every wait polled against a deadline.
#include "runtime/nccl_communicator.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

namespace deepnet {
namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point DeadlineAfter(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Between two polls: yield for a few milliseconds (most waits end quickly), then sleep briefly so
// that waiting ranks leave the cores to working ones.
class Backoff {
 public:
  void Pause() {
    if (Clock::now() - start_ < std::chrono::milliseconds(5)) {
      std::this_thread::yield();
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

 private:
  Clock::time_point start_ = Clock::now();
};

bool Started(ncclResult_t result) { return result == ncclSuccess || result == ncclInProgress; }

std::string NcclError(ncclResult_t result, ncclComm_t comm) {
  std::string text = ncclGetErrorString(result);
  const char* last = comm != nullptr ? ncclGetLastError(comm) : nullptr;
  if (last != nullptr && *last != '\0') text += " (" + std::string(last) + ")";
  return text;
}

Status CudaStatus(cudaError_t error, const std::string& what) {
  if (error == cudaSuccess) return OkStatus();
  cudaGetLastError();  // clear it, so that later calls are not blamed
  return Unavailable(what + ": " + cudaGetErrorString(error));
}

// Selects this process's GPU: its rank among the `local_size` ranks of its node.
StatusOr<int> PickDevice(int local_rank, int local_size) {
  int devices = 0;
  RETURN_IF_ERROR(CudaStatus(cudaGetDeviceCount(&devices), "cudaGetDeviceCount"));
  if (devices < local_size) {
    return FailedPrecondition(std::to_string(local_size) + " ranks on this node but " +
                              std::to_string(devices) +
                              " GPU(s): NCCL needs a GPU of its own for every rank");
  }
  RETURN_IF_ERROR(CudaStatus(cudaSetDevice(local_rank), "cudaSetDevice"));
  return local_rank;
}

}  // namespace

// A CUDA event recorded after a launch; the requests of one NCCL group share it.
class NcclCommunicator::Event {
 public:
  static StatusOr<std::shared_ptr<Event>> RecordOn(cudaStream_t stream) {
    cudaEvent_t event = nullptr;
    RETURN_IF_ERROR(
        CudaStatus(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), "cudaEventCreate"));
    std::shared_ptr<Event> holder(new Event(event));
    RETURN_IF_ERROR(CudaStatus(cudaEventRecord(event, stream), "cudaEventRecord"));
    return holder;
  }
  ~Event() { cudaEventDestroy(event_); }

  // true: complete; false: not yet.
  StatusOr<bool> Query() const {
    const cudaError_t error = cudaEventQuery(event_);
    if (error == cudaErrorNotReady) {
      cudaGetLastError();  // "not ready" is no error; keep it from being reported as one later
      return false;
    }
    RETURN_IF_ERROR(CudaStatus(error, "cudaEventQuery"));
    return true;
  }

 private:
  explicit Event(cudaEvent_t event) : event_(event) {}
  cudaEvent_t event_;
};

std::string NcclCommunicator::PointToPoint::Describe(const NcclCommunicator& comm) const {
  return std::string(is_send ? "send to " : "recv from ") + comm.DescribeRank(peer) + " (tag " +
         std::to_string(tag) + ", " + std::to_string(bytes) + " bytes)";
}

// ---- set-up ----

StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(MpiCommunicator& mpi,
                                                                     double timeout_seconds) {
  // A private MPI duplicate of the ranks: set-up and diagnosis never mix with the caller's traffic.
  ASSIGN_OR_RETURN(std::unique_ptr<Communicator> dup, mpi.Split(0, mpi.rank()));
  std::unique_ptr<MpiCommunicator> twin(static_cast<MpiCommunicator*>(dup.release()));
  twin->set_timeout_seconds(timeout_seconds);

  // Every rank learns whether all ranks have a GPU before any of them enters NCCL.
  const StatusOr<int> device = PickDevice(twin->local_rank(), twin->local_size());
  double ranks_without_gpu = device.ok() ? 0.0 : 1.0;
  RETURN_IF_ERROR(twin->AllReduceSum(&ranks_without_gpu, 1));
  const std::string prefix =
      "nccl rank " + std::to_string(twin->rank()) + "/" + std::to_string(twin->size());
  if (!device.ok()) return device.status().WithContext(prefix);
  if (ranks_without_gpu > 0) {
    return Unavailable(prefix + ": " + std::to_string(static_cast<int>(ranks_without_gpu)) +
                       " other rank(s) have no usable GPU; NCCL was not started");
  }

  struct {
    ncclUniqueId id;
    int ok;
  } unique{};
  if (twin->rank() == 0) unique.ok = ncclGetUniqueId(&unique.id) == ncclSuccess ? 1 : 0;
  RETURN_IF_ERROR(twin->Broadcast(&unique, sizeof(unique), 0));
  if (!unique.ok) return Unavailable(prefix + ": rank 0 could not create the NCCL unique id");

  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;  // every wait below is ours, with a deadline
  ncclComm_t comm = nullptr;
  const ncclResult_t result =
      ncclCommInitRankConfig(&comm, twin->size(), unique.id, twin->rank(), &config);
  std::unique_ptr<NcclCommunicator> self(
      new NcclCommunicator(comm, std::move(twin), *device, "nccl", timeout_seconds));
  if (!Started(result)) {
    return self->Fail(
        Unavailable(self->Prefix() + ": ncclCommInitRankConfig: " + NcclError(result, comm)));
  }
  const Status joined = self->WaitEnqueued(comm, "ncclCommInitRank");
  if (!joined.ok()) return self->Fail(joined);
  RETURN_IF_ERROR(self->Start());
  return self;
}

NcclCommunicator::NcclCommunicator(ncclComm_t comm, std::unique_ptr<MpiCommunicator> twin,
                                   int device, std::string name, double timeout_seconds)
    : Communicator(std::move(name), timeout_seconds),
      comm_(comm),
      twin_(std::move(twin)),
      device_(device),
      rank_(twin_->rank()),
      size_(twin_->size()) {}

Status NcclCommunicator::Start() {
  RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                             Prefix() + ": cudaStreamCreate"));
  RETURN_IF_ERROR(CudaStatus(cudaEventCreateWithFlags(&compute_ready_, cudaEventDisableTiming),
                             Prefix() + ": cudaEventCreate"));
  void* scratch = nullptr;
  RETURN_IF_ERROR(CudaStatus(cudaMalloc(&scratch, sizeof(float)), Prefix() + ": cudaMalloc"));
  barrier_scratch_ = static_cast<float*>(scratch);
  return CudaStatus(cudaMemset(barrier_scratch_, 0, sizeof(float)), Prefix() + ": cudaMemset");
}

NcclCommunicator::~NcclCommunicator() {
  requests_.clear();  // pending events may be destroyed: CUDA frees them once they complete
  if (comm_ != nullptr) {
    const ncclResult_t result = health().ok() ? ncclCommFinalize(comm_) : ncclInternalError;
    const Status finalized =
        Started(result) ? WaitEnqueued(comm_, "ncclCommFinalize")
                        : Unavailable(Prefix() + ": not finalized: " + NcclError(result, comm_));
    if (finalized.ok()) {
      ncclCommDestroy(comm_);
    } else {
      if (health().ok()) LOG(WARNING) << finalized;
      ncclCommAbort(comm_);
    }
  }
  if (barrier_scratch_ != nullptr) cudaFree(barrier_scratch_);
  if (compute_ready_ != nullptr) cudaEventDestroy(compute_ready_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

// ---- waiting ----

Status NcclCommunicator::Fail(Status status) {
  if (comm_ != nullptr) {
    ncclCommAbort(comm_);  // releases the GPU and peers; the communicator is done
    comm_ = nullptr;
  }
  pending_.clear();  // never launched now
  MarkBroken(status);
  return status;
}

Status NcclCommunicator::WaitEnqueued(ncclComm_t comm, const std::string& what) {
  const auto deadline = DeadlineAfter(timeout_seconds());
  Backoff backoff;
  while (true) {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t queried = ncclCommGetAsyncError(comm, &state);
    if (queried != ncclSuccess) {
      return Unavailable(Prefix() + ": " + what + ": " + NcclError(queried, comm));
    }
    if (state == ncclSuccess) return OkStatus();
    if (state != ncclInProgress) {
      return Unavailable(Prefix() + ": " + what + ": " + NcclError(state, comm));
    }
    if (Clock::now() >= deadline) {
      return DeadlineExceeded(Prefix() + ": " + what + " did not finish within " +
                              FormatSeconds(timeout_seconds()));
    }
    backoff.Pause();
  }
}

StatusOr<bool> NcclCommunicator::PollEvents(const std::vector<Event*>& events) {
  const auto deadline = DeadlineAfter(timeout_seconds());
  Backoff backoff;
  while (true) {
    bool all_done = true;
    for (Event* event : events) {
      StatusOr<bool> done = event->Query();
      if (!done.ok()) return Fail(done.status().WithContext(Prefix()));
      all_done = all_done && *done;
    }
    if (all_done) return true;
    ncclResult_t state = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess ||
        (state != ncclSuccess && state != ncclInProgress)) {
      return Fail(Unavailable(Prefix() + ": NCCL failed: " + NcclError(state, comm_)));
    }
    if (Clock::now() >= deadline) return false;
    backoff.Pause();
  }
}

Status NcclCommunicator::OrderAfterCompute() {
  if (compute_stream_ == nullptr) return OkStatus();
  RETURN_IF_ERROR(
      CudaStatus(cudaEventRecord(compute_ready_, compute_stream_), Prefix() + ": cudaEventRecord"));
  return CudaStatus(cudaStreamWaitEvent(stream_, compute_ready_, 0),
                    Prefix() + ": cudaStreamWaitEvent");
}

Status NcclCommunicator::CheckDeviceBuffer(const void* data, size_t bytes, const char* what) const {
  if (bytes == 0) return OkStatus();
  cudaPointerAttributes attributes{};
  const cudaError_t error = cudaPointerGetAttributes(&attributes, data);
  if (error != cudaSuccess) cudaGetLastError();
  if (error != cudaSuccess ||
      (attributes.type != cudaMemoryTypeDevice && attributes.type != cudaMemoryTypeManaged)) {
    return InvalidArgument(Prefix() + ": " + what + " is not device memory (NCCL moves GPU " +
                           "buffers; use Tensors on the CUDA device)");
  }
  return OkStatus();
}

// ---- point-to-point ----

StatusOr<Request> NcclCommunicator::IsendImpl(const void* data, size_t bytes, int peer, int tag) {
  return Post(/*is_send=*/true, const_cast<void*>(data), bytes, peer, tag);
}

StatusOr<Request> NcclCommunicator::IrecvImpl(void* data, size_t bytes, int peer, int tag) {
  return Post(/*is_send=*/false, data, bytes, peer, tag);
}

StatusOr<Request> NcclCommunicator::Post(bool is_send, void* data, size_t bytes, int peer,
                                         int tag) {
  RETURN_IF_ERROR(CheckDeviceBuffer(data, bytes, is_send ? "send buffer" : "recv buffer"));
  const uint64_t id = next_request_id_++;
  requests_[id] = PointToPoint{is_send, data, bytes, peer, tag, nullptr};
  if (bytes > 0) pending_.push_back(id);  // empty messages complete at once on both sides
  return Request(id);
}

Status NcclCommunicator::LaunchPending() {
  if (pending_.empty()) return OkStatus();
  if (!health().ok()) return health();
  RETURN_IF_ERROR(OrderAfterCompute());
  ncclResult_t result = ncclGroupStart();
  for (size_t i = 0; i < pending_.size() && Started(result); ++i) {
    const PointToPoint& op = requests_.at(pending_[i]);
    result = op.is_send ? ncclSend(op.data, op.bytes, ncclUint8, op.peer, comm_, stream_)
                        : ncclRecv(op.data, op.bytes, ncclUint8, op.peer, comm_, stream_);
  }
  const ncclResult_t ended = ncclGroupEnd();
  if (!Started(result) || !Started(ended)) {
    return Fail(Unavailable(
        Prefix() + ": send/recv group: " + NcclError(Started(result) ? ended : result, comm_)));
  }
  const Status enqueued = WaitEnqueued(comm_, "send/recv group");
  if (!enqueued.ok()) return Fail(enqueued);
  StatusOr<std::shared_ptr<Event>> done = Event::RecordOn(stream_);
  if (!done.ok()) return Fail(done.status().WithContext(Prefix()));
  for (uint64_t id : pending_) requests_.at(id).done = *done;
  pending_.clear();
  return OkStatus();
}

Status NcclCommunicator::GroupEndImpl() { return LaunchPending(); }

Status NcclCommunicator::WaitAllImpl(std::span<Request> requests) {
  for (const Request& request : requests) {
    if (!requests_.contains(request.id())) {
      return InvalidArgument(Prefix() + ": Wait on a request this communicator does not hold");
    }
  }
  // Requests still queued start now, together (those waited for and any posted before them).
  const Status launched = LaunchPending();
  std::vector<PointToPoint> ops;
  for (const Request& request : requests) {
    auto it = requests_.find(request.id());
    ops.push_back(std::move(it->second));
    requests_.erase(it);
  }
  RETURN_IF_ERROR(launched);

  std::vector<Event*> events;
  for (const PointToPoint& op : ops) {
    if (op.done != nullptr) events.push_back(op.done.get());
  }
  ASSIGN_OR_RETURN(const bool done, PollEvents(events));
  if (done) return OkStatus();
  std::string unfinished;
  for (const PointToPoint& op : ops) {
    if (op.done == nullptr) continue;
    StatusOr<bool> finished = op.done->Query();
    if (finished.ok() && *finished) continue;
    unfinished += (unfinished.empty() ? "" : " and ") + op.Describe(*this);
  }
  return Fail(DeadlineExceeded(Prefix() + ": " + unfinished + " did not complete within " +
                               FormatSeconds(timeout_seconds())));
}

// ---- collectives ----

Status NcclCommunicator::RunCollective(ncclResult_t launched, const std::string& op,
                                       const std::string& detail) {
  const std::string what = op + " #" + std::to_string(collective_seq_++) + " (" + detail + ")";
  if (!Started(launched)) {
    return Fail(Unavailable(Prefix() + ": " + what + ": " + NcclError(launched, comm_)));
  }
  const Status enqueued = WaitEnqueued(comm_, what);
  if (!enqueued.ok()) return Fail(enqueued);
  StatusOr<std::shared_ptr<Event>> done = Event::RecordOn(stream_);
  if (!done.ok()) return Fail(done.status().WithContext(Prefix()));
  ASSIGN_OR_RETURN(const bool finished, PollEvents({done->get()}));
  if (finished) return OkStatus();
  // Which ranks never came? The MPI twin's barrier names those that do not reach it either.
  std::string check = " (every rank reached the MPI check)";
  twin_->set_timeout_seconds(std::clamp(timeout_seconds() / 4, 0.05, 2.0));
  const Status mpi_check = twin_->Barrier();
  if (!mpi_check.ok()) check = " (MPI check: " + mpi_check.message() + ")";
  return Fail(DeadlineExceeded(Prefix() + ": " + what + " did not complete within " +
                               FormatSeconds(timeout_seconds()) + check));
}

Status NcclCommunicator::AllReduceSumImpl(float* data, size_t count) {
  RETURN_IF_ERROR(CheckDeviceBuffer(data, count * sizeof(float), "all-reduce buffer"));
  RETURN_IF_ERROR(LaunchPending());
  RETURN_IF_ERROR(OrderAfterCompute());
  return RunCollective(ncclAllReduce(data, data, count, ncclFloat, ncclSum, comm_, stream_),
                       "all-reduce", "f32, " + std::to_string(count) + " elements");
}

Status NcclCommunicator::AllReduceSumImpl(double* data, size_t count) {
  RETURN_IF_ERROR(CheckDeviceBuffer(data, count * sizeof(double), "all-reduce buffer"));
  RETURN_IF_ERROR(LaunchPending());
  RETURN_IF_ERROR(OrderAfterCompute());
  return RunCollective(ncclAllReduce(data, data, count, ncclDouble, ncclSum, comm_, stream_),
                       "all-reduce", "f64, " + std::to_string(count) + " elements");
}

Status NcclCommunicator::BroadcastImpl(void* data, size_t bytes, int root) {
  RETURN_IF_ERROR(CheckDeviceBuffer(data, bytes, "broadcast buffer"));
  RETURN_IF_ERROR(LaunchPending());
  RETURN_IF_ERROR(OrderAfterCompute());
  return RunCollective(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_),
                       "broadcast",
                       "from " + DescribeRank(root) + ", " + std::to_string(bytes) + " bytes");
}

Status NcclCommunicator::AllGatherImpl(const void* send, size_t bytes_per_rank, void* recv) {
  RETURN_IF_ERROR(CheckDeviceBuffer(send, bytes_per_rank, "all-gather send buffer"));
  RETURN_IF_ERROR(CheckDeviceBuffer(recv, bytes_per_rank * size_, "all-gather recv buffer"));
  RETURN_IF_ERROR(LaunchPending());
  RETURN_IF_ERROR(OrderAfterCompute());
  // In place when send is this rank's slot of recv, which NCCL supports as such.
  return RunCollective(ncclAllGather(send, recv, bytes_per_rank, ncclUint8, comm_, stream_),
                       "all-gather", std::to_string(bytes_per_rank) + " bytes per rank");
}

Status NcclCommunicator::BarrierImpl() {
  RETURN_IF_ERROR(LaunchPending());
  RETURN_IF_ERROR(OrderAfterCompute());
  return RunCollective(
      ncclAllReduce(barrier_scratch_, barrier_scratch_, 1, ncclFloat, ncclSum, comm_, stream_),
      "barrier", "no data");
}

StatusOr<std::unique_ptr<Communicator>> NcclCommunicator::SplitImpl(int color, int key) {
  RETURN_IF_ERROR(LaunchPending());
  // The MPI split first: it is guarded and names ranks that never arrive.
  ASSIGN_OR_RETURN(std::unique_ptr<Communicator> twin_child, twin_->Split(color, key));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  ncclComm_t child = nullptr;
  const ncclResult_t result =
      ncclCommSplit(comm_, color < 0 ? NCCL_SPLIT_NOCOLOR : color, key, &child, &config);
  if (!Started(result)) {
    return Fail(Unavailable(Prefix() + ": ncclCommSplit: " + NcclError(result, comm_)));
  }
  Status split = WaitEnqueued(comm_, "split");
  if (split.ok() && child != nullptr) split = WaitEnqueued(child, "split (new communicator)");
  if (!split.ok()) {
    if (child != nullptr) ncclCommAbort(child);
    return Fail(split);
  }
  if (twin_child == nullptr) return std::unique_ptr<Communicator>();
  std::unique_ptr<NcclCommunicator> created(new NcclCommunicator(
      child, std::unique_ptr<MpiCommunicator>(static_cast<MpiCommunicator*>(twin_child.release())),
      device_, name() + "/split(" + std::to_string(color) + ")", timeout_seconds()));
  RETURN_IF_ERROR(created->Start());
  created->set_compute_stream(compute_stream_);  // groups order after the same compute work
  return std::unique_ptr<Communicator>(std::move(created));
}

}  // namespace deepnet
