// The list of schedule kinds: one entry per schedule, in ScheduleKind order. Adding a schedule
// is one file under schedules/ and one entry here (parallel/README.md).
#include <algorithm>

#include "parallel/schedule.h"
#include "parallel/schedules/compute_order.h"

namespace deepnet {
namespace {

using schedules::EveryRank;
using schedules::FuseAdjacentBackward;
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

using Ranks = std::vector<std::vector<Action>>;

// Builders: a per-rank skeleton posted between steps (Megatron's way), or every rank's skeletons
// posted when each transfer's producer ends (zero-bubble schedules).
template <std::vector<schedules::Step> (*kSteps)(const ScheduleOptions&)>
StatusOr<Ranks> BetweenSteps(const ScheduleOptions& o, const ChunkPlacement& placement) {
  return PostBetweenSteps(EveryRank(kSteps, o), o, placement);
}
// B/W-split skeletons fuse each W that directly follows its own B where nothing waits for it.
template <std::vector<schedules::Step> (*kSteps)(const ScheduleOptions&)>
StatusOr<Ranks> EveryRankAtProducerTime(const ScheduleOptions& o, const ChunkPlacement& placement) {
  return PostAtProducerTime(FuseAdjacentBackward(EveryRank(kSteps, o), o, placement), o, placement);
}
template <std::vector<std::vector<schedules::Step>> (*kSteps)(const ScheduleOptions&,
                                                              const ChunkPlacement&)>
StatusOr<Ranks> AtProducerTime(const ScheduleOptions& o, const ChunkPlacement& placement) {
  return PostAtProducerTime(FuseAdjacentBackward(kSteps(o, placement), o, placement), o, placement);
}
StatusOr<Ranks> Interleaved(const ScheduleOptions& o, const ChunkPlacement& placement) {
  return o.virtual_chunks == 1 ? BetweenSteps<schedules::OneFOneBSteps>(o, placement)
                               : BetweenSteps<schedules::Interleaved1F1BSteps>(o, placement);
}

ChunkPlacement LoopedChunks(const ScheduleOptions& o) {
  return ChunkPlacement::Looped(o.stages, std::max(1, o.virtual_chunks));
}
ChunkPlacement VChunks(const ScheduleOptions& o) { return ChunkPlacement::V(o.stages); }

// Fields: kind, name, config_name, summary, splits_backward, takes_virtual_chunks, placement,
// check, build (schedule.h).
const std::vector<ScheduleKindInfo>& Table() {
  static const std::vector<ScheduleKindInfo> table = {
      {ScheduleKind::kGpipe, "gpipe", "GPIPE",
       "all forwards, then all backwards; holds m micro-batches", false, false, OneChunkPerRank,
       nullptr, BetweenSteps<schedules::GpipeSteps>},
      {ScheduleKind::kOneFOneB, "1f1b", "ONE_F_ONE_B",
       "warm-up forwards, then one forward / one backward; holds min(p-r, m)", false, false,
       OneChunkPerRank, nullptr, BetweenSteps<schedules::OneFOneBSteps>},
      {ScheduleKind::kInterleaved1F1B, "interleaved", "INTERLEAVED_1F1B",
       "1F1B over v looped chunks per rank; bubble / v", false, true, LoopedChunks,
       CheckInterleaved, Interleaved},
      {ScheduleKind::kZeroBubbleH1, "zb-h1", "ZERO_BUBBLE_H1",
       "1F1B with B/W split, W passes fill the tail; 1F1B's memory", true, false, OneChunkPerRank,
       nullptr, EveryRankAtProducerTime<schedules::ZeroBubbleH1Steps>},
      {ScheduleKind::kZeroBubbleH2, "zb-h2", "ZERO_BUBBLE_H2",
       "B/W split with more warm-up forwards; about 2x 1F1B's memory", true, false, OneChunkPerRank,
       nullptr, AtProducerTime<schedules::ZeroBubbleH2Steps>},
      {ScheduleKind::kZeroBubbleV, "zb-v", "ZERO_BUBBLE_V",
       "2 chunks per rank in a V (r and 2p-1-r), B/W split; 1F1B's memory", true, false, VChunks,
       nullptr, AtProducerTime<schedules::ZeroBubbleVSteps>},
  };
  return table;
}

}  // namespace

const std::vector<ScheduleKindInfo>& AllScheduleKinds() { return Table(); }

const ScheduleKindInfo& InfoOf(ScheduleKind kind) { return Table()[static_cast<size_t>(kind)]; }

}  // namespace deepnet
