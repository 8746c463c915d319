// GradWork (immediate or deferred parameter gradients) and the ModelUnit base.
#include "model/unit_base.h"

#include "model/parameters.h"

namespace deepnet {
namespace {

// A norm's gamma or beta contribution held from B to W (the Backend's norm ops have no input-only
// variant, so B computes it anyway), zeroed. The norm kernels sum their rows from +0 (never −0)
// and then add the total to the gradient, so the kernel writing into this (+0 + total = total)
// and W adding it to the gradient give the fused backward's bits, and W reads C numbers instead
// of the norm's inputs again.
Tensor HeldContribution(const Backend& backend, const Tensor& like) {
  Tensor held = backend.Empty(like.shape(), like.dtype(), MemoryCategory::kWorkspace);
  backend.Zero(held);
  return held;
}

}  // namespace

void GradWork::Linear(const Tensor* dinp, GradWrite dinp_write, const Parameter& weight,
                      const Parameter* bias, const Tensor& dout, const Tensor& inp) {
  const Tensor* dbias = bias != nullptr ? &bias->grad : nullptr;
  if (!deferred_) {
    backend_.LinearBackward(dinp, dinp_write, &weight.grad, dbias, dout, inp, weight.value);
    return;
  }
  if (dinp != nullptr) {
    backend_.LinearBackward(dinp, dinp_write, nullptr, nullptr, dout, inp, weight.value);
  }
  const Tensor dweight = weight.grad, value = weight.value;
  const Tensor bias_grad = dbias != nullptr ? *dbias : Tensor();
  const bool has_bias = dbias != nullptr;
  pending_.push_back([this, dweight, value, bias_grad, has_bias, dout, inp] {
    backend_.LinearBackward(nullptr, GradWrite::kOverwrite, &dweight,
                            has_bias ? &bias_grad : nullptr, dout, inp, value);
  });
}

void GradWork::DeepNorm(const Tensor* dx, const Tensor* dg, const Parameter& gamma,
                        const Parameter& beta, const Tensor& dy, const Tensor& x, const Tensor& g,
                        const Tensor& mean, const Tensor& rstd, double alpha) {
  if (!deferred_) {
    backend_.DeepNormBackward(dx, dg, gamma.grad, beta.grad, dy, x, g, gamma.value, mean, rstd,
                              alpha);
    return;
  }
  const Tensor held_gamma = HeldContribution(backend_, gamma.grad);
  const Tensor held_beta = HeldContribution(backend_, beta.grad);
  backend_.DeepNormBackward(dx, dg, held_gamma, held_beta, dy, x, g, gamma.value, mean, rstd,
                            alpha);
  AddLater(gamma.grad, held_gamma);
  AddLater(beta.grad, held_beta);
}

void GradWork::LayerNorm(const Tensor& dx, const Parameter& gamma, const Parameter& beta,
                         const Tensor& dy, const Tensor& x, const Tensor& mean,
                         const Tensor& rstd) {
  if (!deferred_) {
    backend_.LayerNormBackward(dx, gamma.grad, beta.grad, dy, x, gamma.value, mean, rstd);
    return;
  }
  const Tensor held_gamma = HeldContribution(backend_, gamma.grad);
  const Tensor held_beta = HeldContribution(backend_, beta.grad);
  backend_.LayerNormBackward(dx, held_gamma, held_beta, dy, x, gamma.value, mean, rstd);
  AddLater(gamma.grad, held_gamma);
  AddLater(beta.grad, held_beta);
}

void GradWork::Embedding(const Parameter& table, const Tensor& tokens, const Tensor& dout,
                         double scale) {
  const Tensor dtable = table.grad;
  auto scatter = [this, dtable, tokens, dout, scale] {
    backend_.EmbeddingBackward(dtable, tokens, dout, scale);
  };
  if (deferred_) {
    pending_.push_back(std::move(scatter));
  } else {
    scatter();
  }
}

void GradWork::AddLater(const Tensor& grad, const Tensor& held) {
  pending_.push_back([this, grad, held] { backend_.Add(grad, grad, held); });
}

void GradWork::Run() {
  for (auto& work : pending_) work();
  pending_.clear();
}

ModelUnit::ModelUnit(std::string name, int index, const ModelSettings& settings,
                     const std::vector<ParamSpec>& specs)
    : Unit(std::move(name), index), settings_(settings) {
  ParameterBuffers buffers;
  AllocateParameters(specs, *settings_.backend, settings_.dtype, settings_.compute_dtype,
                     settings_.seed, &parameters_, &buffers);
  flat_values_ = std::move(buffers.values);
  flat_grads_ = std::move(buffers.grads);
  flat_master_ = std::move(buffers.master);
}

void ModelUnit::Backward(const StepContext& ctx, const MicroBatch& mb,
                         const SavedActivations& saved, Stream& grad) {
  GradWork work(backend(ctx), /*deferred=*/false);
  RunBackward(ctx, mb, saved, grad, work);
}

std::unique_ptr<DeferredWeightGrads> ModelUnit::BackwardInput(const StepContext& ctx,
                                                              const MicroBatch& mb,
                                                              const SavedActivations& saved,
                                                              Stream& grad) {
  auto work = std::make_unique<GradWork>(backend(ctx), /*deferred=*/true);
  RunBackward(ctx, mb, saved, grad, *work);
  return work;
}

void ModelUnit::BackwardWeight(const StepContext& ctx, DeferredWeightGrads& deferred) {
  auto* work = dynamic_cast<GradWork*>(&deferred);
  CHECK(work != nullptr) << name_ << ": BackwardWeight given another unit kind's record";
  work->Run();
}

RngStream ModelUnit::Rng(const StepContext& ctx, const MicroBatch& mb, int site) const {
  return RngStream{ctx.seed, static_cast<uint32_t>(ctx.step), static_cast<uint32_t>(mb.index),
                   static_cast<uint32_t>(index_ * kSitesPerUnit + site)};
}

const Parameter& ModelUnit::Param(const std::string& full_name) const {
  for (const Parameter& p : parameters_) {
    if (p.name == full_name) return p;
  }
  LOG(FATAL) << name_ << " has no parameter " << full_name;
}

Tensor NewLike(const Backend& backend, const Tensor& like) {
  return backend.Empty(like.shape(), like.dtype(), MemoryCategory::kActivations);
}

Tensor NewActivation(const Backend& backend, const Shape& shape, DType dtype) {
  return backend.Empty(shape, dtype, MemoryCategory::kActivations);
}

int64_t SumBytes(std::initializer_list<const Tensor*> tensors) {
  int64_t total = 0;
  for (const Tensor* t : tensors) total += static_cast<int64_t>(t->nbytes());
  return total;
}

Tensor ToHost(const Backend& backend, const Tensor& t) {
  if (t.device().is_cpu()) return t;
  Tensor host = Tensor::Empty(t.shape(), t.dtype(), MemoryCategory::kWorkspace);
  backend.Copy(host, t);
  return host;
}

}  // namespace deepnet
