// Fuzzes the token-shard reader: ShardReader::Open on a file holding the input bytes (the reader
// only takes a path: the input goes to a scratch file first), then every accessor training uses.
//
// Checksums: a version-2 input whose header_crc32 field is 0 gets its checksums filled in (the
// header's, and every block's when the file is as long as the header says), so that mutations
// reach the checks behind them; any other input keeps its own and exercises the mismatch paths.
// Version-1 inputs have none.
//
// Properties: no crash or sanitizer report; a damaged file is kDataLoss; a shard that opens keeps
// the promises of text/shard.h: the lengths add up to the header's token counts, every example is
// non-empty, ends with </s> and holds only ids in [0, vocab_size), and the special ids lie in the
// vocabulary.
//
// The reader maps the file, so a read past its end but inside the last page is not caught by
// ASan; the checks above (every token read and range-checked) stand in for it.
#include <cstring>

#include "runtime/checksum.h"
#include "tests/fuzz/fuzz_util.h"
#include "text/shard.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FLAGS_minloglevel = 2;
  return 0;
}

namespace {

using deepnet::ShardReader;

int64_t CheckSide(const ShardReader& shard, bool source) {
  const int32_t vocab = shard.vocab_size();
  const int32_t eos = shard.special_ids().eos;
  const std::vector<int32_t> lengths = source ? shard.source_lengths() : shard.target_lengths();
  FUZZ_CHECK(static_cast<int64_t>(lengths.size()) == shard.num_examples(), "lengths size");
  int64_t total = 0;
  for (int64_t e = 0; e < shard.num_examples(); ++e) {
    const std::span<const int32_t> tokens = source ? shard.source(e) : shard.target(e);
    FUZZ_CHECK(!tokens.empty(), "an empty example");
    FUZZ_CHECK(static_cast<int64_t>(tokens.size()) == lengths[e], "span and length disagree");
    FUZZ_CHECK(tokens.back() == eos, "an example without </s>");
    for (const int32_t id : tokens) {
      FUZZ_CHECK(id >= 0 && id < vocab, "an id outside the vocabulary");
    }
    total += static_cast<int64_t>(tokens.size());
  }
  return total;
}

// The input with its checksums filled in when it asks for that (see the top of the file).
std::string FillInChecksums(std::string_view input) {
  using deepnet::ShardHeader;
  std::string bytes(input);
  ShardHeader header;
  if (bytes.size() < sizeof(header)) return bytes;
  std::memcpy(&header, bytes.data(), sizeof(header));
  if (std::memcmp(header.magic, deepnet::kShardMagic, 4) != 0 || header.version != 2 ||
      header.header_crc32 != 0) {
    return bytes;
  }
  const uint64_t size = bytes.size(), e = header.num_examples, s = header.num_source_tokens,
                 t = header.num_target_tokens, block = header.checksum_block_bytes;
  if (e < size && s < size && t < size && block > 0) {
    const uint64_t body = 16 * (e + 1) + 4 * (s + t);
    const uint64_t blocks = body / block + (body % block != 0 ? 1 : 0);
    if (sizeof(header) + body + 4 * blocks == size) {
      for (uint64_t k = 0; k < blocks; ++k) {
        const uint64_t begin = sizeof(header) + k * block;
        const uint32_t crc =
            deepnet::Crc32(bytes.data() + begin, std::min(block, body - k * block));
        std::memcpy(bytes.data() + sizeof(header) + body + 4 * k, &crc, sizeof(crc));
      }
    }
  }
  header.header_crc32 = deepnet::Crc32(&header, sizeof(header));  // with the field 0
  std::memcpy(bytes.data(), &header, sizeof(header));
  return bytes;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deepnet;
  const std::string path = fuzz::ScratchPath();
  StatusOr<ShardReader> shard =
      ShardReader::Open(fuzz::WriteScratch(path, FillInChecksums(fuzz::AsText(data, size))));
  if (!shard.ok()) {
    FUZZ_CHECK(shard.status().code() == StatusCode::kDataLoss, shard.status().ToString());
    return 0;
  }
  FUZZ_CHECK(shard->vocab_size() > 0, "vocab_size <= 0");
  const SpecialIds ids = shard->special_ids();
  for (const int32_t id : {ids.pad, ids.unk, ids.bos, ids.eos}) {
    FUZZ_CHECK(id >= 0 && id < shard->vocab_size(), "a special id outside the vocabulary");
  }
  FUZZ_CHECK(CheckSide(*shard, /*source=*/true) == shard->num_source_tokens(), "source tokens");
  FUZZ_CHECK(CheckSide(*shard, /*source=*/false) == shard->num_target_tokens(), "target tokens");
  ShardReader moved = std::move(shard).value();  // the move leaves one owner of the mapping
  FUZZ_CHECK(moved.num_examples() >= 0, "negative example count");
  return 0;
}
