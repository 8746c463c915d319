// Row-major GEMMs over cuBLASLt with cached plans.
#include "kernels/cuda/gemm.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "kernels/cuda/cuda_check.h"

namespace deepnet::cuda {
namespace {

#define DEEPNET_CUBLAS_CHECK(expr)                                           \
  do {                                                                       \
    const cublasStatus_t deepnet_cublas_status_ = (expr);                    \
    CHECK(deepnet_cublas_status_ == CUBLAS_STATUS_SUCCESS)                   \
        << #expr << ": " << cublasLtGetStatusString(deepnet_cublas_status_); \
  } while (0)

cudaDataType_t CudaType(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return CUDA_R_32F;
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    default:
      LOG(FATAL) << "CUDA GEMM: unsupported dtype " << DTypeName(dtype);
  }
  return CUDA_R_32F;
}

// The largest power of two up to 256 that divides the address (what cuBLASLt's heuristic must be
// told when operands are views that do not start on a 256-byte boundary).
uint32_t AlignmentOf(const void* p) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(p);
  uint32_t alignment = 256;
  while (alignment > 1 && address % alignment != 0) alignment /= 2;
  return alignment;
}

template <typename V>
void SetDesc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attribute, const V& value) {
  DEEPNET_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attribute, &value, sizeof(value)));
}

template <typename V>
void SetPreference(cublasLtMatmulPreference_t preference,
                   cublasLtMatmulPreferenceAttributes_t attribute, const V& value) {
  DEEPNET_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, sizeof(value)));
}

// A column-major layout of `rows` × `cols` with leading dimension `ld`.
cublasLtMatrixLayout_t Layout(DType dtype, int rows, int cols, int ld) {
  cublasLtMatrixLayout_t layout = nullptr;
  DEEPNET_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(
      &layout, CudaType(dtype), static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), ld));
  return layout;
}

}  // namespace

// cuBLASLt's view (column-major): D (n × m) = op(B_ours)ᵀ-as-stored · op(A_ours)ᵀ-as-stored,
// so its first operand is our B and its second our A.
struct Gemm::Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t first = nullptr;   // our B
  cublasLtMatrixLayout_t second = nullptr;  // our A
  cublasLtMatrixLayout_t output = nullptr;  // our C
  cublasLtMatmulAlgo_t algo{};

  ~Plan() {
    if (output) cublasLtMatrixLayoutDestroy(output);
    if (second) cublasLtMatrixLayoutDestroy(second);
    if (first) cublasLtMatrixLayoutDestroy(first);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

StatusOr<std::unique_ptr<Gemm>> Gemm::Create(int device, size_t workspace_bytes, bool allow_tf32) {
  cublasLtHandle_t handle = nullptr;
  const cublasStatus_t status = cublasLtCreate(&handle);
  if (status != CUBLAS_STATUS_SUCCESS) {
    return Unavailable(std::string("cublasLtCreate: ") + cublasLtGetStatusString(status));
  }
  StatusOr<Tensor> workspace = Tensor::Allocate({static_cast<int64_t>(workspace_bytes)}, DType::kU8,
                                                MemoryCategory::kWorkspace, Device::Cuda(device));
  if (!workspace.ok()) {
    cublasLtDestroy(handle);
    return workspace.status();
  }
  return std::unique_ptr<Gemm>(new Gemm(handle, std::move(workspace).value(), allow_tf32));
}

Gemm::Gemm(cublasLtHandle_t handle, Tensor workspace, bool allow_tf32)
    : handle_(handle), workspace_(std::move(workspace)), allow_tf32_(allow_tf32) {}

Gemm::~Gemm() {
  plans_.clear();
  cublasLtDestroy(handle_);
}

Gemm::Plan& Gemm::FindPlan(const GemmCall& call) {
  const bool has_bias = call.bias != nullptr;
  const uint32_t c_alignment =
      has_bias ? std::min(AlignmentOf(call.c), AlignmentOf(call.bias)) : AlignmentOf(call.c);
  const PlanKey key{call.m,
                    call.n,
                    call.k,
                    call.trans_a,
                    call.trans_b,
                    call.ab_dtype,
                    call.c_dtype,
                    has_bias,
                    static_cast<int>(AlignmentOf(call.a)),
                    static_cast<int>(AlignmentOf(call.b)),
                    static_cast<int>(c_alignment)};
  std::unique_ptr<Plan>& slot = plans_[key];
  if (slot) return *slot;

  auto plan = std::make_unique<Plan>();
  const cublasComputeType_t compute = call.ab_dtype == DType::kF32 && allow_tf32_
                                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  DEEPNET_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan->desc, compute, CUDA_R_32F));
  SetDesc(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, call.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N);
  SetDesc(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, call.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N);
  if (has_bias) SetDesc(plan->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, CUBLASLT_EPILOGUE_BIAS);
  // Our B stored (n, k) row-major when trans_b = column-major (k × n), ld k; else (k, n) row-major
  // = column-major (n × k), ld n. Likewise for A with m.
  plan->first = call.trans_b ? Layout(call.ab_dtype, call.k, call.n, call.k)
                             : Layout(call.ab_dtype, call.n, call.k, call.n);
  plan->second = call.trans_a ? Layout(call.ab_dtype, call.m, call.k, call.m)
                              : Layout(call.ab_dtype, call.k, call.m, call.k);
  plan->output = Layout(call.c_dtype, call.n, call.m, call.n);

  cublasLtMatmulPreference_t preference = nullptr;
  DEEPNET_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
  SetPreference(preference, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                static_cast<uint64_t>(workspace_.nbytes()));
  SetPreference(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, AlignmentOf(call.b));
  SetPreference(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, AlignmentOf(call.a));
  SetPreference(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, c_alignment);
  SetPreference(preference, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, c_alignment);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t status =
      cublasLtMatmulAlgoGetHeuristic(handle_, plan->desc, plan->first, plan->second, plan->output,
                                     plan->output, preference, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(preference);
  CHECK(status == CUBLAS_STATUS_SUCCESS && found > 0)
      << "cuBLASLt has no algorithm for C (" << call.m << ", " << call.n << ") "
      << DTypeName(call.c_dtype) << " = op(A) (k " << call.k << ", " << DTypeName(call.ab_dtype)
      << (call.trans_a ? ", transposed" : "") << ") · op(B)" << (call.trans_b ? " transposed" : "")
      << (has_bias ? " + bias" : "") << ": " << cublasLtGetStatusString(status);
  plan->algo = result.algo;
  slot = std::move(plan);
  return *slot;
}

void Gemm::Run(const GemmCall& call, cudaStream_t stream) {
  if (call.m == 0 || call.n == 0) return;
  if (call.k == 0) {  // an empty sum: C = beta·C, nothing to add for beta = 1
    CHECK(call.bias == nullptr) << "CUDA GEMM: bias with an empty inner dimension";
    if (call.beta == 0.0f) {
      DEEPNET_CUDA_CHECK(cudaMemsetAsync(
          call.c, 0, static_cast<size_t>(call.m) * call.n * DTypeSize(call.c_dtype), stream));
    } else {
      CHECK_EQ(call.beta, 1.0f) << "CUDA GEMM: k = 0 supports beta 0 or 1";
    }
    return;
  }
  CHECK(call.bias == nullptr || call.beta == 0.0f) << "CUDA GEMM: the bias epilogue needs beta 0";
  std::lock_guard<std::mutex> lock(mu_);
  Plan& plan = FindPlan(call);
  if (call.bias != nullptr) SetDesc(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, call.bias);
  DEEPNET_CUBLAS_CHECK(cublasLtMatmul(handle_, plan.desc, &call.alpha, call.b, plan.first, call.a,
                                      plan.second, &call.beta, call.c, plan.output, call.c,
                                      plan.output, &plan.algo, workspace_.raw_data(),
                                      workspace_.nbytes(), stream));
}

}  // namespace deepnet::cuda
