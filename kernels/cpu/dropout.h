// Inverted dropout whose mask is a pure function of the Philox stream (runtime/philox.h):
// element e is kept when PhiloxUniform(stream, e) ≥ p, and then scaled by 1/(1 − p).
// Backward regenerates the mask instead of storing it; the CUDA backend draws the same bits.
#pragma once

#include <cstdint>

#include "runtime/philox.h"

namespace deepnet::cpu {

// y (n) = x · mask / (1 − p). p = 0 copies; y may alias x.
template <typename T>
void dropout_forward(T* y, const T* x, int64_t n, float p, const RngStream& stream);

// dx (n) = dy · mask / (1 − p) (overwrite; dx may alias dy).
template <typename T>
void dropout_backward(T* dx, const T* dy, int64_t n, float p, const RngStream& stream);

// y (n) = x · mask / (1 − p) for elements first.. first + n − 1 of the stream's mask, on the
// calling thread: for kernels that drop inside their own parallel loop (attention probabilities).
// p = 0 copies; y may alias x.
template <typename T>
void dropout_range(T* y, const T* x, int64_t n, uint64_t first, float p, const RngStream& stream);

// True when element `index` of `stream` survives dropout with rate p.
inline bool dropout_keep(const RngStream& stream, uint64_t index, float p) {
  return PhiloxUniform(stream, index) >= p;
}

}  // namespace deepnet::cpu
