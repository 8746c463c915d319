// StreamLayout: which tensors of a Stream cross a pipeline stage boundary, and their shapes.
//
// Letters: B sentences of the micro-batch, S source length, T target length, C d_model.
// A boundary is named by the first unit above it (b ≥ 1). Forward carries, after the embedding,
// enc (B, S, C) when the model has an encoder and dec (B, T, C) when it has a decoder (an
// encoder-decoder model carries the embedded target through the encoder stages). Backward carries
// grad.dec whenever the model has a decoder; grad.enc in an encoder-only model, and in an
// encoder-decoder model only below the last decoder layer (the output unit leaves it empty; the
// last decoder layer creates it — model/README.md). Sender and receiver derive the same layout, so
// no header travels with the tensors.
#pragma once

#include <vector>

#include "configs/deepnet.pb.h"
#include "kernels/backend.h"
#include "model/unit.h"
#include "parallel/transfer_buffers.h"
#include "runtime/status.h"

namespace deepnet {

struct BoundaryTensors {
  bool enc = false;
  bool dec = false;
};

class StreamLayout {
 public:
  StreamLayout() = default;
  static StreamLayout FromConfig(const config::ModelConfig& model, DType dtype);

  BoundaryTensors Activation(int boundary_unit) const;
  BoundaryTensors Gradient(int boundary_unit) const;

  Shape EncShape(const MicroBatch& mb) const;  // (B, S, C)
  Shape DecShape(const MicroBatch& mb) const;  // (B, T, C)

  // A Stream with (kActivations) tensors of the boundary's shapes to receive into: from `pool`
  // when given, else freshly allocated.
  Stream Allocate(BoundaryTensors tensors, const MicroBatch& mb, const Backend& backend,
                  TransferBuffers* pool = nullptr) const;
  // The tensors of `stream` that cross: enc then dec, each checked against its shape. An
  // Internal error names the mismatch (a layout that disagrees with the units' behaviour).
  StatusOr<std::vector<Tensor>> Crossing(const Stream& stream, BoundaryTensors tensors,
                                         const MicroBatch& mb) const;

 private:
  bool has_encoder_ = false;
  bool has_decoder_ = false;
  int last_decoder_unit_ = -1;  // encoder-decoder: unit index of the last decoder layer
  int64_t d_model_ = 0;
  DType dtype_ = DType::kF32;
};

}  // namespace deepnet
