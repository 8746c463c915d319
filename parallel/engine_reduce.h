// GradientReducer: the cross-rank gradient work at the end of a pipeline step.
//
// 1. Tied embeddings: the stage holding the embedding (primary copy) and the stage holding the
//    output unit (tied copy) swap their gradients and both set grad = grad_embedding + grad_output,
//    the order Model::SumTiedGradients uses, so the bits match one process. Both on this rank:
//    summed locally.
// 2. Data parallelism: every unit's flat gradient is all-reduced (summed) over the data group.
//    MPI picks the summation order, so R > 1 matches one process within rounding, not bitwise.
// 3. Global gradient norm (the Optimizer's GradNormReducer): every rank's per-unit Σ grad² (primary
//    copies only) are all-gathered over the pipeline group and added in unit order — exactly what
//    one process adds, so the norm and the clip scale are bit-identical. It runs after the
//    all-reduce, on gradients every replica holds alike, so every replica gets the same norm.
// Gradients move over device communicators (NCCL on GPUs) or are staged through the host
// (device_transfers.h); the norm's partial sums are host numbers and use the host communicator.
#pragma once

#include <vector>

#include "kernels/backend.h"
#include "model/unit.h"
#include "parallel/device_transfers.h"
#include "runtime/communicator.h"
#include "runtime/status.h"
#include "train/optimizer.h"

namespace deepnet {

class GradientReducer final : public GradNormReducer {
 public:
  // `unit_stage[u]`: the pipeline stage holding unit u (every unit of the model). `units`: this
  // rank's units. `tied`: the model ties the output projection to the embedding.
  // `device_pipeline` and `device_data` carry the gradients themselves (the same groups over NCCL);
  // null: `pipeline` and `data`.
  GradientReducer(Communicator& pipeline, Communicator& data, std::vector<int> unit_stage,
                  std::vector<Unit*> units, bool tied, const Backend& backend,
                  Communicator* device_pipeline = nullptr, Communicator* device_data = nullptr);

  // Steps 1 and 2.
  Status ReduceGradients();
  // Step 3 (called by Optimizer::Step).
  StatusOr<double> GlobalSumOfSquares(const std::vector<UnitGradSquares>& local) override;

 private:
  Status SumTiedGradients();

  Communicator& pipeline_;
  DeviceTransfers pipeline_transfers_;
  DeviceTransfers data_transfers_;
  std::vector<int> unit_stage_;
  std::vector<Unit*> units_;
  const Backend& backend_;
  Parameter* embedding_ = nullptr;  // primary copy, when held here
  Parameter* tied_copy_ = nullptr;  // the output unit's copy, when held here
  bool tied_ = false;
};

}  // namespace deepnet
