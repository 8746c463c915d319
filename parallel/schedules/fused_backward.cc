// B then W of one micro-batch and chunk, back to back on a rank, run as one fused backward.
//
// A fused backward computes each layer's weight gradient while that layer's inputs and output
// gradient are still in cache; a W pass after a B of the whole chunk reads them back from memory,
// which costs time where the layers are narrow (parallel/README.md, "Pass costs"). The split only
// pays where W moves: into a gap, or behind a B whose input gradient another rank waits for.
#include <optional>

#include "parallel/schedules/compute_order.h"

namespace deepnet::schedules {
namespace {

// Whether steps[i], steps[i + 1] are one B and the W of the same micro-batch and chunk.
bool IsOwnWeightNext(const std::vector<Step>& steps, size_t i) {
  if (i + 1 >= steps.size() || steps[i].size() != 1 || steps[i + 1].size() != 1) return false;
  const Action& b = steps[i][0];
  const Action& w = steps[i + 1][0];
  return b.kind == ActionKind::kBackwardInput && w.kind == ActionKind::kBackwardWeight &&
         b.micro_batch == w.micro_batch && b.chunk == w.chunk;
}

}  // namespace

std::vector<std::vector<Step>> FuseAdjacentBackward(std::vector<std::vector<Step>> ranks,
                                                    const ScheduleOptions& options,
                                                    const ChunkPlacement& placement) {
  std::optional<PostedTiming> timing = PostedTimingOf(ranks, options, placement);
  if (!timing) return ranks;  // cannot run as it is; the posting reports why
  for (std::vector<Step>& steps : ranks) {
    for (size_t i = 0; i < steps.size(); ++i) {
      if (!IsOwnWeightNext(steps, i)) continue;
      const std::vector<Step> split = steps;
      steps[i][0].kind = ActionKind::kBackward;
      steps.erase(steps.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      const std::optional<PostedTiming> fused = PostedTimingOf(ranks, options, placement);
      if (!fused || !fused->NotLongerThan(*timing)) {
        steps = split;  // the fused pass would hold back a gradient that another rank waits for
        continue;
      }
      timing = fused;
    }
  }
  return ranks;
}

}  // namespace deepnet::schedules
