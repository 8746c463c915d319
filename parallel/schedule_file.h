// A pipeline schedule read from a text file, so users can try their own: validated, simulated
// and run by the engine like the built-in ones (`deepnet schedule --from FILE`,
// parallel.schedule_file).
//
// One action per line, fields separated by blanks; '#' starts a comment:
//
//   # rank  kind      micro-batch  model chunk
//   0       F         0            0
//   1       recv      0            1
//   1       F         0            1
//
// - kind: F (forward), B (backward; the input-gradient pass when the file also has a W for that
//   micro-batch and chunk, else the fused backward), W (weight-gradient pass), send / recv (the
//   activation or the gradient, whichever the chunk's passes on that rank imply: a recv before
//   the chunk's forward of that micro-batch brings its input, after it the gradient), or the
//   explicit send-act, recv-act, send-grad, recv-grad. Case-insensitive.
// - model chunk: the global index k (0 = the embedding side). The rank that runs a chunk's passes
//   holds it; that gives the ChunkPlacement, and the peer of every send and receive.
// - A rank's sends and receives with no compute of that rank between them are posted together,
//   as one group; a line "<rank> -" ends the rank's group early. A file without any send or receive
//   gets them posted for it, each when its producer ends in the unit-cost timeline (as ZB-H1's
//   are).
// - Ranks and micro-batches are counted from the file (0..max); ReduceGradients and
//   OptimizerStep are appended. Lines of different ranks may interleave; each rank's lines keep
//   their order.
// Errors name the file and line: "my.schedule:7: model chunk 2 runs on rank 1 (line 4), not 0".
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "parallel/chunk_placement.h"
#include "parallel/schedule.h"
#include "runtime/status.h"

namespace deepnet {

struct FileSchedule {
  ChunkPlacement placement;
  int micro_batches = 0;
  // Every rank's actions, ending with ReduceGradients, OptimizerStep.
  std::vector<std::vector<Action>> ranks;
};

// `name` is used in errors ("name:line: ...").
StatusOr<FileSchedule> ParseScheduleText(std::string_view text, std::string_view name);
StatusOr<FileSchedule> ReadScheduleFile(const std::string& path);

// The lists without the final ReduceGradients / OptimizerStep (a gradient-accumulation flush).
std::vector<std::vector<Action>> WithoutOptimizerStep(std::vector<std::vector<Action>> ranks);

// Every rank's compute and communication in the file format (explicit kinds), rank by rank, with
// "<rank> -" between adjacent groups: parsing it gives the same lists.
std::string FormatScheduleFile(const std::vector<std::vector<Action>>& ranks,
                               const ChunkPlacement& placement);

}  // namespace deepnet
