// StreamLayout: the tensors at a stage boundary (see the header for the rules).
#include "parallel/engine_layout.h"

#include "model/model.h"

namespace deepnet {

StreamLayout StreamLayout::FromConfig(const config::ModelConfig& model, DType dtype) {
  StreamLayout layout;
  const auto arch = model.architecture();
  layout.has_encoder_ = arch != config::ModelConfig::DECODER_ONLY;
  layout.has_decoder_ = arch != config::ModelConfig::ENCODER_ONLY;
  layout.d_model_ = model.d_model();
  layout.dtype_ = dtype;
  if (arch == config::ModelConfig::ENCODER_DECODER) {
    for (const UnitInfo& unit : DescribeUnits(model)) {
      if (unit.kind == UnitKind::kDecoderLayer) layout.last_decoder_unit_ = unit.index;
    }
  }
  return layout;
}

BoundaryTensors StreamLayout::Activation(int boundary_unit) const {
  return {has_encoder_, has_decoder_};
}

BoundaryTensors StreamLayout::Gradient(int boundary_unit) const {
  if (!has_encoder_) return {false, true};
  if (!has_decoder_) return {true, false};
  return {boundary_unit <= last_decoder_unit_, true};
}

Shape StreamLayout::EncShape(const MicroBatch& mb) const {
  return {mb.source.dim(0), mb.source.dim(1), d_model_};
}

Shape StreamLayout::DecShape(const MicroBatch& mb) const {
  return {mb.target_input.dim(0), mb.target_input.dim(1), d_model_};
}

Stream StreamLayout::Allocate(BoundaryTensors tensors, const MicroBatch& mb, const Backend& backend,
                              TransferBuffers* pool) const {
  const auto make = [&](const Shape& shape) {
    return pool != nullptr ? pool->Acquire(shape, dtype_, backend)
                           : backend.Empty(shape, dtype_, MemoryCategory::kActivations);
  };
  Stream stream;
  if (tensors.enc) stream.enc = make(EncShape(mb));
  if (tensors.dec) stream.dec = make(DecShape(mb));
  return stream;
}

StatusOr<std::vector<Tensor>> StreamLayout::Crossing(const Stream& stream, BoundaryTensors tensors,
                                                     const MicroBatch& mb) const {
  std::vector<Tensor> crossing;
  const auto add = [&](const Tensor& tensor, const Shape& shape, const char* name) -> Status {
    if (tensor.shape() != shape || tensor.dtype() != dtype_) {
      return Internal(std::string("stream tensor ") + name + " is " + tensor.ToString() +
                      ", the boundary expects " + ShapeToString(shape));
    }
    crossing.push_back(tensor);
    return OkStatus();
  };
  if (tensors.enc) RETURN_IF_ERROR(add(stream.enc, EncShape(mb), "enc"));
  if (tensors.dec) RETURN_IF_ERROR(add(stream.dec, DecShape(mb), "dec"));
  return crossing;
}

}  // namespace deepnet
