// When a CPU kernel's loop is worth an OpenMP parallel region.
#pragma once

#include <cstdint>

namespace deepnet::cpu {

// Below this many elements a parallel region costs more than it saves.
constexpr int64_t kParallelMinElements = 1 << 15;

}  // namespace deepnet::cpu
