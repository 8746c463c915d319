// MpiCommunicator: nonblocking MPI calls completed by polling against a deadline.
#include "runtime/mpi_communicator.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

namespace deepnet {
namespace {

using Clock = std::chrono::steady_clock;

// Tag of the "I am stuck in collective #k" notices on the control communicator.
constexpr int kStuckNoticeTag = 1;

Clock::time_point DeadlineAfter(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Between two MPI_Test calls: yield for a few milliseconds (most waits end quickly and MPI
// progresses only inside MPI calls), then sleep briefly so that waiting ranks leave the cores to
// working ones (tests run more ranks than cores).
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

Status FromMpi(int mpi_error, const std::string& context) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(mpi_error, text, &length);
  int error_class = MPI_ERR_OTHER;
  MPI_Error_class(mpi_error, &error_class);
  std::string message = context + ": " + std::string(text, length);
  switch (error_class) {
    case MPI_ERR_ARG:
    case MPI_ERR_BUFFER:
    case MPI_ERR_COUNT:
    case MPI_ERR_RANK:
    case MPI_ERR_ROOT:
    case MPI_ERR_TAG:
    case MPI_ERR_TRUNCATE:
    case MPI_ERR_TYPE:
      return InvalidArgument(std::move(message));
    default:
      return Unavailable(std::move(message));  // most often a peer or a link that went away
  }
}

// Completes `requests` by polling MPI_Test; false at the deadline. Completed requests become
// MPI_REQUEST_NULL, so the caller sees which are left.
StatusOr<bool> PollRequests(std::vector<MPI_Request>& requests, std::vector<MPI_Status>* statuses,
                            Clock::time_point deadline) {
  Backoff backoff;
  while (true) {
    bool all_done = true;
    for (size_t i = 0; i < requests.size(); ++i) {
      if (requests[i] == MPI_REQUEST_NULL) continue;
      int done = 0;
      MPI_Status status;
      const int error = MPI_Test(&requests[i], &done, &status);
      if (error != MPI_SUCCESS) return FromMpi(error, "MPI_Test");
      if (!done) {
        all_done = false;
      } else if (statuses != nullptr) {
        (*statuses)[i] = status;
      }
    }
    if (all_done) return true;
    if (Clock::now() >= deadline) return false;
    backoff.Pause();
  }
}

std::string DescribeChunks(size_t bytes, size_t chunks) {
  std::string text = std::to_string(bytes) + " bytes";
  if (chunks > 1) text += " in " + std::to_string(chunks) + " chunks";
  return text;
}

}  // namespace

// ---- process setup ----

Status MpiCommunicator::Init(int* argc, char*** argv) {
  int started = 0;
  MPI_Initialized(&started);
  if (started) return OkStatus();
  int provided = MPI_THREAD_SINGLE;
  const int error = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  if (error != MPI_SUCCESS) return FromMpi(error, "MPI_Init_thread");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  if (provided < MPI_THREAD_FUNNELED) {
    return FailedPrecondition("MPI provides thread level " + std::to_string(provided) +
                              ", below MPI_THREAD_FUNNELED");
  }
  return OkStatus();
}

bool MpiCommunicator::initialized() {
  int started = 0, finished = 0;
  MPI_Initialized(&started);
  MPI_Finalized(&finished);
  return started && !finished;
}

Status MpiCommunicator::Finalize() {
  if (!initialized()) return OkStatus();
  const int error = MPI_Finalize();
  return error == MPI_SUCCESS ? OkStatus() : FromMpi(error, "MPI_Finalize");
}

void MpiCommunicator::Abort(int exit_code) {
  std::fflush(nullptr);
  if (initialized()) {
    // The watchdog: MPI_Abort normally ends this process at once; should it block (a launcher
    // that no longer answers), the process ends anyway and the launcher sees it exit.
    std::thread([exit_code] {
      std::this_thread::sleep_for(std::chrono::duration<double>(kAbortGraceSeconds));
      std::_Exit(exit_code);
    }).detach();
    MPI_Abort(MPI_COMM_WORLD, exit_code);
  }
  std::_Exit(exit_code);
}

int MpiCommunicator::WorldRank() {
  int rank = 0;
  if (initialized()) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int MpiCommunicator::WorldSize() {
  int size = 1;
  if (initialized()) MPI_Comm_size(MPI_COMM_WORLD, &size);
  return size;
}

StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::World(double timeout_seconds) {
  if (!initialized()) return FailedPrecondition("MpiCommunicator::World before Init");
  MPI_Comm world = MPI_COMM_NULL;
  std::vector<MPI_Request> dup(1);
  int error = MPI_Comm_idup(MPI_COMM_WORLD, &world, &dup[0]);
  if (error != MPI_SUCCESS) return FromMpi(error, "world: MPI_Comm_idup");
  ASSIGN_OR_RETURN(bool done, PollRequests(dup, nullptr, DeadlineAfter(timeout_seconds)));
  if (!done) {
    return DeadlineExceeded("world: not every process joined within " +
                            FormatSeconds(timeout_seconds));
  }
  ASSIGN_OR_RETURN(auto comm, Create(world, "world", timeout_seconds));
  comm->is_world_ = true;
  RETURN_IF_ERROR(comm->GatherHosts());
  return comm;
}

// Every rank's host, so that errors can name where a missing peer ran. Kept only when the job
// spans several hosts: on one host the error's own "(host ...)" already says it.
Status MpiCommunicator::GatherHosts() {
  std::vector<char> names(static_cast<size_t>(size_) * MPI_MAX_PROCESSOR_NAME, '\0');
  int length = 0;
  MPI_Get_processor_name(names.data() + static_cast<size_t>(rank_) * MPI_MAX_PROCESSOR_NAME,
                         &length);
  RETURN_IF_ERROR(AllGatherImpl(names.data() + static_cast<size_t>(rank_) * MPI_MAX_PROCESSOR_NAME,
                                MPI_MAX_PROCESSOR_NAME, names.data()));
  auto hosts = std::make_shared<std::vector<std::string>>();
  for (int r = 0; r < size_; ++r) {
    const char* name = names.data() + static_cast<size_t>(r) * MPI_MAX_PROCESSOR_NAME;
    hosts->emplace_back(name, strnlen(name, MPI_MAX_PROCESSOR_NAME));
  }
  if (std::any_of(hosts->begin(), hosts->end(),
                  [&](const std::string& h) { return h != hosts->front(); })) {
    world_hosts_ = std::move(hosts);
  }
  return OkStatus();
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::string name, double timeout_seconds)
    : Communicator(std::move(name), timeout_seconds), comm_(comm) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Create(MPI_Comm comm, std::string name,
                                                                   double timeout_seconds) {
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  std::unique_ptr<MpiCommunicator> self(
      new MpiCommunicator(comm, std::move(name), timeout_seconds));
  std::vector<MPI_Request> dup(1);
  RETURN_IF_ERROR(self->Check(MPI_Comm_idup(comm, &self->control_, &dup[0]), "MPI_Comm_idup"));
  ASSIGN_OR_RETURN(bool done, PollRequests(dup, nullptr, DeadlineAfter(timeout_seconds)));
  if (!done) {
    self->control_ = MPI_COMM_NULL;  // never completed: not ours to free
    return DeadlineExceeded(self->Prefix() + ": not every rank joined within " +
                            FormatSeconds(timeout_seconds));
  }
  // Every rank has joined the duplication, so none can be missing from this split.
  MPI_Comm node = MPI_COMM_NULL;
  RETURN_IF_ERROR(self->Check(
      MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, self->rank_, MPI_INFO_NULL, &node),
      "MPI_Comm_split_type"));
  MPI_Comm_rank(node, &self->local_rank_);
  MPI_Comm_size(node, &self->local_size_);
  MPI_Comm_free(&node);

  MPI_Group group, world_group;
  MPI_Comm_group(comm, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world_group);
  std::vector<int> ranks(self->size_);
  for (int r = 0; r < self->size_; ++r) ranks[r] = r;
  self->world_ranks_.resize(self->size_);
  MPI_Group_translate_ranks(group, self->size_, ranks.data(), world_group,
                            self->world_ranks_.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world_group);
  return self;
}

MpiCommunicator::~MpiCommunicator() {
  int finished = 0;
  MPI_Finalized(&finished);
  if (finished) return;
  for (auto& [id, op] : requests_) Abandon(op);
  // A collective that timed out may still be pending on a broken communicator: leave it be.
  if (!health().ok()) return;
  if (control_ != MPI_COMM_NULL) MPI_Comm_free(&control_);
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void MpiCommunicator::Progress() {
  if (comm_ == MPI_COMM_NULL || !health().ok()) return;
  // Any MPI call runs the progress engine; a probe receives nothing, even when it matches.
  int flag = 0;
  MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, MPI_STATUS_IGNORE);
}

std::string MpiCommunicator::DescribeRank(int rank) const {
  std::string text = "rank " + std::to_string(rank);
  if (rank < 0 || rank >= static_cast<int>(world_ranks_.size())) return text;
  const int world_rank = world_ranks_[rank];
  std::string details = is_world_ ? "" : "world rank " + std::to_string(world_rank);
  if (world_hosts_ != nullptr && world_rank >= 0 &&
      world_rank < static_cast<int>(world_hosts_->size())) {
    details += (details.empty() ? "host " : ", host ") + (*world_hosts_)[world_rank];
  }
  return details.empty() ? text : text + " (" + details + ")";
}

Status MpiCommunicator::Check(int mpi_error, const std::string& what) const {
  if (mpi_error == MPI_SUCCESS) return OkStatus();
  return FromMpi(mpi_error, Prefix() + ": " + what);
}

// ---- point-to-point ----

StatusOr<Request> MpiCommunicator::IsendImpl(const void* data, size_t bytes, int peer, int tag) {
  return Post(/*is_send=*/true, const_cast<void*>(data), bytes, peer, tag);
}

StatusOr<Request> MpiCommunicator::IrecvImpl(void* data, size_t bytes, int peer, int tag) {
  return Post(/*is_send=*/false, data, bytes, peer, tag);
}

StatusOr<Request> MpiCommunicator::Post(bool is_send, void* data, size_t bytes, int peer, int tag) {
  PointToPoint op;
  op.is_send = is_send;
  op.peer = peer;
  op.tag = tag;
  op.bytes = bytes;
  char* next = static_cast<char*>(data);
  size_t left = bytes;
  do {  // a zero-byte message is one empty chunk
    const int chunk = static_cast<int>(std::min(left, max_chunk_bytes_));
    MPI_Request request;
    const int error = is_send ? MPI_Isend(next, chunk, MPI_BYTE, peer, tag, comm_, &request)
                              : MPI_Irecv(next, chunk, MPI_BYTE, peer, tag, comm_, &request);
    if (error != MPI_SUCCESS) {
      Abandon(op);
      return Check(error,
                   std::string(is_send ? "MPI_Isend to " : "MPI_Irecv from ") + DescribeRank(peer));
    }
    op.requests.push_back(request);
    op.chunk_bytes.push_back(chunk);
    next += chunk;
    left -= chunk;
  } while (left > 0);
  const uint64_t id = next_request_id_++;
  requests_.emplace(id, std::move(op));
  return Request(id);
}

Status MpiCommunicator::WaitAllImpl(std::span<Request> requests) {
  std::vector<PointToPoint> ops;
  for (const Request& request : requests) {
    auto it = requests_.find(request.id());
    if (it == requests_.end()) {
      for (auto& op : ops) Abandon(op);
      return InvalidArgument(Prefix() + ": Wait on a request this communicator does not hold");
    }
    ops.push_back(std::move(it->second));
    requests_.erase(it);
  }
  std::vector<MPI_Request> all;
  for (const auto& op : ops) all.insert(all.end(), op.requests.begin(), op.requests.end());
  std::vector<MPI_Status> statuses(all.size(), MPI_Status{});
  StatusOr<bool> done = PollRequests(all, &statuses, DeadlineAfter(timeout_seconds()));

  // Hand the unfinished MPI requests back to their ops, then judge.
  size_t next = 0;
  std::string unfinished;
  Status failure = done.ok() ? OkStatus() : done.status().WithContext(Prefix());
  for (auto& op : ops) {
    bool op_done = true;
    for (size_t c = 0; c < op.requests.size(); ++c, ++next) {
      op.requests[c] = all[next];
      if (all[next] != MPI_REQUEST_NULL) {
        op_done = false;
        continue;
      }
      if (op.is_send || !failure.ok()) continue;  // after an MPI error, statuses are not set
      int received = 0;
      MPI_Get_count(&statuses[next], MPI_BYTE, &received);
      if (received != op.chunk_bytes[c]) {
        failure = InvalidArgument(Prefix() + ": recv from " + DescribeRank(op.peer) + " (tag " +
                                  std::to_string(op.tag) + ") expected " +
                                  std::to_string(op.chunk_bytes[c]) + " bytes, got " +
                                  std::to_string(received));
      }
    }
    if (!op_done) {
      unfinished += (unfinished.empty() ? "" : " and ") +
                    std::string(op.is_send ? "send to " : "recv from ") + DescribeRank(op.peer) +
                    " (tag " + std::to_string(op.tag) + ", " +
                    DescribeChunks(op.bytes, op.requests.size()) + ")";
      Abandon(op);
    }
  }
  if (done.ok() && !*done) {
    failure = DeadlineExceeded(Prefix() + ": " + unfinished + " did not complete within " +
                               FormatSeconds(timeout_seconds()));
  }
  return failure;
}

// Gives up on an unfinished operation: a receive is cancelled (so no late message lands in the
// buffer); a send cannot be cancelled reliably and is released to finish, or not, on its own.
void MpiCommunicator::Abandon(PointToPoint& op) {
  for (MPI_Request& request : op.requests) {
    if (request == MPI_REQUEST_NULL) continue;
    if (!op.is_send) {
      MPI_Cancel(&request);
      std::vector<MPI_Request> cancelled = {request};
      StatusOr<bool> done = PollRequests(cancelled, nullptr, DeadlineAfter(0.1));
      if (done.ok() && *done) {
        request = MPI_REQUEST_NULL;
        continue;
      }
    }
    MPI_Request_free(&request);
  }
}

// ---- collectives ----

Status MpiCommunicator::WaitCollective(std::vector<MPI_Request>& requests, const std::string& op,
                                       const std::string& detail) {
  const int64_t seq = collective_seq_++;
  StatusOr<bool> done = PollRequests(requests, nullptr, DeadlineAfter(timeout_seconds()));
  Status failure;
  if (!done.ok()) {
    failure = done.status().WithContext(Prefix() + ": " + op);
  } else if (!*done) {
    // A pending collective cannot be cancelled or freed: its requests are left to MPI.
    const std::vector<int> missing = RanksNotReaching(seq);
    failure = DeadlineExceeded(Prefix() + ": " + op + " #" + std::to_string(seq) + " (" + detail +
                               ") did not complete within " + FormatSeconds(timeout_seconds()) +
                               (missing.empty() ? " (every rank reached it)"
                                                : " (missing: " + DescribeRanks(missing) + ")"));
  }
  MarkBroken(failure);
  return failure;
}

// Tells every peer that this rank is stuck in collective `seq`, and listens for the same notice
// from the others for a grace period. The ranks never heard from are the missing ones (those
// that timed out too are heard: they entered the collective at about the same time).
std::vector<int> MpiCommunicator::RanksNotReaching(int64_t seq) {
  auto* notice = new int64_t(seq);  // outlives a send that never completes (then leaked)
  std::vector<MPI_Request> sends;
  for (int q = 0; q < size_; ++q) {
    if (q == rank_) continue;
    MPI_Request request;
    if (MPI_Isend(notice, 1, MPI_INT64_T, q, kStuckNoticeTag, control_, &request) == MPI_SUCCESS) {
      sends.push_back(request);
    }
  }
  std::vector<bool> heard(size_, false);
  heard[rank_] = true;
  int heard_count = 1;
  const double grace = std::clamp(timeout_seconds() / 4, 0.05, 2.0);
  const auto deadline = DeadlineAfter(grace);
  Backoff backoff;
  while (heard_count < size_ && Clock::now() < deadline) {
    int arrived = 0;
    MPI_Status status;
    MPI_Iprobe(MPI_ANY_SOURCE, kStuckNoticeTag, control_, &arrived, &status);
    if (!arrived) {
      backoff.Pause();
      continue;
    }
    int64_t their_seq = -1;
    MPI_Recv(&their_seq, 1, MPI_INT64_T, status.MPI_SOURCE, kStuckNoticeTag, control_,
             MPI_STATUS_IGNORE);
    if (their_seq == seq && !heard[status.MPI_SOURCE]) {
      heard[status.MPI_SOURCE] = true;
      ++heard_count;
    }
  }
  StatusOr<bool> sent = PollRequests(sends, nullptr, DeadlineAfter(0.1));
  if (sent.ok() && *sent) {
    delete notice;
  } else {
    for (MPI_Request& request : sends) {
      if (request != MPI_REQUEST_NULL) MPI_Request_free(&request);
    }
  }
  std::vector<int> missing;
  for (int q = 0; q < size_; ++q) {
    if (!heard[q]) missing.push_back(q);
  }
  return missing;
}

template <typename T>
Status MpiCommunicator::AllReduce(T* data, size_t count, MPI_Datatype type, const char* type_name) {
  const size_t chunk_count = std::max<size_t>(1, max_chunk_bytes_ / sizeof(T));
  std::vector<MPI_Request> requests;
  size_t done = 0;
  do {  // chunks are independent collectives, matched in post order on every rank
    const int n = static_cast<int>(std::min(count - done, chunk_count));
    MPI_Request request;
    RETURN_IF_ERROR(
        Check(MPI_Iallreduce(MPI_IN_PLACE, data + done, n, type, MPI_SUM, comm_, &request),
              "MPI_Iallreduce"));
    requests.push_back(request);
    done += n;
  } while (done < count);
  return WaitCollective(requests, "all-reduce",
                        std::string(type_name) + ", " + std::to_string(count) + " elements");
}

Status MpiCommunicator::AllReduceSumImpl(float* data, size_t count) {
  return AllReduce(data, count, MPI_FLOAT, "f32");
}

Status MpiCommunicator::AllReduceSumImpl(double* data, size_t count) {
  return AllReduce(data, count, MPI_DOUBLE, "f64");
}

Status MpiCommunicator::BroadcastImpl(void* data, size_t bytes, int root) {
  std::vector<MPI_Request> requests;
  char* next = static_cast<char*>(data);
  size_t left = bytes;
  do {
    const int chunk = static_cast<int>(std::min(left, max_chunk_bytes_));
    MPI_Request request;
    RETURN_IF_ERROR(Check(MPI_Ibcast(next, chunk, MPI_BYTE, root, comm_, &request), "MPI_Ibcast"));
    requests.push_back(request);
    next += chunk;
    left -= chunk;
  } while (left > 0);
  return WaitCollective(
      requests, "broadcast",
      "from " + DescribeRank(root) + ", " + DescribeChunks(bytes, requests.size()));
}

Status MpiCommunicator::AllGatherImpl(const void* send, size_t bytes_per_rank, void* recv) {
  if (bytes_per_rank > static_cast<size_t>(INT_MAX)) {
    return InvalidArgument(Prefix() + ": all-gather of " + std::to_string(bytes_per_rank) +
                           " bytes per rank exceeds the MPI count limit");
  }
  const int bytes = static_cast<int>(bytes_per_rank);
  const bool in_place = send == static_cast<const char*>(recv) + rank_ * bytes_per_rank;
  std::vector<MPI_Request> requests(1);
  RETURN_IF_ERROR(Check(MPI_Iallgather(in_place ? MPI_IN_PLACE : send, bytes, MPI_BYTE, recv, bytes,
                                       MPI_BYTE, comm_, &requests[0]),
                        "MPI_Iallgather"));
  return WaitCollective(requests, "all-gather", std::to_string(bytes) + " bytes per rank");
}

Status MpiCommunicator::BarrierImpl() {
  std::vector<MPI_Request> requests(1);
  RETURN_IF_ERROR(Check(MPI_Ibarrier(comm_, &requests[0]), "MPI_Ibarrier"));
  return WaitCollective(requests, "barrier", "no data");
}

StatusOr<std::unique_ptr<Communicator>> MpiCommunicator::SplitImpl(int color, int key) {
  // MPI_Comm_split has no nonblocking form: a guarded barrier first shows that every rank is
  // here, so the split itself cannot wait on a missing one.
  std::vector<MPI_Request> requests(1);
  RETURN_IF_ERROR(Check(MPI_Ibarrier(comm_, &requests[0]), "MPI_Ibarrier"));
  RETURN_IF_ERROR(WaitCollective(requests, "split", "color " + std::to_string(color)));
  MPI_Comm sub = MPI_COMM_NULL;
  RETURN_IF_ERROR(
      Check(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &sub), "MPI_Comm_split"));
  if (sub == MPI_COMM_NULL) return std::unique_ptr<Communicator>();
  ASSIGN_OR_RETURN(
      auto child, Create(sub, name() + "/split(" + std::to_string(color) + ")", timeout_seconds()));
  child->world_hosts_ = world_hosts_;
  return std::unique_ptr<Communicator>(std::move(child));
}

}  // namespace deepnet
