// The list of schedule kinds: one entry per schedule, in ScheduleKind order. Adding a schedule
// is one file under schedules/ and one entry here (parallel/README.md).
#include <algorithm>

#include "parallel/schedule.h"
#include "parallel/schedules/compute_order.h"

namespace deepnet {
namespace {

using schedules::EveryRank;
using schedules::PostAtProducerTime;
using schedules::PostBetweenSteps;

ChunkPlacement OneChunkPerRank(const ScheduleOptions& o) {
  return ChunkPlacement::Looped(o.stages, 1);
}

Status CheckInterleaved(const ScheduleOptions& o) {
  const int p = o.stages;
  const int m = o.micro_batches;
  if (o.virtual_chunks > 1 && p < 2) {
    return InvalidArgument("the interleaved schedule needs at least 2 stages");
  }
  if (o.virtual_chunks > 1 && m > p && m % p != 0) {
    return InvalidArgument(
        "the interleaved schedule runs micro-batches in groups of p = " + std::to_string(p) +
        "; micro-batches (" + std::to_string(m) + ") must be a multiple of it, or at most p");
  }
  return OkStatus();
}

const std::vector<ScheduleKindInfo>& Table() {
  static const std::vector<ScheduleKindInfo> table = {
      {.kind = ScheduleKind::kGpipe,
       .name = "gpipe",
       .config_name = "GPIPE",
       .summary = "all forwards, then all backwards; holds m micro-batches",
       .splits_backward = false,
       .takes_virtual_chunks = false,
       .placement = OneChunkPerRank,
       .check = nullptr,
       .build = [](const ScheduleOptions& o,
                   const ChunkPlacement& placement) -> StatusOr<std::vector<std::vector<Action>>> {
         return PostBetweenSteps(EveryRank(schedules::GpipeSteps, o), o, placement);
       }},
      {.kind = ScheduleKind::kOneFOneB,
       .name = "1f1b",
       .config_name = "ONE_F_ONE_B",
       .summary = "warm-up forwards, then one forward / one backward; holds min(p-r, m)",
       .splits_backward = false,
       .takes_virtual_chunks = false,
       .placement = OneChunkPerRank,
       .check = nullptr,
       .build = [](const ScheduleOptions& o,
                   const ChunkPlacement& placement) -> StatusOr<std::vector<std::vector<Action>>> {
         return PostBetweenSteps(EveryRank(schedules::OneFOneBSteps, o), o, placement);
       }},
      {.kind = ScheduleKind::kInterleaved1F1B,
       .name = "interleaved",
       .config_name = "INTERLEAVED_1F1B",
       .summary = "1F1B over v looped chunks per rank; bubble / v",
       .splits_backward = false,
       .takes_virtual_chunks = true,
       .placement =
           [](const ScheduleOptions& o) {
             return ChunkPlacement::Looped(o.stages, std::max(1, o.virtual_chunks));
           },
       .check = CheckInterleaved,
       .build = [](const ScheduleOptions& o,
                   const ChunkPlacement& placement) -> StatusOr<std::vector<std::vector<Action>>> {
         return PostBetweenSteps(EveryRank(o.virtual_chunks == 1 ? schedules::OneFOneBSteps
                                                                 : schedules::Interleaved1F1BSteps,
                                           o),
                                 o, placement);
       }},
      {.kind = ScheduleKind::kZeroBubbleH1,
       .name = "zb-h1",
       .config_name = "ZERO_BUBBLE_H1",
       .summary = "1F1B with B/W split, W passes fill the tail; 1F1B's memory",
       .splits_backward = true,
       .takes_virtual_chunks = false,
       .placement = OneChunkPerRank,
       .check = nullptr,
       .build = [](const ScheduleOptions& o,
                   const ChunkPlacement& placement) -> StatusOr<std::vector<std::vector<Action>>> {
         return PostAtProducerTime(EveryRank(schedules::ZeroBubbleH1Steps, o), o, placement);
       }},
      {.kind = ScheduleKind::kZeroBubbleH2,
       .name = "zb-h2",
       .config_name = "ZERO_BUBBLE_H2",
       .summary = "B/W split with more warm-up forwards; about 2x 1F1B's memory",
       .splits_backward = true,
       .takes_virtual_chunks = false,
       .placement = OneChunkPerRank,
       .check = nullptr,
       .build = [](const ScheduleOptions& o,
                   const ChunkPlacement& placement) -> StatusOr<std::vector<std::vector<Action>>> {
         return PostAtProducerTime(schedules::ZeroBubbleH2Steps(o, placement), o, placement);
       }},
      {.kind = ScheduleKind::kZeroBubbleV,
       .name = "zb-v",
       .config_name = "ZERO_BUBBLE_V",
       .summary = "2 chunks per rank in a V (r and 2p-1-r), B/W split; 1F1B's memory",
       .splits_backward = true,
       .takes_virtual_chunks = false,
       .placement = [](const ScheduleOptions& o) { return ChunkPlacement::V(o.stages); },
       .check = nullptr,
       .build = [](const ScheduleOptions& o,
                   const ChunkPlacement& placement) -> StatusOr<std::vector<std::vector<Action>>> {
         return PostAtProducerTime(schedules::ZeroBubbleVSteps(o, placement), o, placement);
       }},
  };
  return table;
}

}  // namespace

const std::vector<ScheduleKindInfo>& AllScheduleKinds() { return Table(); }

const ScheduleKindInfo& InfoOf(ScheduleKind kind) { return Table()[static_cast<size_t>(kind)]; }

}  // namespace deepnet
