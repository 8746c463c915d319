// Residual + norm wrapper, attention block and feed-forward block (forward and backward).
#include "model/sublayer.h"

namespace deepnet {
namespace {

// `shape` with its last dimension replaced (or dropped when last < 0).
Shape WithLastDim(const Shape& shape, int64_t last) {
  Shape result(shape.begin(), shape.end() - 1);
  if (last >= 0) result.push_back(last);
  return result;
}

const Parameter* FindParam(const std::vector<Parameter>& parameters, const std::string& name) {
  for (const Parameter& p : parameters) {
    if (p.name == name) return &p;
  }
  LOG(FATAL) << "no parameter " << name;
}

const Tensor* MaskOrNull(const Tensor& mask) { return IsEmpty(mask) ? nullptr : &mask; }

}  // namespace

// --- residual + norm ---

Tensor ResidualBegin(const Backend& backend, const ResidualSpec& spec, const Tensor& x,
                     ResidualSaved* saved) {
  saved->x = x;
  if (!spec.pre_norm) return x;
  saved->normed = NewLike(backend, x);
  saved->mean = NewActivation(backend, WithLastDim(x.shape(), -1), StatsDType(x.dtype()));
  saved->rstd = NewActivation(backend, WithLastDim(x.shape(), -1), StatsDType(x.dtype()));
  backend.LayerNormForward(saved->normed, saved->mean, saved->rstd, x, spec.norm_weight->value,
                           spec.norm_bias->value, spec.eps);
  return saved->normed;
}

Tensor ResidualEnd(const Backend& backend, const ResidualSpec& spec, const DropoutSite& dropout,
                   const Tensor& out, ResidualSaved* saved) {
  const Tensor& x = saved->x;
  saved->dropout = dropout;
  Tensor g = out;
  if (dropout.rate > 0.0f) {
    g = NewLike(backend, out);
    backend.DropoutForward(g, out, dropout.rate, dropout.stream);
  }
  Tensor y = NewLike(backend, x);
  if (spec.pre_norm) {
    backend.Add(y, x, g);
    return y;
  }
  saved->mean = NewActivation(backend, WithLastDim(x.shape(), -1), StatsDType(x.dtype()));
  saved->rstd = NewActivation(backend, WithLastDim(x.shape(), -1), StatsDType(x.dtype()));
  backend.DeepNormForward(y, saved->mean, saved->rstd, x, g, spec.norm_weight->value,
                          spec.norm_bias->value, spec.alpha, spec.eps);
  saved->g = g;
  return y;
}

ResidualGrads ResidualEndBackward(const Backend& backend, const ResidualSpec& spec,
                                  const Tensor& dy, const ResidualSaved& saved, GradWork& work) {
  const DropoutSite& dropout = saved.dropout;
  ResidualGrads grads;
  Tensor dg = dy;
  if (spec.pre_norm) {
    grads.dx_skip = dy;
    grads.dinput = backend.Zeros(dy.shape(), dy.dtype(), MemoryCategory::kActivations);
  } else {
    grads.dx_skip = NewLike(backend, dy);
    grads.dinput = grads.dx_skip;
    dg = NewLike(backend, dy);
    work.DeepNorm(&grads.dx_skip, &dg, *spec.norm_weight, *spec.norm_bias, dy, saved.x, saved.g,
                  saved.mean, saved.rstd, spec.alpha);
  }
  grads.dout = dg;
  if (dropout.rate > 0.0f) {
    grads.dout = NewLike(backend, dg);
    backend.DropoutBackward(grads.dout, dg, dropout.rate, dropout.stream);
  }
  return grads;
}

Tensor ResidualBeginBackward(const Backend& backend, const ResidualSpec& spec,
                             const ResidualGrads& grads, const ResidualSaved& saved,
                             GradWork& work) {
  if (!spec.pre_norm) return grads.dinput;
  Tensor through_norm = NewLike(backend, grads.dinput);
  work.LayerNorm(through_norm, *spec.norm_weight, *spec.norm_bias, grads.dinput, saved.x,
                 saved.mean, saved.rstd);
  Tensor dx = NewLike(backend, grads.dx_skip);
  backend.Add(dx, grads.dx_skip, through_norm);
  return dx;
}

// --- attention ---

AttentionParams FindAttentionParams(const std::vector<Parameter>& parameters,
                                    const std::string& prefix) {
  auto find = [&](const char* suffix) { return FindParam(parameters, prefix + suffix); };
  return {find(".q_proj.weight"),   find(".q_proj.bias"),   find(".k_proj.weight"),
          find(".k_proj.bias"),     find(".v_proj.weight"), find(".v_proj.bias"),
          find(".out_proj.weight"), find(".out_proj.bias")};
}

Tensor AttentionBlockForward(const Backend& backend, const AttentionParams& params,
                             const Tensor& xq, const Tensor& xkv, const Tensor& key_mask,
                             bool causal, int heads, const DropoutSite& dropout, bool keep_probs,
                             AttentionSaved* saved) {
  const int B = static_cast<int>(xq.dim(0)), Tq = static_cast<int>(xq.dim(1));
  const int Tk = static_cast<int>(xkv.dim(1)), C = static_cast<int>(xq.dim(2));
  saved->shape = AttentionShape{B, Tq, Tk, heads, C / heads, causal};
  saved->dropout = dropout;
  saved->key_mask = key_mask;
  saved->q = NewLike(backend, xq);
  saved->k = NewLike(backend, xkv);
  saved->v = NewLike(backend, xkv);
  backend.LinearForward(saved->q, xq, params.q_weight->value, &params.q_bias->value);
  backend.LinearForward(saved->k, xkv, params.k_weight->value, &params.k_bias->value);
  backend.LinearForward(saved->v, xkv, params.v_weight->value, &params.v_bias->value);
  Tensor probs = backend.NewAttentionProbs(saved->shape, xq.dtype());
  saved->context = NewLike(backend, xq);
  backend.AttentionForward(saved->context, probs, saved->q, saved->k, saved->v,
                           MaskOrNull(key_mask), saved->shape, dropout.rate, dropout.stream);
  if (keep_probs) saved->probs = probs;
  Tensor out = NewLike(backend, xq);
  backend.LinearForward(out, saved->context, params.out_weight->value, &params.out_bias->value);
  return out;
}

void AttentionBlockBackward(const Backend& backend, const AttentionParams& params,
                            const Tensor& dout, const Tensor& xq, const Tensor& xkv,
                            const AttentionSaved& saved, const Tensor& dxq_sum,
                            const Tensor& dxkv_sum, GradWork& work) {
  Tensor dcontext = NewLike(backend, saved.context);
  work.Linear(&dcontext, GradWrite::kOverwrite, *params.out_weight, params.out_bias, dout,
              saved.context);
  Tensor probs = saved.probs;
  if (IsEmpty(probs)) {
    // Selective recompute: the same inputs and Philox stream give the same probabilities.
    const AttentionShape& s = saved.shape;
    probs = backend.NewAttentionProbs(s, saved.q.dtype());
    Tensor unused_context = NewLike(backend, saved.context);
    backend.AttentionForward(unused_context, probs, saved.q, saved.k, saved.v,
                             MaskOrNull(saved.key_mask), s, saved.dropout.rate,
                             saved.dropout.stream);
  }
  Tensor dq = NewLike(backend, saved.q), dk = NewLike(backend, saved.k);
  Tensor dv = NewLike(backend, saved.v);
  backend.AttentionBackward(dq, dk, dv, dcontext, saved.q, saved.k, saved.v, probs, saved.shape,
                            saved.dropout.rate, saved.dropout.stream);
  work.Linear(&dxq_sum, GradWrite::kAdd, *params.q_weight, params.q_bias, dq, xq);
  work.Linear(&dxkv_sum, GradWrite::kAdd, *params.k_weight, params.k_bias, dk, xkv);
  work.Linear(&dxkv_sum, GradWrite::kAdd, *params.v_weight, params.v_bias, dv, xkv);
}

// --- feed-forward ---

FfnParams FindFfnParams(const std::vector<Parameter>& parameters, const std::string& prefix) {
  auto find = [&](const char* suffix) { return FindParam(parameters, prefix + suffix); };
  return {find(".fc1.weight"), find(".fc1.bias"), find(".fc2.weight"), find(".fc2.bias")};
}

Tensor FfnBlockForward(const Backend& backend, const FfnParams& params, const Tensor& x,
                       ActivationKind activation, const DropoutSite& dropout, FfnSaved* saved) {
  const int64_t F = params.fc1_weight->value.dim(0);
  saved->activation = activation;
  saved->dropout = dropout;
  saved->hidden = NewActivation(backend, WithLastDim(x.shape(), F), x.dtype());
  backend.LinearForward(saved->hidden, x, params.fc1_weight->value, &params.fc1_bias->value);
  saved->activated = NewLike(backend, saved->hidden);
  backend.ActivationForward(activation, saved->activated, saved->hidden);
  if (dropout.rate > 0.0f) {
    backend.DropoutForward(saved->activated, saved->activated, dropout.rate, dropout.stream);
  }
  Tensor out = NewLike(backend, x);
  backend.LinearForward(out, saved->activated, params.fc2_weight->value, &params.fc2_bias->value);
  return out;
}

void FfnBlockBackward(const Backend& backend, const FfnParams& params, const Tensor& dout,
                      const Tensor& x, const FfnSaved& saved, const Tensor& dx_sum,
                      GradWork& work) {
  // One buffer carries d(activated), then d(act output), then d(hidden): nothing else holds it.
  Tensor dhidden = NewLike(backend, saved.activated);
  work.Linear(&dhidden, GradWrite::kOverwrite, *params.fc2_weight, params.fc2_bias, dout,
              saved.activated);
  if (saved.dropout.rate > 0.0f) {
    backend.DropoutBackward(dhidden, dhidden, saved.dropout.rate, saved.dropout.stream);
  }
  backend.ActivationBackward(saved.activation, dhidden, dhidden, saved.hidden);
  work.Linear(&dx_sum, GradWrite::kAdd, *params.fc1_weight, params.fc1_bias, dhidden, x);
}

}  // namespace deepnet
