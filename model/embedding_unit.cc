// EmbeddingUnit: token embeddings scaled by √C, sinusoidal positions from 0, dropout.
// Letters: B batch, T positions, C d_model, V vocab.
#include <cmath>

#include "model/units.h"

namespace deepnet {
namespace {

constexpr int kSourceSite = 0;
constexpr int kTargetSite = 1;

class EmbeddingSaved final : public SavedActivations {
 public:
  // Backward needs only the token ids (in the micro-batch) and the dropout masks (regenerated).
  int64_t bytes() const override { return 0; }

  DropoutSite source_dropout;
  DropoutSite target_dropout;
};

}  // namespace

EmbeddingUnit::EmbeddingUnit(int index, const ModelSettings& settings)
    : ModelUnit("embedding", index, settings, UnitParamSpecs(settings, UnitKind::kEmbedding, 0)),
      table_(&Param("embed_tokens.weight")) {}

Tensor EmbeddingUnit::Embed(const Backend& backend, const Tensor& tokens,
                            const DropoutSite& dropout) const {
  CHECK_EQ(tokens.rank(), 2) << name_ << ": token ids must be (B, T), got " << tokens.ToString();
  CHECK_LE(tokens.dim(1), settings_.max_positions)
      << name_ << ": sequence longer than model.max_positions";
  Tensor out = NewActivation(backend, {tokens.dim(0), tokens.dim(1), settings_.d_model},
                             settings_.compute_dtype);
  backend.EmbeddingForward(out, tokens, table_->value, std::sqrt(settings_.d_model));
  backend.PositionsAdd(out, 0);
  if (dropout.rate > 0.0f) backend.DropoutForward(out, out, dropout.rate, dropout.stream);
  return out;
}

std::unique_ptr<SavedActivations> EmbeddingUnit::Forward(const StepContext& ctx,
                                                         const MicroBatch& mb, Stream& io) {
  const Backend& b = backend(ctx);
  auto saved = std::make_unique<EmbeddingSaved>();
  saved->source_dropout = {Rate(ctx, settings_.dropout), Rng(ctx, mb, kSourceSite)};
  saved->target_dropout = {Rate(ctx, settings_.dropout), Rng(ctx, mb, kTargetSite)};
  if (settings_.has_encoder) io.enc = Embed(b, mb.source, saved->source_dropout);
  if (settings_.has_decoder) io.dec = Embed(b, mb.target_input, saved->target_dropout);
  return saved;
}

void EmbeddingUnit::ScatterGrad(const Backend& backend, const Tensor& tokens, const Tensor& dy,
                                const DropoutSite& dropout, GradWork& work) const {
  CHECK(!IsEmpty(dy)) << name_ << ": missing gradient of the embeddings";
  Tensor d = dy;
  if (dropout.rate > 0.0f) {
    d = NewLike(backend, dy);
    backend.DropoutBackward(d, dy, dropout.rate, dropout.stream);
  }
  work.Embedding(*table_, tokens, d, std::sqrt(settings_.d_model));
}

void EmbeddingUnit::RunBackward(const StepContext& ctx, const MicroBatch& mb,
                                const SavedActivations& saved, Stream& grad, GradWork& work) {
  const auto& s = dynamic_cast<const EmbeddingSaved&>(saved);
  const Backend& b = backend(ctx);
  // Source part first, then target part: a fixed order, so the table gradient has fixed bits.
  if (settings_.has_encoder) ScatterGrad(b, mb.source, grad.enc, s.source_dropout, work);
  if (settings_.has_decoder) ScatterGrad(b, mb.target_input, grad.dec, s.target_dropout, work);
  grad.enc = Tensor();
  grad.dec = Tensor();
}

}  // namespace deepnet
