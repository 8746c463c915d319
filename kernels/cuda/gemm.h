// Row-major matrix products over cuBLASLt for the CUDA backend (host code only).
//
// C (m, n) = alpha · op(A) · op(B) + beta · C (+ bias (n) on every row), all row-major: A is
// stored (m, k), or (k, m) when trans_a; B is stored (k, n), or (n, k) when trans_b. cuBLASLt is
// column-major, so a call computes Cᵀ = op(B)ᵀ · op(A)ᵀ with the operands swapped (no copy).
//
// Types: A and B share a dtype (f32, bf16, f16); C is that dtype or f32 (bf16 operands with an
// f32 C write the fp32 parameter gradients of the mixed-precision policy). Accumulation is fp32
// (CUBLAS_COMPUTE_32F; f32 operands are not rounded to TF32 unless allowed). The bias epilogue
// needs beta = 0; bias has C's dtype.
//
// Not used: cuBLASLt's GELU epilogue computes the tanh approximation, and deepnet's GELU is the
// erf form (docs/design.md#model-conventions), so the activation stays a separate kernel.
//
// Plans (descriptors, layouts and the heuristic's algorithm) are cached per shape, type and
// pointer alignment, so steady-state calls do no heuristic queries. For a fixed plan cuBLASLt
// gives the same bits on every run on the same GPU model.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "runtime/dtype.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace deepnet::cuda {

struct GemmCall {
  int m = 0, n = 0, k = 0;
  const void* a = nullptr;
  bool trans_a = false;
  const void* b = nullptr;
  bool trans_b = false;
  void* c = nullptr;
  DType ab_dtype = DType::kF32;
  DType c_dtype = DType::kF32;
  float alpha = 1.0f;
  float beta = 0.0f;
  const void* bias = nullptr;  // (n) of c_dtype, or null
};

class Gemm {
 public:
  // Creates the cuBLASLt handle and a workspace on `device` (the current device). Fails with
  // kUnavailable where cuBLASLt cannot start (no driver or GPU).
  static StatusOr<std::unique_ptr<Gemm>> Create(int device, size_t workspace_bytes,
                                                bool allow_tf32);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  void Run(const GemmCall& call, cudaStream_t stream);

 private:
  // What selects a plan: shapes, transposes, types, epilogue and operand alignments.
  using PlanKey = std::tuple<int, int, int, bool, bool, DType, DType, bool, int, int, int>;
  struct Plan;

  Gemm(cublasLtHandle_t handle, Tensor workspace, bool allow_tf32);
  Plan& FindPlan(const GemmCall& call);

  cublasLtHandle_t handle_;
  Tensor workspace_;
  bool allow_tf32_;
  std::mutex mu_;
  std::map<PlanKey, std::unique_ptr<Plan>> plans_;
};

}  // namespace deepnet::cuda
