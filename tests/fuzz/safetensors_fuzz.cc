// Fuzzes the safetensors reader, which opens every checkpoint and export file:
// SafetensorsReader::Open on a file holding the input bytes (8-byte header length, JSON header,
// data), then Read of every tensor, as a checkpoint restore or an export check does.
//
// Properties: no crash or sanitizer report; a damaged file is kDataLoss; a file that opens keeps
// the promises of runtime/safetensors.h: every entry is found by its name, its byte range matches
// its dtype and shape, the ranges tile the data section in order, and each tensor reads back with
// that many bytes, or, in a file with checksums, fails with kDataLoss exactly when Verify does.
//
// Checksums: the fuzzer cannot forge "crc32.header", so inputs with checksums mostly stop at that
// check; the parsing before it is the same for files without checksums, which the reader accepts
// (the seed "checksummed" has valid ones: its data bytes mutate behind a valid header).
#include "runtime/safetensors.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FLAGS_minloglevel = 2;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deepnet;
  const std::string path = fuzz::ScratchPath();
  StatusOr<SafetensorsReader> reader =
      SafetensorsReader::Open(fuzz::WriteScratch(path, fuzz::AsText(data, size)));
  if (!reader.ok()) {
    FUZZ_CHECK(reader.status().code() == StatusCode::kDataLoss, reader.status().ToString());
    return 0;
  }
  const Status verified = reader->Verify();
  FUZZ_CHECK(verified.ok() || (reader->has_checksums() && verified.code() == StatusCode::kDataLoss),
             verified.ToString());
  bool all_read = true;
  uint64_t expected_begin = 0;
  for (const SafetensorsEntry& entry : reader->entries()) {
    FUZZ_CHECK(reader->Find(entry.name) == &entry, "entry \"" + entry.name + "\" not found");
    FUZZ_CHECK(entry.begin == expected_begin && entry.begin <= entry.end,
               "entries do not tile the data section");
    expected_begin = entry.end;
    FUZZ_CHECK(entry.end <= size, "a byte range past the end of the file");
    StatusOr<Tensor> tensor = reader->Read(entry.name);
    if (!tensor.ok() && reader->has_checksums()) {
      FUZZ_CHECK(tensor.status().code() == StatusCode::kDataLoss, tensor.status().ToString());
      all_read = false;
      continue;
    }
    FUZZ_CHECK(tensor.ok(), "tensor \"" + entry.name + "\": " + tensor.status().ToString());
    FUZZ_CHECK(tensor->nbytes() == entry.end - entry.begin, "tensor size and byte range differ");
    FUZZ_CHECK(tensor->shape() == entry.shape && tensor->dtype() == entry.dtype,
               "tensor shape or dtype differs from the header");
  }
  FUZZ_CHECK(all_read == verified.ok(), "Verify and Read disagree: " + verified.ToString());
  FUZZ_CHECK(reader->Find(kSafetensorsMetadataKey) == nullptr, "__metadata__ taken as a tensor");
  return 0;
}
