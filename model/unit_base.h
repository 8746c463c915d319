// What the concrete units share: the parameter-gradient work of a backward pass (at once, or held
// back for a split backward), the unit base class, and small tensor helpers.
#pragma once

#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "model/model.h"
#include "model/parameters.h"
#include "model/settings.h"
#include "model/unit.h"

namespace deepnet {

// The parameter-gradient work of one backward pass. Immediate (Backward): each call runs its
// kernel with the input gradient and the parameter gradients together. Deferred (BackwardInput):
// each call computes only the input gradient now and records the call; Run() (BackwardWeight)
// later issues the same kernel on the same tensors for the parameter gradients (the norms instead
// keep their gamma/beta sums from B, see unit_base.cc). Every parameter gradient gets one
// contribution per unit and micro-batch, so both orders give the same bits.
class GradWork final : public DeferredWeightGrads {
 public:
  GradWork(const Backend& backend, bool deferred) : backend_(backend), deferred_(deferred) {}

  // dinp (may be null) = dout·W, written as dinp_write says; W.grad += doutᵀ·inp;
  // bias.grad += Σ_n dout.
  void Linear(const Tensor* dinp, GradWrite dinp_write, const Parameter& weight,
              const Parameter* bias, const Tensor& dout, const Tensor& inp);
  // dx = α·dz, dg = dz of y = LN(α·x + g) (either may be null); gamma/beta grads accumulate.
  void DeepNorm(const Tensor* dx, const Tensor* dg, const Parameter& gamma, const Parameter& beta,
                const Tensor& dy, const Tensor& x, const Tensor& g, const Tensor& mean,
                const Tensor& rstd, double alpha);
  // dx (overwrite) of y = LN(x); gamma/beta grads accumulate.
  void LayerNorm(const Tensor& dx, const Parameter& gamma, const Parameter& beta, const Tensor& dy,
                 const Tensor& x, const Tensor& mean, const Tensor& rstd);
  // table.grad += scale · dout scattered to the rows of tokens.
  void Embedding(const Parameter& table, const Tensor& tokens, const Tensor& dout, double scale);

  // Runs the recorded parameter-gradient work (once).
  void Run();

 private:
  // W: grad += held (a norm's gamma or beta contribution computed in B).
  void AddLater(const Tensor& grad, const Tensor& held);

  const Backend& backend_;
  bool deferred_;
  std::vector<std::function<void()>> pending_;
};

// A unit of this model. Backward = BackwardInput + BackwardWeight by construction: all three run
// the one RunBackward, with immediate or deferred GradWork.
class ModelUnit : public Unit {
 public:
  void Backward(const StepContext& ctx, const MicroBatch& mb, const SavedActivations& saved,
                Stream& grad) final;
  std::unique_ptr<DeferredWeightGrads> BackwardInput(const StepContext& ctx, const MicroBatch& mb,
                                                     const SavedActivations& saved,
                                                     Stream& grad) final;
  void BackwardWeight(const StepContext& ctx, DeferredWeightGrads& deferred) final;

 protected:
  // Allocates and initialises the parameters `specs` declares.
  ModelUnit(std::string name, int index, const ModelSettings& settings,
            const std::vector<ParamSpec>& specs);

  virtual void RunBackward(const StepContext& ctx, const MicroBatch& mb,
                           const SavedActivations& saved, Stream& grad, GradWork& work) = 0;

  // ctx.backend when set, else the backend the unit was built on.
  const Backend& backend(const StepContext& ctx) const {
    return ctx.backend != nullptr ? *ctx.backend : *settings_.backend;
  }
  // The Philox stream of dropout site `site` (< kSitesPerUnit) of this unit.
  RngStream Rng(const StepContext& ctx, const MicroBatch& mb, int site) const;
  // `rate` while training, 0 in evaluation.
  static float Rate(const StepContext& ctx, double rate) {
    return ctx.training ? static_cast<float>(rate) : 0.0f;
  }
  // The parameter with export name `full_name`; fatal if the unit has none.
  const Parameter& Param(const std::string& full_name) const;

  ModelSettings settings_;
};

inline constexpr int kSitesPerUnit = 16;

// True for an empty (default-constructed) tensor: Tensor::defined() is also true for those.
inline bool IsEmpty(const Tensor& t) { return t.rank() == 0 && t.numel() == 0; }

// A fresh (kActivations) tensor of `like`'s shape and dtype.
Tensor NewLike(const Backend& backend, const Tensor& like);
Tensor NewActivation(const Backend& backend, const Shape& shape, DType dtype);
// The dtype of per-row statistics (LayerNorm mean/rstd, log-sum-exp, token losses) beside
// activations of `activation`: f32 under 16-bit mixed precision, where bf16 statistics would
// cost the backward its accuracy; the activation dtype otherwise.
inline DType StatsDType(DType activation) {
  return activation == DType::kBF16 || activation == DType::kF16 ? DType::kF32 : activation;
}

// Σ nbytes over the tensors (empty ones count 0).
int64_t SumBytes(std::initializer_list<const Tensor*> tensors);

// A host copy of `t` (the tensor itself when it is already on the host).
Tensor ToHost(const Backend& backend, const Tensor& t);

}  // namespace deepnet
