// Pipeline schedules as data: for one rank, the ordered list of actions it runs in one step.
//
// Letters: p pipeline stages (ranks), r a rank in [0, p), m micro-batches per step, v model
// chunks per rank (interleaved only), k a model chunk. Which rank holds model chunk k, and as
// which local chunk c (the Action's `chunk`), is the schedule's ChunkPlacement
// (chunk_placement.h; PlacementOf below). Activations flow k → k+1 and gradients flow back.
//
// Invariants every generated schedule keeps (validate.h checks them; the engine relies on them):
// - Per chunk, forwards, backwards (or B passes) and W passes run in ascending micro-batch order
//   0..m−1, so per-parameter gradients accumulate in the single-process order (bit-identical). A
//   B/W-split schedule may run some backwards fused (a W right after its own B); a fused backward
//   comes after the W passes of the chunk's earlier micro-batches.
// - Communication actions carry a `group` id; the actions of one group are adjacent and are
//   posted together (one NCCL group / one set of MPI nonblocking calls). The engine completes a
//   receive just before the pass that consumes it and the sends before ReduceGradients, so a
//   transfer never holds up a pass that does not use it. Compute actions have group −1. GPipe and 1F1B post, between two compute actions, the sends of
//   the one before with the receives of the one after: 1F1B's steady state posts "send activation
//   to r+1" with "recv gradient from r+1" (Megatron's send_forward_recv_backward). Interleaved
//   posts one group after each steady forward+backward pair (Megatron's
//   send_forward_backward_recv_forward_backward). ZB-H1 posts each transfer, on both ranks, when
//   its producer finishes in the unit-cost timeline (schedules/compute_order.h says why).
//   A rank's groups are assumed to go through one link in post order and a send to block that
//   link until the receiver posts (rendezvous, as NCCL does); the generated schedules are
//   deadlock-free under that assumption (simulator.h checks it; tests cover p ≤ 8, m ≤ 16). A
//   receive may be posted some compute actions before the one that consumes it (ZB-H1), so the
//   engine keys received buffers by (kind, micro-batch, chunk).
// - The list ends with ReduceGradients (tied embeddings, data-parallel all-reduce, global grad
//   norm: a collective of all ranks) then OptimizerStep.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "parallel/chunk_placement.h"
#include "runtime/status.h"

namespace deepnet {

enum class ActionKind {
  kForward,
  kBackward,        // input and weight gradients together
  kBackwardInput,   // "B": input gradient only (zero-bubble)
  kBackwardWeight,  // "W": the weight gradient held back by B (zero-bubble)
  kSendActivation,  // to the rank holding model chunk k+1
  kRecvActivation,  // from the rank holding model chunk k−1
  kSendGradient,    // to the rank holding model chunk k−1
  kRecvGradient,    // from the rank holding model chunk k+1
  kReduceGradients,
  kOptimizerStep,
};

struct Action {
  ActionKind kind = ActionKind::kForward;
  int micro_batch = -1;  // −1 for ReduceGradients / OptimizerStep
  int chunk = 0;         // local chunk c on this rank
  int peer = -1;         // the other rank of a send/recv, else −1
  int group = -1;        // communication group id (ascending per rank), −1 for compute

  friend bool operator==(const Action&, const Action&) = default;
};

enum class ScheduleKind {
  kGpipe,
  kOneFOneB,
  kInterleaved1F1B,
  kZeroBubbleH1,
  kZeroBubbleH2,
  kZeroBubbleV,
};

// How long each pass of one model chunk and micro-batch takes, in whole time units, relative to
// each other. Schedules that place passes by time (ZB-V by list scheduling, ZB-H2 by choosing
// between its parallelogram and the list scheduler's order, every B/W-split schedule's transfer
// posting) build their order in this timeline; the fixed patterns (GPipe, 1F1B, interleaved,
// ZB-H1) do not depend on it. A fused backward takes
// backward_input + weight. All ranks must use the same costs (trainer set-up derives them from
// the config: PassCostsOf in pipeline_trainer.h).
struct PassCosts {
  int forward = 1;
  int backward_input = 1;  // B
  int weight = 1;          // W

  friend bool operator==(const PassCosts&, const PassCosts&) = default;
};

struct ScheduleOptions {
  int stages = 1;          // p
  int micro_batches = 1;   // m
  int rank = 0;            // r, ignored by BuildAllSchedules
  int virtual_chunks = 1;  // v: > 1 only with kInterleaved1F1B
  PassCosts pass_costs;    // F = B = W = 1 unless set
  // False for a gradient-accumulation flush that is not the last of the step: the schedule then
  // ends after the last backward, without ReduceGradients / OptimizerStep.
  bool optimizer_step = true;
};

// One entry per schedule kind, in enum order (schedule_kinds.cc): the one list that the command
// line, config checks, profiler, planner and tests iterate. Adding a schedule: parallel/README.md.
struct ScheduleKindInfo {
  ScheduleKind kind;
  std::string_view name;         // `deepnet schedule --schedule` name, e.g. "zb-v"
  std::string_view config_name;  // parallel.schedule enum name, e.g. "ZERO_BUBBLE_V"
  std::string_view summary;      // one line for help texts and tables
  bool splits_backward;          // runs B and W passes (the input-only backward costs apply)
  bool takes_virtual_chunks;     // v > 1 allowed (parallel.virtual_chunks)
  // Where the model chunks live for these options.
  ChunkPlacement (*placement)(const ScheduleOptions& options);
  // Constraints beyond the common ones (p, m ≥ 1, rank in range, v only where taken); null = none.
  Status (*check)(const ScheduleOptions& options);
  // Every rank's actions, without ReduceGradients / OptimizerStep. Called after the checks.
  StatusOr<std::vector<std::vector<Action>>> (*build)(const ScheduleOptions& options,
                                                      const ChunkPlacement& placement);
};

const std::vector<ScheduleKindInfo>& AllScheduleKinds();
const ScheduleKindInfo& InfoOf(ScheduleKind kind);
// "gpipe, 1f1b, interleaved, zb-h1, zb-h2 or zb-v": for help texts and errors.
std::string ScheduleKindNames();

bool IsCompute(ActionKind kind);
bool IsSend(ActionKind kind);
bool IsRecv(ActionKind kind);
inline bool IsCommunication(ActionKind kind) { return IsSend(kind) || IsRecv(kind); }
// Actions after which the micro-batch's stored activations are gone: Backward, BackwardWeight.
bool ReleasesActivations(ActionKind kind);

std::string_view ActionKindName(ActionKind kind);
std::string_view ScheduleKindName(ScheduleKind kind);  // InfoOf(kind).name
// Accepts the names and the config spellings of AllScheduleKinds() (and "interleaved-1f1b",
// "one-f-one-b"), case-insensitively, '-' and '_' ignored.
StatusOr<ScheduleKind> ParseScheduleKind(std::string_view name);

// "F3" (forward of micro-batch 3), "B3" (backward, or zero-bubble B pass), "W3", "F3.1" (local
// chunk 1), "send-act 3 -> 2", "recv-grad 3.1 <- 0", "reduce-grads", "optimizer-step".
std::string ToString(const Action& action);
// One action per line with its index and group: "  12 g5 send-act 3 -> 2".
std::string FormatSchedule(const std::vector<Action>& actions);

// OK when a schedule of `kind` exists for these options. Interleaved with v > 1 needs p ≥ 2 and m
// a multiple of p (Megatron's groups of p micro-batches per chunk) or m ≤ p (then every forward
// runs first, GPipe-like); with v = 1 it is 1F1B.
Status CheckScheduleOptions(ScheduleKind kind, const ScheduleOptions& options);

// The schedule's chunk placement for these options (checked first; options.rank is ignored).
StatusOr<ChunkPlacement> PlacementOf(ScheduleKind kind, const ScheduleOptions& options);

// The actions of rank `options.rank`. Pure: the same inputs give the same list on every rank.
StatusOr<std::vector<Action>> BuildSchedule(ScheduleKind kind, const ScheduleOptions& options);
// Every rank's list, indexed by rank.
StatusOr<std::vector<std::vector<Action>>> BuildAllSchedules(ScheduleKind kind,
                                                             ScheduleOptions options);

// Most micro-batches whose activations a (rank, local chunk) holds at once (forwards not yet
// released by Backward or BackwardWeight), indexed by model chunk k. Exact for the generated
// schedules: 1F1B gives min(p−r, m), GPipe m, ZB-H1 min(p, m) (its deferred W passes keep
// activations on later stages longer; every stage stays within 1F1B's stage-0 peak).
StatusOr<std::vector<int>> PeakActivationsPerChunk(ScheduleKind kind,
                                                   const ScheduleOptions& options);
// The same for given lists and placement (a schedule read from a file).
std::vector<int> PeakActivationsPerChunk(const std::vector<std::vector<Action>>& ranks,
                                         const ChunkPlacement& placement);

}  // namespace deepnet
