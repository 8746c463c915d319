// ZB-V (Qi et al., 2024, "Pipeline Parallelism with Controllable Memory"): two model chunks per
// rank in a V — rank r holds chunks r and 2p−1−r, so a micro-batch goes down the ranks and back
// up, and the first and last chunk (embedding and loss) share rank 0. The turn at rank p−1 hands
// over locally. B and W are split; W passes fill what would be idle.
//
// Memory: each chunk is half a stage, and every rank may hold 2·min(p, m) chunk activations,
// i.e. min(p, m) stages' worth — 1F1B's peak (that of its stage 0). With F = B = W per chunk
// the bubble is close to zero: only the ramp at the start and the end.
// The order comes from the greedy list scheduler (zero_bubble_greedy.cc) under that cap.
#include <algorithm>

#include "parallel/schedules/compute_order.h"

namespace deepnet::schedules {

std::vector<std::vector<Step>> ZeroBubbleVSteps(const ScheduleOptions& options,
                                                const ChunkPlacement& placement) {
  // A chunk is half a stage: 1F1B's stage-0 peak of min(p, m) stages is twice as many chunks.
  constexpr int kChunksPerStage = 2;
  std::vector<int> caps;
  for (int r = 0; r < placement.ranks(); ++r) {
    caps.push_back(kChunksPerStage * std::min(options.stages, options.micro_batches));
  }
  return GreedyZeroBubbleSteps(options, placement, caps);
}

}  // namespace deepnet::schedules
