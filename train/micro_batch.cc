// Batch -> MicroBatch conversion (host vectors into device tensors).
#include "train/micro_batch.h"

#include <cstring>

namespace deepnet {
namespace {

// A (rows, cols) tensor of `values` on the backend's device.
template <typename T>
Tensor ToTensor(const std::vector<T>& values, int64_t rows, int64_t cols, const Backend& backend) {
  CHECK_EQ(static_cast<int64_t>(values.size()), rows * cols);
  Tensor host = Tensor::Empty({rows, cols}, DTypeOf<T>::value, MemoryCategory::kActivations);
  if (!values.empty()) std::memcpy(host.raw_data(), values.data(), host.nbytes());
  if (backend.device().is_cpu()) return host;
  Tensor device = backend.Empty(host.shape(), host.dtype(), MemoryCategory::kActivations);
  backend.Copy(device, host);
  return device;
}

}  // namespace

MicroBatch ToMicroBatch(const Batch& batch, int index, const Backend& backend) {
  const int64_t b = batch.batch_size;
  const int64_t t = batch.target_len;
  std::vector<uint8_t> target_mask(b * t);
  for (int64_t row = 0; row < b; ++row) {
    for (int64_t col = 0; col < t; ++col) {
      target_mask[row * t + col] = col >= batch.target_lengths[row] ? 1 : 0;
    }
  }
  MicroBatch mb;
  mb.source = ToTensor(batch.source, b, batch.source_len, backend);
  mb.source_mask = ToTensor(batch.source_pad_mask, b, batch.source_len, backend);
  mb.target_input = ToTensor(batch.decoder_input, b, t, backend);
  mb.target_mask = ToTensor(target_mask, b, t, backend);
  mb.target = ToTensor(batch.target, b, t, backend);
  mb.num_target_tokens = batch.num_target_tokens;
  mb.index = index;
  return mb;
}

StatusOr<std::vector<MicroBatch>> ToMicroBatches(const Batch& batch, int num_micro_batches,
                                                 int first_index, const Backend& backend) {
  ASSIGN_OR_RETURN(std::vector<Batch> parts, SplitBatch(batch, num_micro_batches));
  std::vector<MicroBatch> micro_batches;
  micro_batches.reserve(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    micro_batches.push_back(ToMicroBatch(parts[i], first_index + static_cast<int>(i), backend));
  }
  return micro_batches;
}

}  // namespace deepnet
