// The model-update probe (see the header).
#include "train/update_norm.h"

#include <cmath>
#include <string>

#include "model/unit_base.h"
#include "train/micro_batch.h"

namespace deepnet {

StatusOr<UpdateNormProbe> UpdateNormProbe::Create(Model& model, const Batch& batch,
                                                  const StepContext& ctx) {
  if (!model.has_first_unit() || !model.has_last_unit()) {
    return FailedPrecondition("the update-norm probe needs the whole model on one process");
  }
  if (batch.batch_size == 0 || batch.target_len == 0) {
    return FailedPrecondition("the update-norm probe needs a batch with target tokens");
  }
  UpdateNormProbe probe;
  probe.batch_ = ToMicroBatch(batch, 0, model.backend());
  probe.target_lengths_ = batch.target_lengths;
  probe.ctx_ = ctx;
  probe.ctx_.training = false;
  ASSIGN_OR_RETURN(probe.initial_, probe.Logits(model));
  return probe;
}

StatusOr<std::vector<float>> UpdateNormProbe::Logits(Model& model) const {
  const Backend& backend = model.backend();
  Tensor logits = model.Logits(ctx_, batch_);  // (B, T, V)
  if (logits.dtype() != DType::kF32) {         // 16-bit compute: widen on the device before copying
    Tensor wide = backend.Empty(logits.shape(), DType::kF32, MemoryCategory::kWorkspace);
    backend.Convert(wide, logits);
    logits = std::move(wide);
  }
  const Tensor host = ToHost(backend, logits);
  const int64_t rows = logits.dim(0), positions = logits.dim(1), vocab = logits.dim(2);
  if (rows != static_cast<int64_t>(target_lengths_.size())) {
    return Internal("update-norm probe: logits have " + std::to_string(rows) + " rows, the batch " +
                    std::to_string(target_lengths_.size()));
  }
  std::vector<float> kept;
  const float* data = host.data<float>();
  for (int64_t row = 0; row < rows; ++row) {
    const float* begin = data + row * positions * vocab;
    kept.insert(kept.end(), begin, begin + int64_t{target_lengths_[row]} * vocab);
  }
  return kept;
}

StatusOr<double> UpdateNormProbe::Measure(Model& model) const {
  ASSIGN_OR_RETURN(const std::vector<float> now, Logits(model));
  double sum = 0.0;
  for (size_t i = 0; i < now.size(); ++i) {
    const double delta = static_cast<double>(now[i]) - static_cast<double>(initial_[i]);
    sum += delta * delta;
  }
  return std::sqrt(sum);
}

}  // namespace deepnet
