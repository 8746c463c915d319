// Interleaved 1F1B (Narayanan et al., 2021; Megatron-LM's forward_backward_pipelining_with_
// interleaving). Each rank holds v model chunks; local chunk c of rank r is model chunk c·p + r.
//
// Order: micro-batches go in groups of p. Forward slot s (of v·m) runs micro-batch
// (s / (p·v))·p + s % p on chunk (s / p) % v: a group passes through chunk 0, then chunk 1, …
// Backward slot s runs the same micro-batch on chunk v−1−(s / p) % v. Per chunk, micro-batches
// therefore run in ascending order in both directions.
// Phases: warm-up of min(2·(p−r−1) + (v−1)·p, v·m) forward slots (all of them when m ≤ p, as
// Megatron does for m = p), steady state alternating one forward slot and one backward slot,
// cool-down of the remaining backward slots. The bubble shrinks by v: (p−1)·(F+B)/v per rank, with
// F and B the times of a whole stage (v chunks).
#include <algorithm>

#include "parallel/schedules/compute_order.h"

namespace deepnet::schedules {
namespace {

// Megatron's order of (micro-batch, chunk) slots: micro-batches in groups of p (the last group
// may be smaller), each group through chunk 0, 1, …, v−1 (forward) or v−1, …, 0 (backward).
std::vector<Action> SlotOrder(ActionKind kind, int p, int m, int v) {
  std::vector<Action> order;
  for (int first = 0; first < m; first += p) {
    const int end = std::min(first + p, m);
    for (int c = 0; c < v; ++c) {
      const int chunk = kind == ActionKind::kForward ? c : v - 1 - c;
      for (int mb = first; mb < end; ++mb) order.push_back(Compute(kind, mb, chunk));
    }
  }
  return order;
}

}  // namespace

std::vector<Step> Interleaved1F1BSteps(const ScheduleOptions& options) {
  const int p = options.stages;
  const int m = options.micro_batches;
  const int v = options.virtual_chunks;
  const int slots = m * v;
  const int warmup = m <= p ? slots : std::min(2 * (p - options.rank - 1) + (v - 1) * p, slots);

  std::vector<Step> steps;
  const std::vector<Action> forwards = SlotOrder(ActionKind::kForward, p, m, v);
  const std::vector<Action> backwards = SlotOrder(ActionKind::kBackward, p, m, v);
  auto forward = [&](int slot) { return forwards[slot]; };
  auto backward = [&](int slot) { return backwards[slot]; };
  // Warm-up: forward slots only.
  for (int s = 0; s < warmup; ++s) steps.push_back({forward(s)});
  // Steady 1F1B: forward slot warmup+i and backward slot i as one step, so that one group
  // afterwards sends both results and receives both next inputs (Megatron's
  // send_forward_backward_recv_forward_backward). Posting between them instead deadlocks: every
  // rank would block sending a gradient around the ring of chunks.
  for (int i = 0; i < slots - warmup; ++i) steps.push_back({forward(warmup + i), backward(i)});
  // Cool-down: the backward slots left.
  for (int s = slots - warmup; s < slots; ++s) steps.push_back({backward(s)});
  return steps;
}

}  // namespace deepnet::schedules
