// Token shards: a tokenized parallel corpus in one binary file, memory-mapped for training.
//
// Layout, format version 2 (all little-endian, every section naturally aligned):
//   ShardHeader                         64 bytes: magic "DNTK", version, vocabulary and special
//                                       ids, the header's CRC-32, num_examples (E),
//                                       num_source_tokens (S), num_target_tokens (T), block size
//   source_offsets  uint64[E + 1]       example e's source is tokens [off[e], off[e+1])
//   target_offsets  uint64[E + 1]
//   source_tokens   int32[S]
//   target_tokens   int32[T]
//   block_crc32     uint32[K]           checksums of the body (v2 only, see below)
// Each example stores source = pieces + </s> and target = pieces + </s>; the decoder input
// <s> + pieces is derived when batching.
//
// Checksums (v2): CRC-32 as zlib computes it (runtime/checksum.h). header_crc32 is the checksum
// of the 64 header bytes with that field set to 0. The body (the four arrays, 16(E+1) + 4(S+T)
// bytes from file offset 64) is cut into blocks of checksum_block_bytes (the writer uses
// kShardChecksumBlockBytes; the last block may be shorter), and block_crc32[k] is block k's
// checksum, K = ceil(body / checksum_block_bytes).
//
// The reader checks, in this order, the magic and version, the header checksum, the header's
// values and the file size, every block's checksum, then every offset and that every id lies in
// [0, vocab_size): a damaged file gives kDataLoss naming the file and the fault (for a checksum
// mismatch the block, its file bytes and the array elements in it), never a crash; an in-range
// token change is caught by its block's checksum. Version 1 files (the same layout without
// checksums: header_crc32 and checksum_block_bytes 0, no block_crc32) are still read, fully
// validated but without checksums, with a warning (once per path) to re-run `deepnet prepare`.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "runtime/status.h"
#include "text/tokenizer.h"

namespace deepnet {

inline constexpr char kShardMagic[4] = {'D', 'N', 'T', 'K'};
inline constexpr uint32_t kShardVersion = 2;        // what ShardWriter writes
inline constexpr uint32_t kShardOldestVersion = 1;  // the oldest ShardReader reads
inline constexpr uint64_t kShardChecksumBlockBytes = 64 << 10;

struct ShardHeader {
  char magic[4];
  uint32_t version;
  uint32_t vocab_size;
  int32_t pad_id;
  int32_t bos_id;
  int32_t eos_id;
  int32_t unk_id;
  uint32_t header_crc32;  // v2: CRC-32 of these 64 bytes with this field 0; v1: 0
  uint64_t num_examples;
  uint64_t num_source_tokens;
  uint64_t num_target_tokens;
  uint64_t checksum_block_bytes;  // v2: the body's block size; v1: 0
};
static_assert(sizeof(ShardHeader) == 64);

// Collects examples in memory, then writes the shard atomically (temporary file, fsync, rename).
class ShardWriter {
 public:
  ShardWriter(int32_t vocab_size, const SpecialIds& special);

  // `source` and `target` are complete sequences (already ending in </s>), each non-empty.
  void Add(std::span<const int32_t> source, std::span<const int32_t> target);
  // Writes format kShardVersion, checksums included.
  Status Write(const std::string& path) const;

  int64_t num_examples() const { return static_cast<int64_t>(source_offsets_.size()) - 1; }
  int64_t num_source_tokens() const { return static_cast<int64_t>(source_tokens_.size()); }
  int64_t num_target_tokens() const { return static_cast<int64_t>(target_tokens_.size()); }

 private:
  int32_t vocab_size_;
  SpecialIds special_;
  std::vector<uint64_t> source_offsets_{0};
  std::vector<uint64_t> target_offsets_{0};
  std::vector<int32_t> source_tokens_;
  std::vector<int32_t> target_tokens_;
};

// A read-only, memory-mapped shard. Movable, not copyable; unmaps on destruction.
class ShardReader {
 public:
  static StatusOr<ShardReader> Open(const std::string& path);

  ShardReader(ShardReader&& other) noexcept;
  ShardReader& operator=(ShardReader&& other) noexcept;
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;
  ~ShardReader();

  int64_t num_examples() const { return static_cast<int64_t>(header_.num_examples); }
  int64_t num_source_tokens() const { return static_cast<int64_t>(header_.num_source_tokens); }
  int64_t num_target_tokens() const { return static_cast<int64_t>(header_.num_target_tokens); }
  int32_t vocab_size() const { return static_cast<int32_t>(header_.vocab_size); }
  uint32_t version() const { return header_.version; }  // 1: no checksums
  SpecialIds special_ids() const;
  const std::string& path() const { return path_; }

  std::span<const int32_t> source(int64_t example) const;  // pieces + </s>
  std::span<const int32_t> target(int64_t example) const;  // pieces + </s>
  int32_t source_length(int64_t example) const;
  int32_t target_length(int64_t example) const;
  // Every example's length, in example order: what the batch planner (PlanEpoch) reads.
  std::vector<int32_t> source_lengths() const;
  std::vector<int32_t> target_lengths() const;

 private:
  ShardReader() = default;
  Status Validate(size_t file_size);
  Status VerifyBlocks(uint64_t body_bytes) const;
  void Unmap();

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  ShardHeader header_{};
  const uint64_t* source_offsets_ = nullptr;  // (E + 1)
  const uint64_t* target_offsets_ = nullptr;  // (E + 1)
  const int32_t* source_tokens_ = nullptr;    // (S)
  const int32_t* target_tokens_ = nullptr;    // (T)
};

}  // namespace deepnet
