// Greedy list scheduling for B/W-split schedules in the pass-cost timeline (compute_order.h).
//
// Time advances in unit slots; a pass takes its cost in slots (ScheduleOptions::pass_costs) and
// its output is usable when it ends (transfers free). What a free rank may start, per local
// chunk c (model chunk k):
// - forward of micro-batch i = the chunk's next forward: k = 0, or forward (k−1, i) done;
// - B of i = the chunk's next B: forward (k, i) done, and k is last or B (k+1, i) done;
// - W of i = the chunk's next W: B (k, i) done.
#include <algorithm>

#include "glog/logging.h"
#include "parallel/schedules/compute_order.h"
#include "parallel/simulator.h"

namespace deepnet::schedules {
namespace {

constexpr int kNotYet = -1;

// How a free rank chooses (the variants GreedyZeroBubbleSteps tries).
struct Preference {
  bool forward_first = false;  // a fitting forward before a ready B
  bool oldest_first = true;    // among chunks: the oldest micro-batch, else the deepest chunk
};

struct ChunkState {
  int next_forward = 0;
  int next_backward = 0;
  int next_weight = 0;
};

class GreedyTimeline {
 public:
  GreedyTimeline(const ScheduleOptions& options, const ChunkPlacement& placement,
                 const std::vector<int>& max_held, Preference preference)
      : m_(options.micro_batches),
        placement_(placement),
        max_held_(max_held),
        preference_(preference),
        forward_done_(placement.num_chunks(), std::vector<int>(m_, kNotYet)),
        backward_done_(placement.num_chunks(), std::vector<int>(m_, kNotYet)),
        chunks_(placement.num_chunks()),
        held_(placement.ranks(), 0),
        costs_(options.pass_costs),
        busy_until_(placement.ranks(), 0),
        steps_(placement.ranks()) {}

  // The slots until the last pass ends, or −1 when the ranks stall (every rank full and waiting).
  int Run() {
    const int total = 3 * m_ * placement_.num_chunks();
    const int total_cost =
        m_ * placement_.num_chunks() * (costs_.forward + costs_.backward_input + costs_.weight);
    int done = 0;
    int slot = 0;
    for (; done < total; ++slot) {
      if (slot > 4 * total_cost + 16) return -1;
      std::vector<Action> chosen(placement_.ranks(), Action{.micro_batch = kNotYet});
      for (int r = 0; r < placement_.ranks(); ++r) {
        if (busy_until_[r] <= slot) chosen[r] = Choose(r, slot);
      }
      for (int r = 0; r < placement_.ranks(); ++r) {
        if (chosen[r].micro_batch == kNotYet) continue;
        Apply(r, chosen[r], slot);
        ++done;
      }
    }
    return *std::max_element(busy_until_.begin(), busy_until_.end());
  }

  const std::vector<std::vector<Step>>& steps() const { return steps_; }

 private:
  // The pass has ended by `slot`.
  bool Ready(const std::vector<std::vector<int>>& done, int k, int i, int slot) const {
    return done[k][i] != kNotYet && done[k][i] <= slot;
  }

  bool CanForward(int k, int slot) const {
    const int i = chunks_[k].next_forward;
    return i < m_ && (k == 0 || Ready(forward_done_, k - 1, i, slot));
  }
  bool CanBackward(int k, int slot) const {
    const int i = chunks_[k].next_backward;
    if (i >= m_ || !Ready(forward_done_, k, i, slot)) return false;
    return k == placement_.num_chunks() - 1 || Ready(backward_done_, k + 1, i, slot);
  }
  bool CanWeight(int k, int slot) const {
    const int i = chunks_[k].next_weight;
    return i < m_ && Ready(backward_done_, k, i, slot);
  }

  // Forwards of the rank's later chunks still owed by micro-batches that entered its first one.
  int OwedForwards(int rank) const {
    const std::vector<int>& mine = placement_.ChunksOf(rank);
    int owed = 0;
    for (size_t c = 1; c < mine.size(); ++c) {
      owed += chunks_[mine[0]].next_forward - chunks_[mine[c]].next_forward;
    }
    return owed;
  }
  bool FitsForward(int rank, int k) const {
    const std::vector<int>& mine = placement_.ChunksOf(rank);
    if (k != mine[0]) return held_[rank] + 1 <= max_held_[rank];
    // A new micro-batch: it and every forward owed on later chunks must fit.
    return held_[rank] + OwedForwards(rank) + static_cast<int>(mine.size()) <= max_held_[rank];
  }

  // The deepest ready chunk's pass, oldest micro-batch first.
  Action Choose(int rank, int slot) const {
    const std::vector<int>& mine = placement_.ChunksOf(rank);
    auto pick = [&](ActionKind kind, auto can, auto next) {
      int best = -1;
      for (auto it = mine.rbegin(); it != mine.rend(); ++it) {
        if (!can(*it)) continue;
        if (best < 0 || (preference_.oldest_first && next(*it) < next(best))) best = *it;
      }
      return best < 0 ? Action{.micro_batch = kNotYet}
                      : Compute(kind, next(best), placement_.LocalOf(best));
    };
    const Action backward = pick(
        ActionKind::kBackwardInput, [&](int k) { return CanBackward(k, slot); },
        [&](int k) { return chunks_[k].next_backward; });
    const Action forward = pick(
        ActionKind::kForward, [&](int k) { return CanForward(k, slot) && FitsForward(rank, k); },
        [&](int k) { return chunks_[k].next_forward; });
    const Action& first = preference_.forward_first ? forward : backward;
    const Action& second = preference_.forward_first ? backward : forward;
    if (first.micro_batch != kNotYet) return first;
    if (second.micro_batch != kNotYet) return second;
    return pick(
        ActionKind::kBackwardWeight, [&](int k) { return CanWeight(k, slot); },
        [&](int k) { return chunks_[k].next_weight; });
  }

  void Apply(int rank, const Action& action, int slot) {
    const int k = placement_.ModelChunk(rank, action.chunk);
    ChunkState& chunk = chunks_[k];
    switch (action.kind) {
      case ActionKind::kForward:
        busy_until_[rank] = slot + costs_.forward;
        forward_done_[k][chunk.next_forward++] = busy_until_[rank];
        ++held_[rank];
        break;
      case ActionKind::kBackwardInput:
        busy_until_[rank] = slot + costs_.backward_input;
        backward_done_[k][chunk.next_backward++] = busy_until_[rank];
        break;
      default:
        busy_until_[rank] = slot + costs_.weight;
        ++chunk.next_weight;
        --held_[rank];
        break;
    }
    steps_[rank].push_back({action});
  }

  int m_;
  const ChunkPlacement& placement_;
  std::vector<int> max_held_;
  Preference preference_;
  std::vector<std::vector<int>> forward_done_;   // [model chunk][micro-batch]: end, or kNotYet
  std::vector<std::vector<int>> backward_done_;  // B passes
  std::vector<ChunkState> chunks_;               // per model chunk
  std::vector<int> held_;                        // per rank: forwards not yet released by W
  PassCosts costs_;
  std::vector<int> busy_until_;  // per rank: when its current pass ends
  std::vector<std::vector<Step>> steps_;
};

// Whether `a` may run right after `b` instead of right before it on one rank: not two passes of
// one kind on one chunk (each kind ascends by micro-batch, so gradients accumulate in the
// single-process order), nor two passes of one micro-batch on one chunk (F, B, W in that order).
bool MaySwap(const Action& a, const Action& b) {
  if (a.chunk != b.chunk) return true;
  return a.kind != b.kind && a.micro_batch != b.micro_batch;
}

// At most `cap` forwards not yet released by their W at any point of the rank's order.
bool WithinCap(const std::vector<Step>& steps, int cap) {
  int held = 0;
  for (const Step& step : steps) {
    for (const Action& action : step) {
      if (action.kind == ActionKind::kForward && ++held > cap) return false;
      if (action.kind == ActionKind::kBackwardWeight) --held;
    }
  }
  return true;
}

// Local search from the greedy order: move one pass up to kMaxShift places earlier or later on
// its rank, keeping MaySwap with every pass it jumps and the rank's cap; keep a move when the
// posted schedule ends strictly sooner under the pass costs; stop when no move helps or after
// `budget` simulations. Deterministic (ranks, positions and shifts in order).
void ImproveByMoves(std::vector<std::vector<Step>>& ranks, double& end,
                    const ScheduleOptions& options, const ChunkPlacement& placement,
                    const std::vector<int>& max_held, int budget) {
  constexpr int kMaxShift = 12;
  bool improved = true;
  while (improved && budget > 0) {
    improved = false;
    for (size_t r = 0; r < ranks.size() && budget > 0; ++r) {
      const int n = static_cast<int>(ranks[r].size());
      for (int i = 0; i < n && budget > 0; ++i) {
        for (const int direction : {-1, 1}) {
          std::vector<Step> moved = ranks[r];
          for (int shift = 1; shift <= kMaxShift && budget > 0; ++shift) {
            const int from = i + (shift - 1) * direction, to = from + direction;
            if (to < 0 || to >= n || moved[from].size() != 1 || moved[to].size() != 1) break;
            if (!MaySwap(moved[from][0], moved[to][0])) break;
            std::swap(moved[from], moved[to]);
            if (!WithinCap(moved, max_held[r])) continue;
            std::vector<std::vector<Step>> candidate = ranks;
            candidate[r] = moved;
            --budget;
            const double candidate_end = PostedStepEnd(candidate, options, placement);
            if (candidate_end < 0 || candidate_end >= end - 1e-9) continue;
            ranks = std::move(candidate);
            end = candidate_end;
            improved = true;
            break;
          }
          if (improved) break;
        }
        if (improved) break;
      }
      if (improved) break;
    }
  }
}

}  // namespace

std::vector<std::vector<Step>> GreedyZeroBubbleSteps(const ScheduleOptions& options,
                                                     const ChunkPlacement& placement,
                                                     const std::vector<int>& max_held) {
  // Tries both preferences under the 8 largest uniform caps up to max_held, each in the timeline
  // of the pass costs and, when those differ, of unit costs (greedy is not optimal: the order
  // built for unit costs is sometimes the shorter one under the real costs too). Keeps the order
  // whose posted schedule the simulator ends first under the pass costs (then the least memory):
  // with costs other than 1, a transfer can wait for its peer to finish a pass, which the greedy
  // timeline does not see. Each try is O(slots · p) plus one simulation.
  constexpr int kCapsTried = 8;
  int most = 0;
  for (int held : max_held) most = std::max(most, held);
  std::vector<ScheduleOptions> timelines = {options};
  if (options.pass_costs != PassCosts{}) {
    timelines.push_back(options);
    timelines.back().pass_costs = PassCosts{};
  }
  std::vector<std::vector<Step>> best;
  double best_end = -1.0;
  for (int cap = std::max(placement.max_chunks_per_rank(), most - kCapsTried + 1); cap <= most;
       ++cap) {
    std::vector<int> caps = max_held;
    for (int& c : caps) c = std::min(c, cap);
    for (const ScheduleOptions& timeline_options : timelines) {
      for (const bool forward_first : {false, true}) {
        for (const bool oldest_first : {true, false}) {
          GreedyTimeline timeline(timeline_options, placement, caps,
                                  {.forward_first = forward_first, .oldest_first = oldest_first});
          if (timeline.Run() < 0) continue;
          StatusOr<std::vector<std::vector<Action>>> posted =
              PostAtProducerTime(timeline.steps(), options, placement);
          if (!posted.ok()) continue;
          StatusOr<Simulation> simulation =
              Simulate(*posted, SimulationCostsOf(options.pass_costs), placement);
          if (!simulation.ok()) continue;
          const double end = simulation->makespan_s;
          if (best_end >= 0 && end >= best_end) continue;
          best_end = end;
          best = timeline.steps();
        }
      }
    }
  }
  CHECK_GE(best_end, 0) << "no greedy zero-bubble schedule within the activation caps";
  // Then local search; its budget shrinks with the schedule's size (a simulation is linear in it).
  constexpr int kActionBudget = 200000;
  int actions = 0;
  for (const auto& rank : best) actions += static_cast<int>(rank.size());
  ImproveByMoves(best, best_end, options, placement, max_held,
                 std::clamp(kActionBudget / std::max(actions, 1), 50, 4000));
  return best;
}

}  // namespace deepnet::schedules
