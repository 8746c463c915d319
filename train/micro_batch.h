// From the batcher's padded host vectors to the model's MicroBatch tensors.
//
// Letters: B rows of the (micro-)batch, S source length, T target length.
#pragma once

#include <vector>

#include "kernels/backend.h"
#include "model/unit.h"
#include "runtime/status.h"
#include "text/batcher.h"

namespace deepnet {

// One micro-batch on `backend`'s device: source (B, S) i32, source_mask (B, S) u8 (1 = pad),
// target_input (B, T) i32, target_mask (B, T) u8 (1 = pad), target (B, T) i32. `index` numbers
// the micro-batch within its step (it keys the dropout streams).
MicroBatch ToMicroBatch(const Batch& batch, int index, const Backend& backend);

// Splits `batch` into `num_micro_batches` consecutive row ranges (text's SplitBatch) numbered from
// `first_index`.
StatusOr<std::vector<MicroBatch>> ToMicroBatches(const Batch& batch, int num_micro_batches,
                                                 int first_index, const Backend& backend);

}  // namespace deepnet
