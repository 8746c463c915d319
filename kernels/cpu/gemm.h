// Matrix products through OpenBLAS: the plain GEMM, the strided-batched GEMM and the linear layer.
// Results are bitwise independent of the number of OpenMP threads: OpenBLAS runs single-threaded
// on panels of C fixed by the shape, and OpenMP spreads the panels.
#pragma once

#include <cstdint>

namespace deepnet::cpu {

// C (m, n) = alpha · op(A) · op(B) + beta · C, row-major. op(A) is (m, k): A is stored (m, k), or
// (k, m) when trans_a. op(B) is (k, n): B is stored (k, n), or (n, k) when trans_b.
// lda/ldb/ldc are row strides; 0 means "packed" (the stored row length).
template <typename T>
void gemm(T* c, const T* a, const T* b, int m, int n, int k, bool trans_a, bool trans_b,
          T alpha = 1, T beta = 0, int lda = 0, int ldb = 0, int ldc = 0);

// `batch` independent GEMMs; matrix i of A starts at a + i·stride_a (likewise B, C).
template <typename T>
void gemm_strided_batched(T* c, const T* a, const T* b, int batch, int m, int n, int k,
                          bool trans_a, bool trans_b, T alpha, T beta, int64_t stride_a,
                          int64_t stride_b, int64_t stride_c);

// out (N, OC) = inp (N, C) · weight (OC, C)ᵀ + bias (OC). bias may be null.
template <typename T>
void linear_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC);

// dinp (N, C) = dout · weight, or += with add_to_dinp; dweight (OC, C) += doutᵀ · inp;
// dbias (OC) += Σ_n dout. Each of dinp, dweight, dbias is skipped when null.
template <typename T>
void linear_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     int N, int C, int OC, bool add_to_dinp = false);

}  // namespace deepnet::cpu
