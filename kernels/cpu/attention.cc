// Scaled dot-product multi-head attention. B batch, Tq queries, Tk keys, H heads, D head dim,
// C = H·D channels. Head h of q/k/v/out is a (T, D) matrix with row stride C, read in place.
//
// Each (b, h) is one unit of work on one thread with single-threaded BLAS calls (OpenBLAS runs
// serially inside an OpenMP parallel region), so results do not depend on the thread count.
#include "kernels/cpu/attention.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "kernels/cpu/dropout.h"
#include "kernels/cpu/vector_math.h"

namespace deepnet::cpu {
namespace {

// c (m, n) = alpha · op(a) · op(b) + beta · c, row-major with explicit row strides.
void Gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void Gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Where the (b, h) slices start in the activations and in probs.
struct HeadView {
  int64_t q_offset;      // into q, out, dq: (b·Tq)·C + h·D
  int64_t k_offset;      // into k, v, dk, dv: (b·Tk)·C + h·D
  int64_t probs_offset;  // into probs: ((b·H + h)·Tq)·Tk, also the first dropout index
};

HeadView ViewOf(const AttentionShape& s, int bh) {
  const int b = bh / s.H, h = bh % s.H;
  const int64_t C = static_cast<int64_t>(s.H) * s.D;
  return {static_cast<int64_t>(b) * s.Tq * C + static_cast<int64_t>(h) * s.D,
          static_cast<int64_t>(b) * s.Tk * C + static_cast<int64_t>(h) * s.D,
          static_cast<int64_t>(bh) * s.Tq * s.Tk};
}

// Number of keys query i may see under the causal mask (all of them without it); may be ≤ 0.
int VisibleKeys(const AttentionShape& s, int i) {
  if (!s.causal) return s.Tk;
  return std::min(s.Tk, i + (s.Tk - s.Tq) + 1);
}

// In place over one row of scores: masked softmax, max-subtracted. Keys j ≥ visible and padded
// keys get 0; a row with no visible key becomes all zeros. Masked scores become −∞ first, so that
// every loop is a blend over the whole row, not a branch per key (exp(−∞ − max) = 0).
template <typename T>
void MaskedSoftmaxRow(T* row, int Tk, int visible, const uint8_t* padding) {
  constexpr T kMasked = -std::numeric_limits<T>::infinity();
  T max = kMasked;
  if (padding == nullptr) {
#pragma omp simd reduction(max : max)
    for (int j = 0; j < Tk; ++j) {
      row[j] = j < visible ? row[j] : kMasked;
      max = row[j] > max ? row[j] : max;
    }
  } else {
#pragma omp simd reduction(max : max)
    for (int j = 0; j < Tk; ++j) {
      row[j] = j < visible && padding[j] == 0 ? row[j] : kMasked;
      max = row[j] > max ? row[j] : max;
    }
  }
  if (max == kMasked) return std::fill(row, row + Tk, T(0));
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < Tk; ++j) {
    row[j] = Exp(row[j] - max);
    sum += static_cast<double>(row[j]);
  }
  const T inv_sum = static_cast<T>(1.0 / sum);
#pragma omp simd
  for (int j = 0; j < Tk; ++j) row[j] *= inv_sum;
}

}  // namespace

template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v,
                       const uint8_t* key_padding_mask, const AttentionShape& shape,
                       float dropout_p, const RngStream& stream) {
  const int Tq = shape.Tq, Tk = shape.Tk, D = shape.D, C = shape.H * shape.D;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const int heads = shape.B * shape.H;
  const bool dropout = dropout_p > 0.0f;
#pragma omp parallel
  {
    std::vector<T> dropped(dropout ? static_cast<size_t>(Tq) * Tk : 0);
#pragma omp for schedule(static)
    for (int bh = 0; bh < heads; ++bh) {
      const HeadView view = ViewOf(shape, bh);
      T* p = probs + view.probs_offset;
      // Scores q·kᵀ/√D straight into probs, then the softmax in place.
      Gemm(false, true, Tq, Tk, D, scale, q + view.q_offset, C, k + view.k_offset, C, T(0), p, Tk);
      const uint8_t* padding =
          key_padding_mask ? key_padding_mask + static_cast<int64_t>(bh / shape.H) * Tk : nullptr;
      for (int i = 0; i < Tq; ++i) {
        MaskedSoftmaxRow(p + static_cast<int64_t>(i) * Tk, Tk, VisibleKeys(shape, i), padding);
      }
      const T* weights = p;
      if (dropout) {
        dropout_range(dropped.data(), p, static_cast<int64_t>(Tq) * Tk, view.probs_offset,
                      dropout_p, stream);
        weights = dropped.data();
      }
      Gemm(false, false, Tq, D, Tk, T(1), weights, Tk, v + view.k_offset, C, T(0),
           out + view.q_offset, C);
    }
  }
}

// With P = probs, P' = dropout(P), out = P'·V and S the scaled scores:
//   dV = P'ᵀ·dout,  dP = dropout(dout·Vᵀ),  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
//   dQ = dS·K/√D,  dK = dSᵀ·Q/√D.
// Masked entries and fully masked rows have P = 0, hence dS = 0.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* probs, const AttentionShape& shape, float dropout_p,
                        const RngStream& stream) {
  const int Tq = shape.Tq, Tk = shape.Tk, D = shape.D, C = shape.H * shape.D;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(D)));
  const int heads = shape.B * shape.H;
  const bool dropout = dropout_p > 0.0f;
  const int64_t tile = static_cast<int64_t>(Tq) * Tk;
#pragma omp parallel
  {
    std::vector<T> dropped(dropout ? tile : 0);
    std::vector<T> dscores(tile);
#pragma omp for schedule(static)
    for (int bh = 0; bh < heads; ++bh) {
      const HeadView view = ViewOf(shape, bh);
      const T* p = probs + view.probs_offset;
      const T* weights = p;
      if (dropout) {
        dropout_range(dropped.data(), p, tile, view.probs_offset, dropout_p, stream);
        weights = dropped.data();
      }
      const T* dout_h = dout + view.q_offset;
      Gemm(true, false, Tk, D, Tq, T(1), weights, Tk, dout_h, C, T(0), dv + view.k_offset, C);
      T* ds = dscores.data();
      Gemm(false, true, Tq, Tk, D, T(1), dout_h, C, v + view.k_offset, C, T(0), ds, Tk);
      if (dropout) dropout_range(ds, ds, tile, view.probs_offset, dropout_p, stream);
      for (int i = 0; i < Tq; ++i) {
        const T* p_row = p + static_cast<int64_t>(i) * Tk;
        T* ds_row = ds + static_cast<int64_t>(i) * Tk;
        double dot = 0.0;
        for (int j = 0; j < Tk; ++j) dot += static_cast<double>(ds_row[j] * p_row[j]);
        const T row_dot = static_cast<T>(dot);
        for (int j = 0; j < Tk; ++j) ds_row[j] = p_row[j] * (ds_row[j] - row_dot);
      }
      Gemm(false, false, Tq, D, Tk, scale, ds, Tk, k + view.k_offset, C, T(0), dq + view.q_offset,
           C);
      Gemm(true, false, Tk, D, Tq, scale, ds, Tk, q + view.q_offset, C, T(0), dk + view.k_offset,
           C);
    }
  }
}

template void attention_forward<float>(float*, float*, const float*, const float*, const float*,
                                       const uint8_t*, const AttentionShape&, float,
                                       const RngStream&);
template void attention_forward<double>(double*, double*, const double*, const double*,
                                        const double*, const uint8_t*, const AttentionShape&, float,
                                        const RngStream&);
template void attention_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*,
                                        const AttentionShape&, float, const RngStream&);
template void attention_backward<double>(double*, double*, double*, const double*, const double*,
                                         const double*, const double*, const double*,
                                         const AttentionShape&, float, const RngStream&);

}  // namespace deepnet::cpu
