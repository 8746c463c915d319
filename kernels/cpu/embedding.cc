// Token embedding lookup and its scatter-add gradient; sinusoidal positions.
// N tokens, V vocab, C channels, B batch, Tlen time.
#include "kernels/cpu/embedding.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace deepnet::cpu {
namespace {

// Channels per unit of work in the backward scatter: every thread owns whole columns of dtable,
// so repeated tokens always add up in the order of n.
constexpr int kChannelChunk = 64;

}  // namespace

template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int N, int V, int C,
                       T scale) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const T* row = table + static_cast<int64_t>(tokens[n]) * C;
    T* dst = out + static_cast<int64_t>(n) * C;
    for (int c = 0; c < C; ++c) dst[c] = row[c] * scale;
  }
}

template <typename T>
void embedding_backward(T* dtable, const int32_t* tokens, const T* dout, int N, int V, int C,
                        T scale) {
  const int chunks = (C + kChannelChunk - 1) / kChannelChunk;
#pragma omp parallel for schedule(static)
  for (int chunk = 0; chunk < chunks; ++chunk) {
    const int c_begin = chunk * kChannelChunk;
    const int c_end = std::min(C, c_begin + kChannelChunk);
    for (int n = 0; n < N; ++n) {
      T* dst = dtable + static_cast<int64_t>(tokens[n]) * C;
      const T* src = dout + static_cast<int64_t>(n) * C;
      for (int c = c_begin; c < c_end; ++c) dst[c] += scale * src[c];
    }
  }
}

template <typename T>
void sinusoidal_positions_add(T* x, int B, int Tlen, int C, int pos_offset) {
  // Frequencies 10000^(−2i/C), shared by every position (channel pair 2i, 2i+1).
  std::vector<double> inv_freq((C + 1) / 2);
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    inv_freq[i] = std::pow(10000.0, -2.0 * static_cast<double>(i) / C);
  }
#pragma omp parallel
  {
    std::vector<T> pe(C);
#pragma omp for schedule(static)
    for (int t = 0; t < Tlen; ++t) {
      const double position = static_cast<double>(pos_offset) + t;
      for (int c = 0; c < C; ++c) {
        const double angle = position * inv_freq[c / 2];
        pe[c] = static_cast<T>(c % 2 == 0 ? std::sin(angle) : std::cos(angle));
      }
      for (int b = 0; b < B; ++b) {
        T* row = x + (static_cast<int64_t>(b) * Tlen + t) * C;
        for (int c = 0; c < C; ++c) row[c] += pe[c];
      }
    }
  }
}

template void embedding_forward<float>(float*, const int32_t*, const float*, int, int, int, float);
template void embedding_forward<double>(double*, const int32_t*, const double*, int, int, int,
                                        double);
template void embedding_backward<float>(float*, const int32_t*, const float*, int, int, int, float);
template void embedding_backward<double>(double*, const int32_t*, const double*, int, int, int,
                                         double);
template void sinusoidal_positions_add<float>(float*, int, int, int, int);
template void sinusoidal_positions_add<double>(double*, int, int, int, int);

}  // namespace deepnet::cpu
