// CudaBackend: the Backend (kernels/backend.h) on one GPU, every op enqueued on one compute
// stream. Plain C++ header: callers need no CUDA headers (a stream is a CUstream_st*, which is
// what cudaStream_t names).
//
// Dtypes: f32, bf16 and f16 tensors (f64 is CPU-only). Math in f32 everywhere; see
// mixed_precision.h for the bf16 policy. Where the CPU op has one dtype for all tensors, this
// backend also accepts the combinations the policy needs: parameter gradients (dweight, dbias,
// dgamma, dbeta, dtable) in f32 while activations are 16-bit, LayerNorm statistics in f32, AdamW
// with an f32 master and a 16-bit gradient.
//
// Differences from the CPU oracle that callers must know:
// - Attention: `probs` is not (B, H, Tq, Tk) probabilities but an opaque stats buffer of at least
//   AttentionStatsBytes(shape) bytes (lse per row + a copy of the key mask, attention.h). The
//   (B, H, Tq, Tk) tensor the model allocates is large enough for any Tk ≥ 3 (bf16) or Tk ≥ 2
//   (f32); allocating exactly AttentionStatsBytes saves the O(T²) memory.
// - Results match the CPU within rounding (order of additions differs), and are bitwise
//   reproducible run to run on the same GPU model. Dropout masks are bit-identical to the CPU's.
// - Host tensors are accepted only by Copy. Copy to the host and SumOfSquares wait for the
//   stream; every other op returns as soon as its kernels are enqueued.
#pragma once

#include <cstddef>
#include <memory>
#include <span>

#include "kernels/backend.h"
#include "kernels/op_types.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

struct CUstream_st;

namespace deepnet::cuda {

class Gemm;
class PinnedHostAllocator;
class Workspace;

struct CudaBackendOptions {
  int device = 0;
  size_t gemm_workspace_bytes = size_t{32} << 20;
  // f32 GEMMs on TF32 tensor cores: much faster, ~1e-3 relative error instead of ~1e-6.
  bool allow_tf32 = false;
};

// One parameter tensor of CudaBackend::MultiTensorAdamW.
struct AdamWParam {
  Tensor master;  // f32 (the weights the optimizer owns)
  Tensor m, v;    // f32 moments
  Tensor grad;    // f32, bf16 or f16
  Tensor
      compute_copy;  // optional (default-constructed = none): receives the new weights, e.g. bf16
};

class CudaBackend final : public Backend {
 public:
  // Selects the device (registering its allocator), creates the compute stream and cuBLASLt.
  // kUnavailable without a usable GPU, with the reason.
  static StatusOr<std::unique_ptr<CudaBackend>> Create(const CudaBackendOptions& options = {});
  ~CudaBackend() override;

  Device device() const override { return Device::Cuda(device_index_); }
  std::string_view name() const override { return "cuda"; }
  CUstream_st* stream() const { return stream_; }
  // Waits for everything enqueued so far.
  void Synchronize() const;

  static size_t AttentionStatsBytes(const AttentionShape& shape);
  // Pinned host memory (PinnedHostAllocator), owned by this backend.
  Tensor NewHostStaging(const Shape& shape, DType dtype) const override;
  // A flat buffer of AttentionStatsBytes(shape): the saved state is O(T) per row, not O(T²).
  Tensor NewAttentionProbs(const AttentionShape& shape, DType dtype) const override;

  // --- Backend ---
  void Zero(const Tensor& t) const override;
  void Copy(const Tensor& dst, const Tensor& src) const override;
  // dst = src rounded to dst's dtype (same numel; f32, bf16, f16).
  void Convert(const Tensor& dst, const Tensor& src) const override;
  void LinearForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                     const Tensor* bias) const override;
  void LinearBackward(const Tensor* dinp, GradWrite dinp_write, const Tensor* dweight,
                      const Tensor* dbias, const Tensor& dout, const Tensor& inp,
                      const Tensor& weight) const override;
  void LayerNormForward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                        const Tensor& gamma, const Tensor& beta, double eps) const override;
  void LayerNormBackward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                         const Tensor& dy, const Tensor& x, const Tensor& gamma, const Tensor& mean,
                         const Tensor& rstd) const override;
  void DeepNormForward(const Tensor& y, const Tensor& mean, const Tensor& rstd, const Tensor& x,
                       const Tensor& g, const Tensor& gamma, const Tensor& beta, double alpha,
                       double eps) const override;
  void DeepNormBackward(const Tensor* dx, const Tensor* dg, const Tensor& dgamma,
                        const Tensor& dbeta, const Tensor& dy, const Tensor& x, const Tensor& g,
                        const Tensor& gamma, const Tensor& mean, const Tensor& rstd,
                        double alpha) const override;
  void AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& q, const Tensor& k,
                        const Tensor& v, const Tensor* key_padding_mask,
                        const AttentionShape& shape, float dropout_p,
                        const RngStream& stream) const override;
  void AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                         const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& probs,
                         const AttentionShape& shape, float dropout_p,
                         const RngStream& stream) const override;
  void ActivationForward(ActivationKind kind, const Tensor& y, const Tensor& x) const override;
  void ActivationBackward(ActivationKind kind, const Tensor& dx, const Tensor& dy,
                          const Tensor& x) const override;
  void DropoutForward(const Tensor& y, const Tensor& x, float p,
                      const RngStream& stream) const override;
  void DropoutBackward(const Tensor& dx, const Tensor& dy, float p,
                       const RngStream& stream) const override;
  void Add(const Tensor& y, const Tensor& a, const Tensor& b) const override;
  void Axpy(const Tensor& y, const Tensor& x, double alpha) const override;
  void Scale(const Tensor& y, const Tensor& x, double alpha) const override;
  void EmbeddingForward(const Tensor& out, const Tensor& tokens, const Tensor& table,
                        double scale) const override;
  void EmbeddingBackward(const Tensor& dtable, const Tensor& tokens, const Tensor& dout,
                         double scale) const override;
  void PositionsAdd(const Tensor& x, int pos_offset) const override;
  void CrossEntropyForward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                           const Tensor& targets, double smoothing,
                           int ignore_index) const override;
  void CrossEntropyBackward(const Tensor& dlogits, const Tensor& logits, const Tensor& lse,
                            const Tensor& targets, double dloss, double smoothing,
                            int ignore_index) const override;
  // param f32 (or 16-bit), m and v f32, grad any float dtype.
  void AdamW(const Tensor& param, const Tensor& m, const Tensor& v, const Tensor& grad,
             const AdamWConfig& config, int64_t step, double grad_scale) const override;
  double SumOfSquares(const Tensor& x) const override;

  // --- beyond Backend ---
  // AdamW over many tensors in a few launches, writing each compute copy in the same pass.
  void MultiTensorAdamW(std::span<const AdamWParam> params, const AdamWConfig& config, int64_t step,
                        double grad_scale) const;
  // Σ x² over all tensors (deterministic; non-finite when any element is: the overflow check of
  // fp16 loss scaling). Waits for the stream.
  double SumOfSquares(std::span<const Tensor> tensors) const;

 private:
  CudaBackend(int device_index, CUstream_st* stream, std::unique_ptr<Gemm> gemm);
  void* Scratch(size_t bytes) const;

  int device_index_;
  CUstream_st* stream_;
  std::unique_ptr<Gemm> gemm_;
  std::unique_ptr<Workspace> workspace_;
  std::unique_ptr<PinnedHostAllocator> pinned_;
};

}  // namespace deepnet::cuda
