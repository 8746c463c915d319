// The model-update probe of the DeepNet paper's Fig. 4: ||F(x; θ_t) − F(x; θ_0)||, the L2 norm of
// how far the logits of one fixed batch have moved since the initial parameters. Post-LN's
// updates grow large in the first steps and DeepNorm keeps them bounded, so this is the quantity
// the depth study (scripts/depth_study.sh) plots. Enabled by train.update_norm_every.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"
#include "model/unit.h"
#include "runtime/status.h"
#include "text/batcher.h"

namespace deepnet {

class UpdateNormProbe {
 public:
  // Records F(x; θ_0): the logits of `batch` under the model's current parameters, at its non-pad
  // target positions. `model` must hold every unit (one process); `ctx` is an evaluation context
  // (dropout off), used for every later measurement too.
  static StatusOr<UpdateNormProbe> Create(Model& model, const Batch& batch, const StepContext& ctx);

  // ||F(x; θ) − F(x; θ_0)|| under the model's current parameters, over the same positions.
  StatusOr<double> Measure(Model& model) const;

 private:
  UpdateNormProbe() = default;
  // The logits at the non-pad target positions, row by row, as float.
  StatusOr<std::vector<float>> Logits(Model& model) const;

  MicroBatch batch_;
  std::vector<int32_t> target_lengths_;  // (B) non-pad target tokens of each row
  StepContext ctx_;
  std::vector<float> initial_;  // F(x; θ_0)
};

}  // namespace deepnet
