// OutputUnit: logits = states · Wᵀ and the label-smoothed cross-entropy.
// Letters: B batch, T positions, N = B·T, C d_model, V vocab.
#include "model/units.h"

namespace deepnet {
namespace {

class OutputSaved final : public SavedActivations {
 public:
  int64_t bytes() const override { return SumBytes({&x, &logits, &lse}); }
  Tensor x;       // (B, T, C) states
  Tensor logits;  // (B, T, V)
  Tensor lse;     // (B, T) log Σ exp(logits)
  double label_smoothing = 0.0;
  int pad_id = 0;
};

}  // namespace

OutputUnit::OutputUnit(int index, const ModelSettings& settings)
    : ModelUnit("output", index, settings, UnitParamSpecs(settings, UnitKind::kOutput, 0)),
      weight_(&parameters_.front()) {}

Tensor OutputUnit::Logits(const StepContext& ctx, const Tensor& states) const {
  CHECK(!IsEmpty(states)) << name_ << ": no states to project";
  const Backend& b = backend(ctx);
  Tensor logits =
      NewActivation(b, {states.dim(0), states.dim(1), settings_.vocab_size}, states.dtype());
  b.LinearForward(logits, states, weight_->value, nullptr);
  return logits;
}

std::unique_ptr<SavedActivations> OutputUnit::Forward(const StepContext& ctx, const MicroBatch& mb,
                                                      Stream& io) {
  const Backend& b = backend(ctx);
  auto saved = std::make_unique<OutputSaved>();
  saved->x = States(io);
  CHECK(mb.target.rank() == 2 && mb.target.dim(0) == saved->x.dim(0) &&
        mb.target.dim(1) == saved->x.dim(1))
      << name_ << ": targets " << mb.target.ToString() << " do not match the states "
      << saved->x.ToString();
  saved->logits = Logits(ctx, saved->x);
  saved->lse = NewActivation(b, mb.target.shape(), StatsDType(saved->x.dtype()));
  saved->label_smoothing = ctx.label_smoothing;
  saved->pad_id = ctx.pad_id;
  Tensor losses =
      b.Empty(mb.target.shape(), StatsDType(saved->x.dtype()), MemoryCategory::kWorkspace);
  b.CrossEntropyForward(losses, saved->lse, saved->logits, mb.target, ctx.label_smoothing,
                        ctx.pad_id);

  // Σ losses in token order in double; padded targets have loss 0.
  const Tensor host_losses = ToHost(b, losses);
  const Tensor host_targets = ToHost(b, mb.target);
  const int32_t* targets = host_targets.data<int32_t>();
  double loss_sum = 0.0;
  int64_t tokens = 0;
  for (int64_t n = 0; n < host_losses.numel(); ++n) {
    loss_sum += host_losses.dtype() == DType::kF64 ? host_losses.data<double>()[n]
                                                   : host_losses.data<float>()[n];
    tokens += targets[n] != ctx.pad_id ? 1 : 0;
  }
  io.loss_sum = loss_sum;
  io.loss_tokens = tokens;
  io.enc = Tensor();
  io.dec = Tensor();
  return saved;
}

void OutputUnit::RunBackward(const StepContext& ctx, const MicroBatch& mb,
                             const SavedActivations& saved, Stream& grad, GradWork& work) {
  const auto& s = dynamic_cast<const OutputSaved&>(saved);
  const Backend& b = backend(ctx);
  Tensor dlogits = NewLike(b, s.logits);
  b.CrossEntropyBackward(dlogits, s.logits, s.lse, mb.target, ctx.loss_scale, s.label_smoothing,
                         s.pad_id);
  Tensor dx = NewLike(b, s.x);
  work.Linear(&dx, GradWrite::kOverwrite, *weight_, nullptr, dlogits, s.x);
  States(grad) = dx;
}

}  // namespace deepnet
