// Token embedding lookup (scaled, docs/design.md#model-conventions: embed(tok)·√d) and sinusoidal
// positions.
#pragma once

#include <cstdint>

namespace deepnet::cpu {

// out (N, C) = table[tokens[n]] · scale. Token ids must be in [0, V) (the data loader checks).
template <typename T>
void embedding_forward(T* out, const int32_t* tokens, const T* table, int N, int V, int C, T scale);

// dtable (V, C) += scale · dout scattered to the rows of tokens. Rows repeated in `tokens`
// accumulate in the order of n, so the result is deterministic.
template <typename T>
void embedding_backward(T* dtable, const int32_t* tokens, const T* dout, int N, int V, int C,
                        T scale);

// x (B, T, C) += PE[pos_offset + t] with PE[p, 2i] = sin(p / 10000^(2i/C)),
// PE[p, 2i+1] = cos(p / 10000^(2i/C)). (Gradient passes through unchanged.)
template <typename T>
void sinusoidal_positions_add(T* x, int B, int Tlen, int C, int pos_offset = 0);

}  // namespace deepnet::cpu
