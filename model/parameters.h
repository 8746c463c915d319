// Parameter tables of the units and their deterministic initialisation.
//
// Each unit declares its parameters as a list of ParamSpec (export name, shape, init); the list
// fixes the layout of the unit's flat value and gradient buffers (packed in declaration order).
// DescribeUnits counts the same lists without allocating.
//
// Initialisation (docs/design.md#deepnorm) draws N(0, 1) numbers from Philox keyed by the seed,
// with the counter holding a hash of the parameter's export name: the values depend only on (seed,
// name), so any pipeline partition builds the same weights, and the output unit's tied copy of
// `embed_tokens.weight` gets exactly the primary's values.
// Letters: C d_model, F ffn_dim, V vocab.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/model.h"
#include "model/settings.h"
#include "model/unit.h"
#include "runtime/tensor.h"

namespace deepnet {

enum class InitKind { kZeros, kOnes, kNormal };

struct ParamSpec {
  std::string name;  // export name (docs/design.md#export-format)
  Shape shape;       // Linear weights [out, in]
  InitKind init = InitKind::kZeros;
  double stddev = 0.0;  // kNormal only
  bool tied_copy = false;
};

// Xavier-normal standard deviation of a Linear weight [out, in]: gain·sqrt(2/(in + out)).
double XavierStd(const Shape& shape, double gain);

// The parameters of unit `kind`; `layer` is the layer number within its stack (layers only).
std::vector<ParamSpec> UnitParamSpecs(const ModelSettings& settings, UnitKind kind, int layer);

int64_t CountElements(const std::vector<ParamSpec>& specs);

// n draws of N(0, stddev²) for the parameter `name` (Box–Muller over Philox 4x32-10).
void FillNormal(double* out, int64_t n, double stddev, uint64_t seed, std::string_view name);

// The flat buffers of one unit, on one device.
struct ParameterBuffers {
  Tensor values;  // compute dtype
  Tensor grads;   // master dtype, zeroed
  Tensor master;  // master dtype; only when the compute dtype differs
};

// Allocates the flat buffers on `backend`'s device (values and master kParameters, grads
// kGradients), initialises the weights in `dtype` (the master dtype), rounds them into the
// `compute_dtype` values when that differs, and creates one Parameter of views per spec.
void AllocateParameters(const std::vector<ParamSpec>& specs, const Backend& backend, DType dtype,
                        DType compute_dtype, uint64_t seed, std::vector<Parameter>* parameters,
                        ParameterBuffers* buffers);

}  // namespace deepnet
