// InProcessCommunicator: mailboxes and collective slots shared by the threads of one group.
//
// All shared state of a group sits behind one mutex; waiters sleep on one condition variable.
// A collective is a numbered slot (each rank counts its own collectives, and all ranks call them
// in the same order): every rank registers its buffers there and the last one to arrive does the
// work for all, in rank order, while the others are blocked and their buffers are stable.
#include "runtime/inprocess_communicator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <utility>

namespace deepnet {
namespace inprocess {

using Clock = std::chrono::steady_clock;

constexpr int kAlive = -1;  // a liveness state; otherwise the DropMode as an int

// Whether each rank of a root group (and so of every group split from it) is still there.
struct Liveness {
  explicit Liveness(int size) : state(size) {
    for (auto& s : state) s.store(kAlive);
  }
  std::vector<std::atomic<int>> state;  // by root rank
};

struct PointToPointOp {
  bool is_send = false;
  int src = 0;
  int dst = 0;
  int tag = 0;
  int peer = 0;  // dst for a send, src for a receive
  void* data = nullptr;
  size_t bytes = 0;
  bool done = false;
  Status status;
};

struct Contribution {
  std::string op;      // "all-reduce", "broadcast", ...: every rank must call the same
  std::string detail;  // "f32, 1024 elements": for messages
  size_t bytes = 0;    // payload per rank; must agree too
  int root = -1;       // broadcast root
  const void* send = nullptr;
  void* recv = nullptr;
  int color = 0;
  int key = 0;
  double timeout_seconds = 0;
};

struct CollectiveSlot {
  explicit CollectiveSlot(int size) : contributions(size), arrived(size), split_results(size) {}
  Group* group = nullptr;
  std::string comm_name;
  std::vector<Contribution> contributions;
  std::vector<bool> arrived;
  int arrivals = 0;
  int first_rank = 0;             // its call is the one the others must match
  std::vector<int> abandoned_by;  // ranks that timed out and left: the slot can never complete
  Status failure;                 // mismatched calls; message without a rank prefix
  bool complete = false;
  int departures = 0;
  std::vector<std::unique_ptr<InProcessCommunicator>> split_results;
};

struct Group {
  std::vector<int> root_ranks;  // member i is rank root_ranks[i] of the root group
  bool is_split = false;
  std::shared_ptr<Liveness> liveness;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::shared_ptr<PointToPointOp>> unmatched_sends;  // in post order
  std::deque<std::shared_ptr<PointToPointOp>> unmatched_recvs;
  std::map<int64_t, CollectiveSlot> collectives;

  int size() const { return static_cast<int>(root_ranks.size()); }
  int State(int rank) const { return liveness->state[root_ranks[rank]].load(); }
  bool Announced(int rank) const { return State(rank) == static_cast<int>(DropMode::kAnnounced); }

  void Remove(const std::shared_ptr<PointToPointOp>& op) {
    auto& queue = op->is_send ? unmatched_sends : unmatched_recvs;
    queue.erase(std::remove(queue.begin(), queue.end(), op), queue.end());
  }
};

namespace {

// Liveness may change in another group (a drop from a split communicator), which does not
// notify this group's waiters: they also wake up at this interval to look.
constexpr auto kLivenessPoll = std::chrono::milliseconds(10);

// Waits until ready() holds; false if the deadline passes first.
template <typename Ready>
bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
               Clock::time_point deadline, Ready ready) {
  while (!ready()) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    cv.wait_until(lock, std::min(deadline, now + kLivenessPoll));
  }
  return true;
}

Clock::time_point DeadlineAfter(double seconds) {
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

void Deliver(PointToPointOp& send, PointToPointOp& recv) {
  if (send.bytes != recv.bytes) {
    const Status mismatch = InvalidArgument(
        "message size mismatch: rank " + std::to_string(send.src) + " sent " +
        std::to_string(send.bytes) + " bytes with tag " + std::to_string(send.tag) + " to rank " +
        std::to_string(send.dst) + ", which expected " + std::to_string(recv.bytes));
    send.status = mismatch;
    recv.status = mismatch;
  } else if (send.bytes > 0) {
    std::memcpy(recv.data, send.data, send.bytes);
  }
  send.done = true;
  recv.done = true;
}

std::string DescribeOp(const Communicator& comm, const PointToPointOp& op) {
  return std::string(op.is_send ? "send to " : "recv from ") + comm.DescribeRank(op.peer) +
         " (tag " + std::to_string(op.tag) + ", " + std::to_string(op.bytes) + " bytes)";
}

template <typename T>
void CombineAllReduce(CollectiveSlot& slot) {
  const size_t count = slot.contributions[0].bytes / sizeof(T);
  const T* first = static_cast<const T*>(slot.contributions[0].recv);
  std::vector<T> sum(first, first + count);
  for (size_t r = 1; r < slot.contributions.size(); ++r) {  // rank order: reproducible
    const T* data = static_cast<const T*>(slot.contributions[r].recv);
    for (size_t i = 0; i < count; ++i) sum[i] += data[i];
  }
  for (const Contribution& c : slot.contributions) {
    if (count > 0) std::memcpy(c.recv, sum.data(), count * sizeof(T));
  }
}

void CombineBroadcast(CollectiveSlot& slot) {
  const Contribution& root = slot.contributions[slot.contributions[0].root];
  for (const Contribution& c : slot.contributions) {
    if (c.recv != root.recv && c.bytes > 0) std::memcpy(c.recv, root.recv, c.bytes);
  }
}

void CombineAllGather(CollectiveSlot& slot) {
  // In place is safe: rank q's send lies in slot q of its own recv, which no copy overwrites.
  for (const Contribution& to : slot.contributions) {
    for (size_t q = 0; q < slot.contributions.size(); ++q) {
      char* dst = static_cast<char*>(to.recv) + q * to.bytes;
      const void* src = slot.contributions[q].send;
      if (dst != src && to.bytes > 0) std::memmove(dst, src, to.bytes);
    }
  }
}

void CombineNothing(CollectiveSlot&) {}

}  // namespace
}  // namespace inprocess

using inprocess::Clock;
using inprocess::CollectiveSlot;
using inprocess::Contribution;
using inprocess::Group;
using inprocess::PointToPointOp;

std::vector<std::unique_ptr<InProcessCommunicator>> InProcessCommunicator::CreateGroup(
    int size, double timeout_seconds) {
  CHECK_GT(size, 0);
  auto group = std::make_shared<Group>();
  group->liveness = std::make_shared<inprocess::Liveness>(size);
  for (int r = 0; r < size; ++r) group->root_ranks.push_back(r);
  std::vector<std::unique_ptr<InProcessCommunicator>> comms;
  for (int r = 0; r < size; ++r) {
    comms.emplace_back(new InProcessCommunicator(group, r, "world", timeout_seconds));
  }
  return comms;
}

std::unique_ptr<Communicator> MakeSingleProcessCommunicator() {
  return std::move(InProcessCommunicator::CreateGroup(1)[0]);
}

InProcessCommunicator::InProcessCommunicator(std::shared_ptr<Group> group, int rank,
                                             std::string name, double timeout_seconds)
    : Communicator(std::move(name), timeout_seconds), group_(std::move(group)), rank_(rank) {}

InProcessCommunicator::~InProcessCommunicator() {
  // Peers must not copy into or out of buffers whose requests were never waited for.
  std::lock_guard<std::mutex> lock(group_->mu);
  for (auto& [id, op] : requests_) {
    if (!op->done) group_->Remove(op);
  }
}

int InProcessCommunicator::size() const { return group_->size(); }

std::string InProcessCommunicator::DescribeRank(int rank) const {
  std::string text = "rank " + std::to_string(rank);
  if (group_->is_split && rank >= 0 && rank < size()) {
    text += " (world rank " + std::to_string(group_->root_ranks[rank]) + ")";
  }
  return text;
}

void InProcessCommunicator::DropRank(int rank, DropMode mode) {
  CHECK(rank >= 0 && rank < size()) << "DropRank(" << rank << ") outside the group";
  std::lock_guard<std::mutex> lock(group_->mu);
  group_->liveness->state[group_->root_ranks[rank]].store(static_cast<int>(mode));
  // A dead rank's posted operations never complete.
  for (auto* queue : {&group_->unmatched_sends, &group_->unmatched_recvs}) {
    std::erase_if(*queue, [rank](const auto& op) { return op->src == rank || op->dst == rank; });
  }
  group_->cv.notify_all();
}

Status InProcessCommunicator::SelfDroppedError() const {
  if (group_->State(rank_) == inprocess::kAlive) return OkStatus();
  return Unavailable(Prefix() + ": this rank was dropped from the group");
}

StatusOr<Request> InProcessCommunicator::IsendImpl(const void* data, size_t bytes, int peer,
                                                   int tag) {
  return Post(/*is_send=*/true, const_cast<void*>(data), bytes, peer, tag);
}

StatusOr<Request> InProcessCommunicator::IrecvImpl(void* data, size_t bytes, int peer, int tag) {
  return Post(/*is_send=*/false, data, bytes, peer, tag);
}

StatusOr<Request> InProcessCommunicator::Post(bool is_send, void* data, size_t bytes, int peer,
                                              int tag) {
  auto op = std::make_shared<PointToPointOp>();
  op->is_send = is_send;
  op->src = is_send ? rank_ : peer;
  op->dst = is_send ? peer : rank_;
  op->tag = tag;
  op->peer = peer;
  op->data = data;
  op->bytes = bytes;

  std::lock_guard<std::mutex> lock(group_->mu);
  RETURN_IF_ERROR(SelfDroppedError());
  auto& partners = is_send ? group_->unmatched_recvs : group_->unmatched_sends;
  auto partner = std::find_if(partners.begin(), partners.end(), [&](const auto& other) {
    return other->src == op->src && other->dst == op->dst && other->tag == op->tag;
  });
  if (partner != partners.end()) {
    if (is_send) {
      inprocess::Deliver(*op, **partner);
    } else {
      inprocess::Deliver(**partner, *op);
    }
    partners.erase(partner);
    group_->cv.notify_all();
  } else {
    (is_send ? group_->unmatched_sends : group_->unmatched_recvs).push_back(op);
  }
  const uint64_t id = next_request_id_++;
  requests_.emplace(id, std::move(op));
  return Request(id);
}

Status InProcessCommunicator::WaitAllImpl(std::span<Request> requests) {
  std::vector<std::shared_ptr<PointToPointOp>> ops;
  for (const Request& request : requests) {
    auto it = requests_.find(request.id());
    if (it == requests_.end()) {
      return InvalidArgument(Prefix() + ": Wait on a request this communicator does not hold");
    }
    ops.push_back(std::move(it->second));
    requests_.erase(it);
  }
  std::unique_lock<std::mutex> lock(group_->mu);
  Status failure;
  auto settled = [&] {
    failure = SelfDroppedError();
    if (!failure.ok()) return true;
    bool all_done = true;
    for (const auto& op : ops) {
      if (op->done && !op->status.ok()) {
        failure = op->status.WithContext(Prefix());
        return true;
      }
      if (op->done) continue;
      if (group_->Announced(op->peer)) {
        failure = Unavailable(Prefix() + ": " + inprocess::DescribeOp(*this, *op) +
                              " failed: " + DescribeRank(op->peer) + " left the group");
        return true;
      }
      all_done = false;
    }
    return all_done;
  };
  if (!inprocess::WaitUntil(lock, group_->cv, inprocess::DeadlineAfter(timeout_seconds()),
                            settled)) {
    std::string pending;
    for (const auto& op : ops) {
      if (op->done) continue;
      pending += (pending.empty() ? "" : " and ") + inprocess::DescribeOp(*this, *op);
    }
    failure = DeadlineExceeded(Prefix() + ": " + pending + " did not complete within " +
                               FormatSeconds(timeout_seconds()));
  }
  if (!failure.ok()) {
    for (const auto& op : ops) {
      if (!op->done) group_->Remove(op);  // cancelled: no peer will touch the buffer now
    }
  }
  return failure;
}

// ---- collectives ----

Status InProcessCommunicator::RunCollective(const Contribution& mine, Combine combine,
                                            std::unique_ptr<InProcessCommunicator>* split_result) {
  std::unique_lock<std::mutex> lock(group_->mu);
  RETURN_IF_ERROR(SelfDroppedError());
  const int64_t seq = collective_seq_++;
  auto [it, inserted] = group_->collectives.try_emplace(seq, size());
  CollectiveSlot& slot = it->second;
  const std::string what = mine.op + " #" + std::to_string(seq) + " (" + mine.detail + ")";
  if (inserted) {
    slot.group = group_.get();
    slot.comm_name = name();
    slot.first_rank = rank_;
  } else if (slot.failure.ok()) {
    const Contribution& first = slot.contributions[slot.first_rank];
    if (first.op != mine.op || first.detail != mine.detail) {
      slot.failure = InvalidArgument("collective #" + std::to_string(seq) +
                                     " mismatch: " + DescribeRank(slot.first_rank) + " called " +
                                     first.op + " (" + first.detail + "), " + DescribeRank(rank_) +
                                     " called " + mine.op + " (" + mine.detail + ")");
    }
  }
  slot.contributions[rank_] = mine;
  slot.arrived[rank_] = true;
  ++slot.arrivals;
  if (slot.failure.ok() && slot.abandoned_by.empty() && slot.arrivals == size()) {
    combine(slot);
    slot.complete = true;
  }
  group_->cv.notify_all();

  Status failure;
  auto settled = [&] {
    if (slot.complete) return true;
    failure = CollectiveFailure(slot, what);
    return !failure.ok();
  };
  if (!inprocess::WaitUntil(lock, group_->cv, inprocess::DeadlineAfter(timeout_seconds()),
                            settled)) {
    std::vector<int> missing;
    for (int r = 0; r < size(); ++r) {
      if (!slot.arrived[r]) missing.push_back(r);
    }
    failure = DeadlineExceeded(Prefix() + ": " + what + " did not complete within " +
                               FormatSeconds(timeout_seconds()) +
                               " (missing: " + DescribeRanks(missing) + ")");
  }
  if (!slot.complete) {
    // Leaving for good: the slot must never combine into this rank's (soon invalid) buffers.
    slot.abandoned_by.push_back(rank_);
    group_->cv.notify_all();
    MarkBroken(failure);
    return failure;
  }
  if (split_result != nullptr) *split_result = std::move(slot.split_results[rank_]);
  if (++slot.departures == size()) group_->collectives.erase(it);
  return OkStatus();
}

Status InProcessCommunicator::CollectiveFailure(const CollectiveSlot& slot,
                                                const std::string& what) const {
  if (!slot.failure.ok())
    return Status(slot.failure.code(), Prefix() + ": " + slot.failure.message());
  RETURN_IF_ERROR(SelfDroppedError());
  std::vector<int> missing, announced;
  for (int r = 0; r < size(); ++r) {
    if (slot.arrived[r]) continue;
    missing.push_back(r);
    if (group_->Announced(r)) announced.push_back(r);
  }
  if (!announced.empty()) {
    return Unavailable(Prefix() + ": " + what + " failed: " + DescribeRanks(announced) +
                       " left the group");
  }
  if (!slot.abandoned_by.empty() && missing.empty()) {
    return DeadlineExceeded(Prefix() + ": " + what + " was abandoned by " +
                            DescribeRanks(slot.abandoned_by) + " after a failure");
  }
  return OkStatus();
}

template <typename T>
Status InProcessCommunicator::AllReduce(T* data, size_t count, const char* type_name) {
  Contribution mine;
  mine.op = "all-reduce";
  mine.detail = std::string(type_name) + ", " + std::to_string(count) + " elements";
  mine.bytes = count * sizeof(T);
  mine.send = data;
  mine.recv = data;
  return RunCollective(mine, &inprocess::CombineAllReduce<T>);
}

Status InProcessCommunicator::AllReduceSumImpl(float* data, size_t count) {
  return AllReduce(data, count, "f32");
}

Status InProcessCommunicator::AllReduceSumImpl(double* data, size_t count) {
  return AllReduce(data, count, "f64");
}

Status InProcessCommunicator::BroadcastImpl(void* data, size_t bytes, int root) {
  Contribution mine;
  mine.op = "broadcast";
  mine.detail = "from " + DescribeRank(root) + ", " + std::to_string(bytes) + " bytes";
  mine.bytes = bytes;
  mine.root = root;
  mine.send = data;
  mine.recv = data;
  return RunCollective(mine, &inprocess::CombineBroadcast);
}

Status InProcessCommunicator::AllGatherImpl(const void* send, size_t bytes_per_rank, void* recv) {
  Contribution mine;
  mine.op = "all-gather";
  mine.detail = std::to_string(bytes_per_rank) + " bytes per rank";
  mine.bytes = bytes_per_rank;
  mine.send = send;
  mine.recv = recv;
  return RunCollective(mine, &inprocess::CombineAllGather);
}

Status InProcessCommunicator::BarrierImpl() {
  Contribution mine;
  mine.op = "barrier";
  mine.detail = "no data";
  return RunCollective(mine, &inprocess::CombineNothing);
}

StatusOr<std::unique_ptr<Communicator>> InProcessCommunicator::SplitImpl(int color, int key) {
  Contribution mine;
  mine.op = "split";
  mine.detail = "by color";
  mine.color = color;
  mine.key = key;
  mine.timeout_seconds = timeout_seconds();
  std::unique_ptr<InProcessCommunicator> result;
  RETURN_IF_ERROR(RunCollective(mine, &InProcessCommunicator::CombineSplit, &result));
  return std::unique_ptr<Communicator>(std::move(result));
}

void InProcessCommunicator::CombineSplit(CollectiveSlot& slot) {
  std::map<int, std::vector<int>> members_by_color;  // members in rank order
  for (int r = 0; r < static_cast<int>(slot.contributions.size()); ++r) {
    const int color = slot.contributions[r].color;
    if (color >= 0) members_by_color[color].push_back(r);
  }
  for (auto& [color, members] : members_by_color) {
    std::stable_sort(members.begin(), members.end(), [&](int a, int b) {
      return slot.contributions[a].key < slot.contributions[b].key;
    });
    auto group = std::make_shared<Group>();
    group->liveness = slot.group->liveness;
    group->is_split = true;
    for (int r : members) group->root_ranks.push_back(slot.group->root_ranks[r]);
    const std::string name = slot.comm_name + "/split(" + std::to_string(color) + ")";
    for (int i = 0; i < static_cast<int>(members.size()); ++i) {
      const int r = members[i];
      slot.split_results[r].reset(
          new InProcessCommunicator(group, i, name, slot.contributions[r].timeout_seconds));
    }
  }
}

}  // namespace deepnet
