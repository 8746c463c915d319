// Export to safetensors as docs/design.md#export-format fixes it.
#include "train/export.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/text_format.h>

#include "runtime/safetensors.h"

namespace deepnet {
namespace {

// An fp32 host copy of `value` (fp64 parameters are rounded to nearest).
Tensor Fp32OnHost(const Tensor& value, const Backend& backend) {
  Tensor host = value;
  if (!value.device().is_cpu()) {
    host = Tensor::Empty(value.shape(), value.dtype(), MemoryCategory::kWorkspace);
    backend.Copy(host, value);
  }
  if (host.dtype() == DType::kF32) return host;
  CHECK(host.dtype() == DType::kF64) << "export of " << host.ToString() << " is not supported";
  Tensor f32 = Tensor::Empty(host.shape(), DType::kF32, MemoryCategory::kWorkspace);
  const double* src = host.data<double>();
  float* dst = f32.data<float>();
  for (int64_t i = 0; i < host.numel(); ++i) dst[i] = static_cast<float>(src[i]);
  return f32;
}

}  // namespace

std::map<std::string, std::string> ExportMetadata(const config::ModelConfig& model,
                                                  const SpecialIds& special_ids) {
  std::map<std::string, std::string> metadata;
  const google::protobuf::Descriptor* descriptor = model.GetDescriptor();
  const google::protobuf::Reflection* reflection = model.GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated() || !reflection->HasField(model, field)) continue;
    std::string text;
    google::protobuf::TextFormat::PrintFieldValueToString(model, field, -1, &text);
    metadata[field->name()] = text;
  }
  metadata["pad_id"] = std::to_string(special_ids.pad);
  metadata["unk_id"] = std::to_string(special_ids.unk);
  metadata["bos_id"] = std::to_string(special_ids.bos);
  metadata["eos_id"] = std::to_string(special_ids.eos);
  metadata["format"] = "deepnet";
  return metadata;
}

Status ExportModel(const std::string& path, const std::vector<Unit*>& units,
                   const config::ModelConfig& model, const SpecialIds& special_ids,
                   const Backend& backend, FileSystem& fs) {
  SafetensorsWriter writer;
  for (const Unit* unit : units) {
    for (const Parameter& parameter : unit->parameters()) {
      if (parameter.tied_copy) continue;
      const Tensor& weights = parameter.weights();  // the fp32 master under mixed precision
      if (weights.dtype() != DType::kF32 && weights.dtype() != DType::kF64) {
        return Unimplemented("export: parameter " + parameter.name + " is " +
                             std::string(DTypeName(weights.dtype())));
      }
      RETURN_IF_ERROR(writer.Add(parameter.name, Fp32OnHost(weights, backend)));
    }
  }
  for (auto& [key, value] : ExportMetadata(model, special_ids)) writer.SetMetadata(key, value);
  return writer.Write(path, fs);
}

}  // namespace deepnet
