// Schedule validator: per-rank order checks, then send/recv matching across ranks.
#include "parallel/validate.h"

#include <map>
#include <string>
#include <tuple>
#include <utility>

namespace deepnet {
namespace {

// What has happened to one (micro-batch, chunk) on a rank so far.
struct MicroBatchState {
  bool recv_activation = false;
  bool forward = false;
  bool sent_activation = false;
  bool recv_gradient = false;
  bool backward = false;  // Backward or BackwardInput
  bool split = false;     // ran as BackwardInput (so a W pass is owed)
  bool weight = false;
  bool sent_gradient = false;
};

// A message between ranks: (is gradient, micro-batch, edge k between model chunks k and k+1,
// source rank, destination rank).
using TransferKey = std::tuple<bool, int, int, int, int>;
using Position = std::pair<int, int>;  // (rank, index)
using Transfers = std::map<TransferKey, Position>;

class RankChecker {
 public:
  RankChecker(int rank, const ChunkPlacement& placement, const ValidateOptions& options)
      : rank_(rank),
        placement_(placement),
        options_(options),
        state_(placement.chunks_on(rank), std::vector<MicroBatchState>(options.micro_batches)),
        next_(placement.chunks_on(rank), {0, 0, 0}) {}

  // Checks `actions[index]`; records its transfer in `sends` / `recvs`.
  Status Check(const std::vector<Action>& actions, int index, Transfers& sends, Transfers& recvs);
  // Checks that nothing is missing once the whole list has been seen.
  Status CheckComplete(const std::vector<Action>& actions) const;

 private:
  Status Fail(int index, const Action& action, const std::string& message) const {
    return FailedPrecondition("rank " + std::to_string(rank_) + ", action " +
                              std::to_string(index) + " (" + ToString(action) + "): " + message);
  }
  Status CheckFields(const std::vector<Action>& actions, int index);
  Status CheckCompute(int index, const Action& action, MicroBatchState& mb);
  Status CheckTransfer(int index, const Action& action, MicroBatchState& mb, Transfers& sends,
                       Transfers& recvs);
  Status CheckAllComputeDone(int index, const Action& action) const;

  // State of model chunk k's micro-batch on this rank (k must be local).
  const MicroBatchState& StateOf(int k, int micro_batch) const {
    return state_[placement_.LocalOf(k)][micro_batch];
  }
  bool IsLocal(int k) const { return placement_.RankOf(k) == rank_; }

  int rank_;
  const ChunkPlacement& placement_;
  const ValidateOptions& options_;
  std::vector<std::vector<MicroBatchState>> state_;  // [chunk][micro-batch]
  struct Next {
    int forward, backward, weight;
  };
  std::vector<Next> next_;  // per chunk: the micro-batch each pass kind must run next
  int last_group_ = -1;
  int held_ = 0;
  bool reduced_ = false;
};

Status RankChecker::CheckFields(const std::vector<Action>& actions, int index) {
  const Action& a = actions[index];
  const bool step_action =
      a.kind == ActionKind::kReduceGradients || a.kind == ActionKind::kOptimizerStep;
  if (!step_action) {
    if (a.micro_batch < 0 || a.micro_batch >= options_.micro_batches) {
      return Fail(index, a,
                  "micro-batch outside [0, " + std::to_string(options_.micro_batches) + ")");
    }
    if (a.chunk < 0 || a.chunk >= placement_.chunks_on(rank_)) {
      return Fail(index, a,
                  "chunk outside [0, " + std::to_string(placement_.chunks_on(rank_)) + ")");
    }
  }
  if (!IsCommunication(a.kind)) {
    if (a.group != -1) return Fail(index, a, "only sends and receives belong to a group");
    return OkStatus();
  }
  if (a.group < 0) return Fail(index, a, "a send or receive outside any group");
  const bool continues =
      index > 0 && IsCommunication(actions[index - 1].kind) && actions[index - 1].group == a.group;
  if (!continues && a.group <= last_group_) {
    return Fail(index, a,
                "group " + std::to_string(a.group) +
                    " is not adjacent to its other actions or not ascending");
  }
  last_group_ = a.group;
  return OkStatus();
}

Status RankChecker::CheckCompute(int index, const Action& a, MicroBatchState& mb) {
  const int k = placement_.ModelChunk(rank_, a.chunk);
  const int last_chunk = placement_.num_chunks() - 1;
  Next& next = next_[a.chunk];
  if (reduced_) return Fail(index, a, "compute after reduce-grads");
  switch (a.kind) {
    case ActionKind::kForward:
      if (a.micro_batch != next.forward) return Fail(index, a, "forwards out of ascending order");
      if (k > 0 && IsLocal(k - 1) && !StateOf(k - 1, a.micro_batch).forward) {
        return Fail(index, a, "forward before that of chunk " + std::to_string(k - 1));
      }
      if (k > 0 && !IsLocal(k - 1) && !mb.recv_activation) {
        return Fail(index, a, "forward before its recv-act");
      }
      mb.forward = true;
      ++next.forward;
      if (options_.max_activations > 0 && ++held_ > options_.max_activations) {
        return Fail(index, a,
                    "holds " + std::to_string(held_) +
                        " micro-batches of activations, "
                        "limit " +
                        std::to_string(options_.max_activations));
      }
      return OkStatus();
    case ActionKind::kBackward:
    case ActionKind::kBackwardInput:
      if (a.micro_batch != next.backward) return Fail(index, a, "backwards out of ascending order");
      if (!mb.forward) return Fail(index, a, "backward before its forward");
      if (k < last_chunk && IsLocal(k + 1) && !StateOf(k + 1, a.micro_batch).backward) {
        return Fail(index, a, "backward before that of chunk " + std::to_string(k + 1));
      }
      if (k < last_chunk && !IsLocal(k + 1) && !mb.recv_gradient) {
        return Fail(index, a, "backward before recv-grad");
      }
      mb.backward = true;
      mb.split = a.kind == ActionKind::kBackwardInput;
      ++next.backward;
      if (mb.split) return OkStatus();
      // A fused backward adds this micro-batch's weight gradients: earlier W passes go first.
      if (a.micro_batch != next.weight) {
        return Fail(index, a, "fused backward before the W pass of an earlier micro-batch");
      }
      ++next.weight;
      --held_;
      return OkStatus();
    case ActionKind::kBackwardWeight:
      if (a.micro_batch != next.weight) return Fail(index, a, "W passes out of ascending order");
      if (!mb.backward || !mb.split) return Fail(index, a, "W pass before its B pass");
      mb.weight = true;
      ++next.weight;
      --held_;
      return OkStatus();
    default:
      return Internal("not a compute action");
  }
}

Status RankChecker::CheckTransfer(int index, const Action& a, MicroBatchState& mb, Transfers& sends,
                                  Transfers& recvs) {
  const int k = placement_.ModelChunk(rank_, a.chunk);
  const int last_chunk = placement_.num_chunks() - 1;
  const bool downstream = a.kind == ActionKind::kSendActivation ||
                          a.kind == ActionKind::kRecvGradient;  // talks to model chunk k+1
  if (downstream ? k == last_chunk : k == 0) {
    return Fail(index, a, "model chunk " + std::to_string(k) + " has no neighbour that way");
  }
  const int expected_peer = placement_.RankOf(downstream ? k + 1 : k - 1);
  if (expected_peer == rank_) {
    return Fail(index, a,
                "model chunks " + std::to_string(downstream ? k : k - 1) + " and " +
                    std::to_string(downstream ? k + 1 : k) +
                    " are both on this rank: they hand over without a transfer");
  }
  if (a.peer != expected_peer) {
    return Fail(index, a, "peer should be rank " + std::to_string(expected_peer));
  }
  const int edge = downstream ? k : k - 1;
  const bool gradient = a.kind == ActionKind::kSendGradient || a.kind == ActionKind::kRecvGradient;
  bool* done = nullptr;
  switch (a.kind) {
    case ActionKind::kSendActivation:
      if (!mb.forward) return Fail(index, a, "send-act before its forward");
      done = &mb.sent_activation;
      break;
    case ActionKind::kRecvActivation:
      done = &mb.recv_activation;
      break;
    case ActionKind::kSendGradient:
      if (!mb.backward) return Fail(index, a, "send-grad before its backward");
      done = &mb.sent_gradient;
      break;
    case ActionKind::kRecvGradient:
      done = &mb.recv_gradient;
      break;
    default:
      return Internal("not a transfer");
  }
  if (*done) return Fail(index, a, "posted twice");
  *done = true;
  const bool send = IsSend(a.kind);
  const TransferKey key{gradient, a.micro_batch, edge, send ? rank_ : a.peer,
                        send ? a.peer : rank_};
  (send ? sends : recvs)[key] = {rank_, index};  // unique: "posted twice" is checked above
  return OkStatus();
}

Status RankChecker::CheckAllComputeDone(int index, const Action& a) const {
  for (int c = 0; c < placement_.chunks_on(rank_); ++c) {
    for (int i = 0; i < options_.micro_batches; ++i) {
      const MicroBatchState& mb = state_[c][i];
      std::string what;
      if (!mb.forward)
        what = "forward";
      else if (!mb.backward)
        what = "backward";
      else if (mb.split && !mb.weight)
        what = "W pass";
      if (!what.empty()) {
        return Fail(index, a,
                    "no " + what + " of micro-batch " + std::to_string(i) + " chunk " +
                        std::to_string(c) + " before this point");
      }
    }
  }
  return OkStatus();
}

Status RankChecker::Check(const std::vector<Action>& actions, int index, Transfers& sends,
                          Transfers& recvs) {
  const Action& a = actions[index];
  RETURN_IF_ERROR(CheckFields(actions, index));
  if (a.kind == ActionKind::kReduceGradients) {
    if (!options_.optimizer_step) return Fail(index, a, "this flush has no optimizer step");
    if (reduced_) return Fail(index, a, "posted twice");
    RETURN_IF_ERROR(CheckAllComputeDone(index, a));
    reduced_ = true;
    return OkStatus();
  }
  if (a.kind == ActionKind::kOptimizerStep) {
    if (index == 0 || actions[index - 1].kind != ActionKind::kReduceGradients) {
      return Fail(index, a, "must follow reduce-grads");
    }
    if (index + 1 != static_cast<int>(actions.size())) return Fail(index, a, "must come last");
    return OkStatus();
  }
  if (reduced_) return Fail(index, a, "after reduce-grads");
  MicroBatchState& mb = state_[a.chunk][a.micro_batch];
  if (IsCompute(a.kind)) return CheckCompute(index, a, mb);
  return CheckTransfer(index, a, mb, sends, recvs);
}

Status RankChecker::CheckComplete(const std::vector<Action>& actions) const {
  const int n = static_cast<int>(actions.size());
  const Action end{.kind = ActionKind::kOptimizerStep};
  if (options_.optimizer_step && (n == 0 || actions.back().kind != ActionKind::kOptimizerStep)) {
    return Fail(n, end, "the list must end with reduce-grads, optimizer-step");
  }
  return CheckAllComputeDone(n, Action{.kind = ActionKind::kReduceGradients});
}

std::string DescribeTransfer(const std::vector<std::vector<Action>>& ranks, Position at) {
  return "rank " + std::to_string(at.first) + ", action " + std::to_string(at.second) + " (" +
         ToString(ranks[at.first][at.second]) + ")";
}

// Every send has exactly one matching recv and the other way round.
Status CheckMatching(const std::vector<std::vector<Action>>& ranks, const Transfers& sends,
                     const Transfers& recvs) {
  for (const auto& [key, from] : sends) {
    auto it = recvs.find(key);
    if (it == recvs.end()) {
      return FailedPrecondition(DescribeTransfer(ranks, from) + ": no matching receive");
    }
  }
  for (const auto& [key, at] : recvs) {
    if (!sends.contains(key)) {
      return FailedPrecondition(DescribeTransfer(ranks, at) + ": no matching send");
    }
  }
  return OkStatus();
}

}  // namespace

Status ValidateSchedules(const std::vector<std::vector<Action>>& ranks,
                         const ValidateOptions& options) {
  const int p = static_cast<int>(ranks.size());
  if (p < 1) return InvalidArgument("no ranks to validate");
  if (options.micro_batches < 1 || options.virtual_chunks < 1) {
    return InvalidArgument("micro-batches and virtual chunks must be >= 1");
  }
  const ChunkPlacement placement =
      options.placement.value_or(ChunkPlacement::Looped(p, options.virtual_chunks));
  if (placement.ranks() != p) {
    return InvalidArgument("the placement spans " + std::to_string(placement.ranks()) +
                           " ranks, the schedule " + std::to_string(p));
  }
  Transfers sends;
  Transfers recvs;
  for (int r = 0; r < p; ++r) {
    RankChecker checker(r, placement, options);
    for (int i = 0; i < static_cast<int>(ranks[r].size()); ++i) {
      RETURN_IF_ERROR(checker.Check(ranks[r], i, sends, recvs));
    }
    RETURN_IF_ERROR(checker.CheckComplete(ranks[r]));
  }
  return CheckMatching(ranks, sends, recvs);
}

}  // namespace deepnet
