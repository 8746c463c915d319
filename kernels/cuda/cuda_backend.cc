// CudaBackend: argument checks and the mapping from Tensors to the kernels' launchers.
// Letters as kernels/cpu: N rows, C channels, OC output channels, V vocab, B, T, H, D.
#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <cstring>
#include <string>
#include <vector>

#include "kernels/cuda/attention.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/mixed_precision.h"
#include "kernels/cuda/pointwise.h"
#include "kernels/cuda/workspace.h"

namespace deepnet::cuda {
namespace {

int Rows(const Tensor& t) { return static_cast<int>(t.numel() / t.dim(-1)); }
int Cols(const Tensor& t) { return static_cast<int>(t.dim(-1)); }

bool IsFloat(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kBF16 || dtype == DType::kF16;
}

// Checks shared by the ops; each names the op and the tensor in its message.
class TensorChecks {
 public:
  TensorChecks(const CudaBackend& backend, const char* op) : device_(backend.device()), op_(op) {}

  void* Data(const Tensor& t, const char* what) const {
    CHECK(t.device() == device_) << op_ << ": " << what << " is " << t.ToString()
                                 << ", expected a tensor on " << device_.ToString();
    return t.raw_data();
  }
  void* Float(const Tensor& t, const char* what) const {
    CHECK(IsFloat(t.dtype())) << op_ << ": " << what << " is " << t.ToString()
                              << " (f32, bf16 or f16 expected)";
    return Data(t, what);
  }
  // A float tensor of exactly `dtype`.
  void* Typed(const Tensor& t, DType dtype, const char* what) const {
    CHECK(t.dtype() == dtype) << op_ << ": " << what << " is " << t.ToString() << ", expected "
                              << DTypeName(dtype);
    return Data(t, what);
  }
  FlexPtr Flex(const Tensor& t, const char* what) const { return {Float(t, what), t.dtype()}; }
  void Numel(const Tensor& t, int64_t numel, const char* what) const {
    CHECK_EQ(t.numel(), numel) << op_ << ": " << what << " is " << t.ToString();
  }

 private:
  Device device_;
  const char* op_;
};

}  // namespace

StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(const CudaBackendOptions& options) {
  RETURN_IF_ERROR(InitDevice(options.device));
  cudaStream_t stream = nullptr;
  const cudaError_t error = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (error != cudaSuccess) {
    cudaGetLastError();
    return Unavailable(std::string("cudaStreamCreate: ") + cudaGetErrorString(error));
  }
  StatusOr<std::unique_ptr<Gemm>> gemm =
      Gemm::Create(options.device, options.gemm_workspace_bytes, options.allow_tf32);
  if (!gemm.ok()) {
    cudaStreamDestroy(stream);
    return gemm.status();
  }
  return std::unique_ptr<CudaBackend>(
      new CudaBackend(options.device, stream, std::move(gemm).value()));
}

CudaBackend::CudaBackend(int device_index, CUstream_st* stream, std::unique_ptr<Gemm> gemm)
    : device_index_(device_index),
      stream_(stream),
      gemm_(std::move(gemm)),
      workspace_(std::make_unique<Workspace>(device_index)),
      pinned_(std::make_unique<PinnedHostAllocator>()) {}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_);  // buffers freed below may still be in use
  workspace_.reset();
  gemm_.reset();
  cudaStreamDestroy(stream_);
}

void CudaBackend::Synchronize() const { DEEPNET_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* CudaBackend::Scratch(size_t bytes) const { return workspace_->Get(bytes); }

size_t CudaBackend::AttentionStatsBytes(const AttentionShape& shape) {
  return cuda::AttentionStatsBytes(shape);
}

Tensor CudaBackend::NewHostStaging(const Shape& shape, DType dtype) const {
  StatusOr<Tensor> pinned = Tensor::Allocate(shape, dtype, MemoryCategory::kWorkspace, *pinned_);
  if (pinned.ok()) return *pinned;
  LOG_FIRST_N(WARNING, 1) << "pinned host memory unavailable (" << pinned.status()
                          << "); staging through pageable memory";
  return Tensor::Empty(shape, dtype, MemoryCategory::kWorkspace);
}

Tensor CudaBackend::NewAttentionProbs(const AttentionShape& shape, DType dtype) const {
  const int64_t size = static_cast<int64_t>(DTypeSize(dtype));
  const int64_t bytes = static_cast<int64_t>(AttentionStatsBytes(shape));
  return Empty({(bytes + size - 1) / size}, dtype, MemoryCategory::kActivations);
}

// ---- memory ----

void CudaBackend::Zero(const Tensor& t) const {
  void* data = TensorChecks(*this, "Zero").Data(t, "t");
  if (t.nbytes() > 0) DEEPNET_CUDA_CHECK(cudaMemsetAsync(data, 0, t.nbytes(), stream_));
}

void CudaBackend::Copy(const Tensor& dst, const Tensor& src) const {
  CHECK_EQ(dst.numel(), src.numel()) << "Copy: " << dst.ToString() << " <- " << src.ToString();
  CHECK(dst.dtype() == src.dtype()) << "Copy: " << dst.ToString() << " <- " << src.ToString();
  for (const Tensor* t : {&dst, &src}) {
    CHECK(t->device().is_cpu() || t->device() == device())
        << "Copy: " << t->ToString() << " is on neither the host nor " << device().ToString();
  }
  if (dst.nbytes() == 0) return;
  const bool to_host = dst.device().is_cpu(), from_host = src.device().is_cpu();
  if (to_host && from_host) {
    std::memmove(dst.raw_data(), src.raw_data(), dst.nbytes());
    return;
  }
  const cudaMemcpyKind kind = to_host     ? cudaMemcpyDeviceToHost
                              : from_host ? cudaMemcpyHostToDevice
                                          : cudaMemcpyDeviceToDevice;
  // From pageable host memory the call returns once the source has been staged, so the caller
  // may reuse it at once; to the host it must wait until the data is there.
  DEEPNET_CUDA_CHECK(cudaMemcpyAsync(dst.raw_data(), src.raw_data(), dst.nbytes(), kind, stream_));
  if (to_host) Synchronize();
}

void CudaBackend::Convert(const Tensor& dst, const Tensor& src) const {
  const TensorChecks check(*this, "Convert");
  check.Numel(dst, src.numel(), "dst");
  cuda::Convert(check.Float(dst, "dst"), dst.dtype(), check.Float(src, "src"), src.dtype(),
                src.numel(), stream_);
}

// ---- linear ----

void CudaBackend::LinearForward(const Tensor& out, const Tensor& inp, const Tensor& weight,
                                const Tensor* bias) const {
  const TensorChecks check(*this, "LinearForward");
  const int N = Rows(inp), C = Cols(inp), OC = Rows(weight);
  CHECK_EQ(Cols(weight), C) << "LinearForward: weight " << weight.ToString() << " for input "
                            << inp.ToString();
  check.Numel(out, int64_t{N} * OC, "out");
  GemmCall call;
  call.m = N;
  call.n = OC;
  call.k = C;
  call.a = check.Float(inp, "inp");
  call.b = check.Typed(weight, inp.dtype(), "weight");
  call.trans_b = true;
  call.c = check.Typed(out, inp.dtype(), "out");
  call.ab_dtype = call.c_dtype = inp.dtype();
  if (bias != nullptr) {
    check.Numel(*bias, OC, "bias");
    call.bias = check.Typed(*bias, inp.dtype(), "bias");
  }
  gemm_->Run(call, stream_);
}

void CudaBackend::LinearBackward(const Tensor* dinp, GradWrite dinp_write, const Tensor* dweight,
                                 const Tensor* dbias, const Tensor& dout, const Tensor& inp,
                                 const Tensor& weight) const {
  const TensorChecks check(*this, "LinearBackward");
  const int N = Rows(inp), C = Cols(inp), OC = Rows(weight);
  const DType dtype = inp.dtype();
  check.Numel(dout, int64_t{N} * OC, "dout");
  if (dinp != nullptr) {  // dinp (N, C) = dout (N, OC) · weight (OC, C), or += for kAdd
    check.Numel(*dinp, int64_t{N} * C, "dinp");
    gemm_->Run({.m = N,
                .n = C,
                .k = OC,
                .a = check.Typed(dout, dtype, "dout"),
                .b = check.Typed(weight, dtype, "weight"),
                .c = check.Typed(*dinp, dtype, "dinp"),
                .ab_dtype = dtype,
                .c_dtype = dtype,
                .beta = dinp_write == GradWrite::kAdd ? 1.0f : 0.0f},
               stream_);
  }
  if (dweight != nullptr) {
    // dweight (OC, C) += doutᵀ (OC, N) · inp (N, C); dweight may be f32 for 16-bit inputs.
    check.Numel(*dweight, int64_t{OC} * C, "dweight");
    CHECK(dweight->dtype() == dtype || dweight->dtype() == DType::kF32)
        << "LinearBackward: dweight " << dweight->ToString() << " for " << DTypeName(dtype)
        << " activations";
    gemm_->Run({.m = OC,
                .n = C,
                .k = N,
                .a = check.Typed(dout, dtype, "dout"),
                .trans_a = true,
                .b = check.Typed(inp, dtype, "inp"),
                .c = check.Data(*dweight, "dweight"),
                .ab_dtype = dtype,
                .c_dtype = dweight->dtype(),
                .beta = 1.0f},
               stream_);
  }
  if (dbias != nullptr) {  // dbias (OC) += Σ_n dout
    check.Numel(*dbias, OC, "dbias");
    void* scratch = Scratch(ColumnSumScratchBytes(N, OC));
    ColumnSum(check.Flex(*dbias, "dbias"), /*accumulate=*/true, dout.raw_data(), dtype, N, OC,
              scratch, stream_);
  }
}

// ---- normalisation ----

void CudaBackend::LayerNormForward(const Tensor& y, const Tensor& mean, const Tensor& rstd,
                                   const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                   double eps) const {
  DeepNormForward(y, mean, rstd, x, Tensor(), gamma, beta, 1.0, eps);
}

void CudaBackend::LayerNormBackward(const Tensor& dx, const Tensor& dgamma, const Tensor& dbeta,
                                    const Tensor& dy, const Tensor& x, const Tensor& gamma,
                                    const Tensor& mean, const Tensor& rstd) const {
  DeepNormBackward(&dx, nullptr, dgamma, dbeta, dy, x, Tensor(), gamma, mean, rstd, 1.0);
}

// g undefined: plain LayerNorm.
void CudaBackend::DeepNormForward(const Tensor& y, const Tensor& mean, const Tensor& rstd,
                                  const Tensor& x, const Tensor& g, const Tensor& gamma,
                                  const Tensor& beta, double alpha, double eps) const {
  const TensorChecks check(*this, g.defined() ? "DeepNormForward" : "LayerNormForward");
  NormForwardArgs args;
  args.N = Rows(x);
  args.C = Cols(x);
  args.dtype = x.dtype();
  args.x = check.Float(x, "x");
  check.Numel(y, x.numel(), "y");
  args.y = check.Typed(y, x.dtype(), "y");
  if (g.defined()) {
    check.Numel(g, x.numel(), "g");
    args.g = check.Typed(g, x.dtype(), "g");
  }
  for (const Tensor* t : {&mean, &rstd}) check.Numel(*t, args.N, "mean/rstd");
  for (const Tensor* t : {&gamma, &beta}) check.Numel(*t, args.C, "gamma/beta");
  args.mean = check.Flex(mean, "mean");
  args.rstd = check.Flex(rstd, "rstd");
  args.gamma = check.Flex(gamma, "gamma");
  args.beta = check.Flex(beta, "beta");
  args.alpha = static_cast<float>(alpha);
  args.eps = static_cast<float>(eps);
  NormForward(args, stream_);
}

void CudaBackend::DeepNormBackward(const Tensor* dx, const Tensor* dg, const Tensor& dgamma,
                                   const Tensor& dbeta, const Tensor& dy, const Tensor& x,
                                   const Tensor& g, const Tensor& gamma, const Tensor& mean,
                                   const Tensor& rstd, double alpha) const {
  const TensorChecks check(*this, g.defined() ? "DeepNormBackward" : "LayerNormBackward");
  NormBackwardArgs args;
  args.N = Rows(x);
  args.C = Cols(x);
  args.dtype = x.dtype();
  args.x = check.Float(x, "x");
  for (const Tensor* t : {dx, dg, &dy}) {
    if (t != nullptr) check.Numel(*t, x.numel(), "dx/dg/dy");
  }
  args.dy = check.Typed(dy, x.dtype(), "dy");
  if (dx != nullptr) args.dx = check.Typed(*dx, x.dtype(), "dx");
  if (dg != nullptr) args.dg = check.Typed(*dg, x.dtype(), "dg");
  if (g.defined()) {
    check.Numel(g, x.numel(), "g");
    args.g = check.Typed(g, x.dtype(), "g");
  }
  for (const Tensor* t : {&mean, &rstd}) check.Numel(*t, args.N, "mean/rstd");
  for (const Tensor* t : {&gamma, &dgamma, &dbeta}) check.Numel(*t, args.C, "gamma/dgamma/dbeta");
  args.dgamma = check.Flex(dgamma, "dgamma");
  args.dbeta = check.Flex(dbeta, "dbeta");
  args.gamma = check.Flex(gamma, "gamma");
  args.mean = check.Flex(mean, "mean");
  args.rstd = check.Flex(rstd, "rstd");
  args.alpha = static_cast<float>(alpha);
  NormBackward(args, Scratch(NormBackwardScratchBytes(args.N, args.C, args.dtype)), stream_);
}

// ---- attention ----

void CudaBackend::AttentionForward(const Tensor& out, const Tensor& probs, const Tensor& q,
                                   const Tensor& k, const Tensor& v, const Tensor* key_padding_mask,
                                   const AttentionShape& shape, float dropout_p,
                                   const RngStream& stream) const {
  const TensorChecks check(*this, "AttentionForward");
  const int64_t C = int64_t{shape.H} * shape.D;
  AttentionForwardArgs args;
  args.q = check.Float(q, "q");
  check.Numel(q, int64_t{shape.B} * shape.Tq * C, "q");
  check.Numel(k, int64_t{shape.B} * shape.Tk * C, "k");
  check.Numel(v, int64_t{shape.B} * shape.Tk * C, "v");
  check.Numel(out, q.numel(), "out");
  args.k = check.Typed(k, q.dtype(), "k");
  args.v = check.Typed(v, q.dtype(), "v");
  args.out = check.Typed(out, q.dtype(), "out");
  CHECK_GE(probs.nbytes(), AttentionStatsBytes(shape))
      << "AttentionForward: `probs` " << probs.ToString() << " holds the CUDA attention stats "
      << "(lse per row and a mask copy, attention.h) and needs " << AttentionStatsBytes(shape)
      << " bytes";
  args.stats = check.Data(probs, "probs");
  if (key_padding_mask != nullptr) {
    check.Numel(*key_padding_mask, int64_t{shape.B} * shape.Tk, "key_padding_mask");
    args.key_padding =
        static_cast<const uint8_t*>(check.Typed(*key_padding_mask, DType::kU8, "mask"));
  }
  args.shape = shape;
  args.dropout_p = dropout_p;
  args.rng = stream;
  args.dtype = q.dtype();
  cuda::AttentionForward(args, stream_);
}

void CudaBackend::AttentionBackward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                    const Tensor& dout, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& probs,
                                    const AttentionShape& shape, float dropout_p,
                                    const RngStream& stream) const {
  const TensorChecks check(*this, "AttentionBackward");
  const int64_t C = int64_t{shape.H} * shape.D;
  const DType dtype = q.dtype();
  AttentionBackwardArgs args;
  args.q = check.Float(q, "q");
  check.Numel(q, int64_t{shape.B} * shape.Tq * C, "q");
  for (const Tensor* t : {&dq, &dout}) check.Numel(*t, q.numel(), "dq/dout");
  for (const Tensor* t : {&k, &v, &dk, &dv}) {
    check.Numel(*t, int64_t{shape.B} * shape.Tk * C, "k/v/dk/dv");
  }
  args.k = check.Typed(k, dtype, "k");
  args.v = check.Typed(v, dtype, "v");
  args.dout = check.Typed(dout, dtype, "dout");
  args.dq = check.Typed(dq, dtype, "dq");
  args.dk = check.Typed(dk, dtype, "dk");
  args.dv = check.Typed(dv, dtype, "dv");
  CHECK_GE(probs.nbytes(), AttentionStatsBytes(shape))
      << "AttentionBackward: `probs` must be the stats AttentionForward wrote";
  args.stats = check.Data(probs, "probs");
  args.shape = shape;
  args.dropout_p = dropout_p;
  args.rng = stream;
  args.dtype = dtype;
  cuda::AttentionBackward(args, Scratch(AttentionBackwardScratchBytes(shape)), stream_);
}

// ---- pointwise ----

void CudaBackend::ActivationForward(ActivationKind kind, const Tensor& y, const Tensor& x) const {
  const TensorChecks check(*this, "ActivationForward");
  check.Numel(y, x.numel(), "y");
  cuda::ActivationForward(kind, check.Typed(y, x.dtype(), "y"), check.Float(x, "x"), x.numel(),
                          x.dtype(), stream_);
}

void CudaBackend::ActivationBackward(ActivationKind kind, const Tensor& dx, const Tensor& dy,
                                     const Tensor& x) const {
  const TensorChecks check(*this, "ActivationBackward");
  for (const Tensor* t : {&dx, &dy}) check.Numel(*t, x.numel(), "dx/dy");
  cuda::ActivationBackward(kind, check.Typed(dx, x.dtype(), "dx"), check.Typed(dy, x.dtype(), "dy"),
                           check.Float(x, "x"), x.numel(), x.dtype(), stream_);
}

void CudaBackend::DropoutForward(const Tensor& y, const Tensor& x, float p,
                                 const RngStream& stream) const {
  const TensorChecks check(*this, "DropoutForward");
  check.Numel(y, x.numel(), "y");
  Dropout(check.Typed(y, x.dtype(), "y"), check.Float(x, "x"), x.numel(), p, stream, x.dtype(),
          stream_);
}

void CudaBackend::DropoutBackward(const Tensor& dx, const Tensor& dy, float p,
                                  const RngStream& stream) const {
  const TensorChecks check(*this, "DropoutBackward");
  check.Numel(dx, dy.numel(), "dx");
  Dropout(check.Typed(dx, dy.dtype(), "dx"), check.Float(dy, "dy"), dy.numel(), p, stream,
          dy.dtype(), stream_);
}

void CudaBackend::Add(const Tensor& y, const Tensor& a, const Tensor& b) const {
  const TensorChecks check(*this, "Add");
  for (const Tensor* t : {&y, &b}) check.Numel(*t, a.numel(), "y/b");
  cuda::Add(check.Typed(y, a.dtype(), "y"), check.Float(a, "a"), check.Typed(b, a.dtype(), "b"),
            a.numel(), a.dtype(), stream_);
}

void CudaBackend::Axpy(const Tensor& y, const Tensor& x, double alpha) const {
  const TensorChecks check(*this, "Axpy");
  check.Numel(y, x.numel(), "y");
  cuda::Axpy(check.Typed(y, x.dtype(), "y"), check.Float(x, "x"), static_cast<float>(alpha),
             x.numel(), x.dtype(), stream_);
}

void CudaBackend::Scale(const Tensor& y, const Tensor& x, double alpha) const {
  const TensorChecks check(*this, "Scale");
  check.Numel(y, x.numel(), "y");
  cuda::Scale(check.Typed(y, x.dtype(), "y"), check.Float(x, "x"), static_cast<float>(alpha),
              x.numel(), x.dtype(), stream_);
}

// ---- embedding ----

void CudaBackend::EmbeddingForward(const Tensor& out, const Tensor& tokens, const Tensor& table,
                                   double scale) const {
  const TensorChecks check(*this, "EmbeddingForward");
  const int N = static_cast<int>(tokens.numel()), V = Rows(table), C = Cols(table);
  check.Numel(out, int64_t{N} * C, "out");
  cuda::EmbeddingForward(check.Typed(out, table.dtype(), "out"),
                         static_cast<const int32_t*>(check.Typed(tokens, DType::kI32, "tokens")),
                         check.Float(table, "table"), N, V, C, static_cast<float>(scale),
                         table.dtype(), stream_);
}

void CudaBackend::EmbeddingBackward(const Tensor& dtable, const Tensor& tokens, const Tensor& dout,
                                    double scale) const {
  const TensorChecks check(*this, "EmbeddingBackward");
  const int N = static_cast<int>(tokens.numel()), V = Rows(dtable), C = Cols(dtable);
  check.Numel(dout, int64_t{N} * C, "dout");
  void* scratch = Scratch(EmbeddingBackwardScratchBytes(N, V));
  cuda::EmbeddingBackward(check.Flex(dtable, "dtable"),
                          static_cast<const int32_t*>(check.Typed(tokens, DType::kI32, "tokens")),
                          check.Float(dout, "dout"), dout.dtype(), N, V, C,
                          static_cast<float>(scale), scratch, stream_);
}

void CudaBackend::PositionsAdd(const Tensor& x, int pos_offset) const {
  CHECK_EQ(x.rank(), 3) << "PositionsAdd wants (B, T, C), got " << x.ToString();
  const TensorChecks check(*this, "PositionsAdd");
  cuda::PositionsAdd(check.Float(x, "x"), static_cast<int>(x.dim(0)), static_cast<int>(x.dim(1)),
                     static_cast<int>(x.dim(2)), pos_offset, x.dtype(), stream_);
}

// ---- loss ----

void CudaBackend::CrossEntropyForward(const Tensor& losses, const Tensor& lse, const Tensor& logits,
                                      const Tensor& targets, double smoothing,
                                      int ignore_index) const {
  const TensorChecks check(*this, "CrossEntropyForward");
  const int N = Rows(logits), V = Cols(logits);
  for (const Tensor* t : {&losses, &lse, &targets}) check.Numel(*t, N, "losses/lse/targets");
  cuda::CrossEntropyForward(
      check.Flex(losses, "losses"), check.Flex(lse, "lse"), check.Float(logits, "logits"),
      static_cast<const int32_t*>(check.Typed(targets, DType::kI32, "targets")), N, V,
      static_cast<float>(smoothing), ignore_index, logits.dtype(), stream_);
}

void CudaBackend::CrossEntropyBackward(const Tensor& dlogits, const Tensor& logits,
                                       const Tensor& lse, const Tensor& targets, double dloss,
                                       double smoothing, int ignore_index) const {
  const TensorChecks check(*this, "CrossEntropyBackward");
  const int N = Rows(logits), V = Cols(logits);
  check.Numel(dlogits, logits.numel(), "dlogits");
  for (const Tensor* t : {&lse, &targets}) check.Numel(*t, N, "lse/targets");
  cuda::CrossEntropyBackward(
      check.Typed(dlogits, logits.dtype(), "dlogits"), check.Float(logits, "logits"),
      check.Flex(lse, "lse"),
      static_cast<const int32_t*>(check.Typed(targets, DType::kI32, "targets")),
      static_cast<float>(dloss), N, V, static_cast<float>(smoothing), ignore_index, logits.dtype(),
      stream_);
}

// ---- optimizer ----

void CudaBackend::AdamW(const Tensor& param, const Tensor& m, const Tensor& v, const Tensor& grad,
                        const AdamWConfig& config, int64_t step, double grad_scale) const {
  const AdamWParam one{param, m, v, grad, Tensor()};
  MultiTensorAdamW(std::span<const AdamWParam>(&one, 1), config, step, grad_scale);
}

void CudaBackend::MultiTensorAdamW(std::span<const AdamWParam> params, const AdamWConfig& config,
                                   int64_t step, double grad_scale) const {
  const TensorChecks check(*this, "AdamW");
  std::vector<AdamWTensor> tensors;
  tensors.reserve(params.size());
  for (const AdamWParam& p : params) {
    const int64_t n = p.master.numel();
    for (const Tensor* t : {&p.m, &p.v, &p.grad}) check.Numel(*t, n, "m/v/grad");
    AdamWTensor tensor;
    tensor.param = check.Flex(p.master, "param");
    tensor.m = static_cast<float*>(check.Typed(p.m, DType::kF32, "m"));
    tensor.v = static_cast<float*>(check.Typed(p.v, DType::kF32, "v"));
    tensor.grad = check.Flex(p.grad, "grad");
    if (p.compute_copy.defined()) {
      check.Numel(p.compute_copy, n, "compute_copy");
      tensor.compute_copy = check.Flex(p.compute_copy, "compute_copy");
    }
    tensor.n = n;
    tensors.push_back(tensor);
  }
  cuda::MultiTensorAdamW(tensors, config, step, static_cast<float>(grad_scale), stream_);
}

double CudaBackend::SumOfSquares(const Tensor& x) const {
  return SumOfSquares(std::span<const Tensor>(&x, 1));
}

double CudaBackend::SumOfSquares(std::span<const Tensor> tensors) const {
  const TensorChecks check(*this, "SumOfSquares");
  std::vector<TensorRef> refs;
  refs.reserve(tensors.size());
  for (const Tensor& t : tensors) refs.push_back({check.Float(t, "x"), t.dtype(), t.numel()});
  return cuda::SumOfSquares(refs, Scratch(SumOfSquaresScratchBytes(refs)), stream_);
}

}  // namespace deepnet::cuda
