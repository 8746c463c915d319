// Backend: the device interface the model is written against.
//
// Ops are defined once (kernels/cpu/*.h states each op's exact semantics); a backend implements
// all of them for its device over Tensors, deriving dimensions from the tensors' shapes. The CPU
// backend is the oracle every other backend is tested against. Tensors here are contiguous and
// 2-D views are formed by the caller with Reshape: x (N, C) with N = B·T tokens.
//
// Invariants (as the CPU kernels): parameter gradients accumulate (+=), activation gradients
// overwrite (=) unless an op says otherwise; results do not depend on the thread count.
#pragma once

#include <memory>
#include <string_view>

#include "kernels/op_types.h"
#include "runtime/philox.h"
#include "runtime/tensor.h"

namespace deepnet {

enum class ActivationKind { kRelu, kGelu };

// How an op writes an activation gradient: kAdd sums into the tensor's contents (a GEMM with
// β = 1), which saves a separate add where several paths meet (q/k/v, the residual).
enum class GradWrite { kOverwrite, kAdd };

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string_view name() const = 0;

  // --- memory ---
  Tensor Empty(const Shape& shape, DType dtype, MemoryCategory category) const {
    return Tensor::Empty(shape, dtype, category, device());
  }
  Tensor Zeros(const Shape& shape, DType dtype, MemoryCategory category) const;
  virtual void Zero(const Tensor& t) const = 0;
  // Copies between any two tensors of equal numel and dtype (host <-> device included).
  virtual void Copy(const Tensor& dst, const Tensor& src) const = 0;
  // A host tensor for staging this device's data through the host (communication over MPI):
  // pinned memory on CUDA, so copies to and from it run at full speed; plain host memory here.
  virtual Tensor NewHostStaging(const Shape& shape, DType dtype) const {
    return Tensor::Empty(shape, dtype, MemoryCategory::kWorkspace);
  }
  // dst = src converted to dst's dtype (equal numel, both on this backend's device; float dtypes):
  // master weights -> 16-bit compute copies and back.
  virtual void Convert(const Tensor& dst, const Tensor& src) const = 0;

  // --- linear: out (N, OC) = inp (N, C) · weight (OC, C)ᵀ + bias ---
  virtual void LinearForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                             const Tensor* bias) const = 0;
  // dinp = dout·weight, written as dinp_write says; dweight += doutᵀ·inp, dbias += Σ_n dout.
  // Each of dinp, dweight, dbias may be null (an input-only pass leaves the parameters for later).
  virtual void LinearBackward(const Tensor* dinp, GradWrite dinp_write, const Tensor* dweight,
                              const Tensor* dbias, const Tensor& dout, const Tensor& inp,
                              const Tensor& weight) const = 0;

  // --- normalisation over the last dim; mean, rstd (N) ---
  virtual void LayerNormForward(const Tensor& y, const Tensor& mean, const Tensor& rstd,
                                const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                double eps) const = 0;
  virtual void LayerNormBackward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                 const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                 const Tensor& mean, const Tensor& rstd) const = 0;
  // y = LN(alpha·x + g) (DeepNorm residual).
  virtual void DeepNormForward(const Tensor& y, const Tensor& mean, const Tensor& rstd,
                               const Tensor& x, const Tensor& g, const Tensor& gamma,
                               const Tensor& beta, double alpha, double eps) const = 0;
  // dx = alpha·dz, dg = dz (either may be null); dgamma, dbeta accumulate.
  virtual void DeepNormBackward(const Tensor* dx, const Tensor* dg, const Tensor& dgamma,
                                const Tensor& dbeta, const Tensor& dy, const Tensor& x,
                                const Tensor& g, const Tensor& gamma, const Tensor& mean,
                                const Tensor& rstd, double alpha) const = 0;

  // --- attention: q (B, Tq, C), k/v (B, Tk, C), probs (B, H, Tq, Tk), mask (B, Tk) u8 or null ---
  // What AttentionForward saves for the backward, as the backend wants it: the (B, H, Tq, Tk)
  // probabilities here; an O(B·H·Tq) stats buffer on CUDA (flash attention never forms them).
  virtual Tensor NewAttentionProbs(const AttentionShape& shape, DType dtype) const {
    return Empty({shape.B, shape.H, shape.Tq, shape.Tk}, dtype, MemoryCategory::kActivations);
  }
  virtual void AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& q,
                                const Tensor& k, const Tensor& v, const Tensor* key_padding_mask,
                                const AttentionShape& shape, float dropout_p,
                                const RngStream& stream) const = 0;
  virtual void AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                 const Tensor& dout, const Tensor& q, const Tensor& k,
                                 const Tensor& v, const Tensor& probs, const AttentionShape& shape,
                                 float dropout_p, const RngStream& stream) const = 0;

  // --- pointwise ---
  virtual void ActivationForward(ActivationKind kind, const Tensor& y, const Tensor& x) const = 0;
  virtual void ActivationBackward(ActivationKind kind, const Tensor& dx, const Tensor& dy,
                                  const Tensor& x) const = 0;
  virtual void DropoutForward(const Tensor& y, const Tensor& x, float p,
                              const RngStream& stream) const = 0;
  virtual void DropoutBackward(const Tensor& dx, const Tensor& dy, float p,
                               const RngStream& stream) const = 0;
  virtual void Add(const Tensor& y, const Tensor& a, const Tensor& b) const = 0;
  virtual void Axpy(const Tensor& y, const Tensor& x, double alpha) const = 0;
  virtual void Scale(const Tensor& y, const Tensor& x, double alpha) const = 0;

  // --- embedding: tokens (N) i32, table (V, C), out (N, C) ---
  virtual void EmbeddingForward(const Tensor& out, const Tensor& tokens, const Tensor& table,
                                double scale) const = 0;
  virtual void EmbeddingBackward(const Tensor& dtable, const Tensor& tokens, const Tensor& dout,
                                 double scale) const = 0;
  // x (B, T, C) += sinusoidal PE[pos_offset + t].
  virtual void PositionsAdd(const Tensor& x, int pos_offset) const = 0;

  // --- loss: logits (N, V), targets (N) i32, losses and lse (N) ---
  virtual void CrossEntropyForward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                                   const Tensor& targets, double smoothing,
                                   int ignore_index) const = 0;
  virtual void CrossEntropyBackward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                                    const Tensor& targets, double dloss, double smoothing,
                                    int ignore_index) const = 0;

  // --- optimizer ---
  virtual void AdamW(const Tensor& param, const Tensor& m, const Tensor& v, const Tensor& grad,
                     const AdamWConfig& config, int64_t step, double grad_scale) const = 0;
  virtual double SumOfSquares(const Tensor& x) const = 0;
};

// The CPU backend (fp32 and fp64 tensors).
const Backend& CpuBackend();

}  // namespace deepnet
