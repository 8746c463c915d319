// The analytic cost model's view of a model config (parallel/cost_model.h stays free of configs).
#pragma once

#include "configs/deepnet.pb.h"
#include "parallel/cost_model.h"

namespace deepnet {

// Architecture, depths, widths, vocabulary (model.vocab_size as given), tying and Pre-LN.
ModelShape ModelShapeOf(const config::ModelConfig& model);

}  // namespace deepnet
