// Export of a trained model for outside tools: one safetensors file as docs/design.md#export-format
// fixes it.
//
// Tensors are named by Parameter::name (PyTorch Linear layout weight[out, in]), tied copies are
// left out (the shared `embed_tokens.weight` serves them), and every tensor is fp32. `__metadata__`
// holds each set field of the model config under its proto name ("d_model": "512",
// "norm": "DEEPNORM", ...), the special token ids ("pad_id", "unk_id", "bos_id", "eos_id") and
// "format": "deepnet".
#pragma once

#include <map>
#include <string>
#include <vector>

#include "configs/deepnet.pb.h"
#include "kernels/backend.h"
#include "model/unit.h"
#include "runtime/atomic_file.h"
#include "runtime/status.h"
#include "text/tokenizer.h"

namespace deepnet {

// The metadata map described above.
std::map<std::string, std::string> ExportMetadata(const config::ModelConfig& model,
                                                  const SpecialIds& special_ids);

Status ExportModel(const std::string& path, const std::vector<Unit*>& units,
                   const config::ModelConfig& model, const SpecialIds& special_ids,
                   const Backend& backend, FileSystem& fs = LocalFileSystem());

}  // namespace deepnet
