// AdamW with fp32 (or fp64) state and the global L2 norm used for gradient clipping.
#pragma once

#include <cstdint>

#include "kernels/op_types.h"

namespace deepnet::cpu {

// One AdamW step for n parameters. `step` counts from 1 (bias correction). Gradients are
// multiplied by grad_scale first (clipping: min(1, max_norm / norm)).
template <typename T>
void adamw_update(T* param, T* m, T* v, const T* grad, int64_t n, const AdamWConfig& config,
                  int64_t step, T grad_scale);

// Σ x² over n elements, accumulated in double in fixed-size blocks (thread-count independent).
template <typename T>
double sum_of_squares(const T* x, int64_t n);

}  // namespace deepnet::cpu
