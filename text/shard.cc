#include "text/shard.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>
#include <utility>

#include "runtime/checksum.h"
#include "text/file_io.h"

namespace deepnet {

static_assert(std::endian::native == std::endian::little, "shards are little-endian");

namespace {

template <typename T>
void AppendRaw(std::string* out, const T* data, size_t count) {
  out->append(reinterpret_cast<const char*>(data), count * sizeof(T));
}

// Checks one offsets table: starts at 0, never decreases, ends at `num_tokens`, no empty example.
Status ValidateOffsets(const uint64_t* offsets, uint64_t num_examples, uint64_t num_tokens,
                       const char* side) {
  if (offsets[0] != 0) {
    return DataLoss(std::string(side) + " offsets start at " + std::to_string(offsets[0]));
  }
  for (uint64_t e = 0; e < num_examples; ++e) {
    if (offsets[e + 1] <= offsets[e] || offsets[e + 1] > num_tokens) {
      return DataLoss(std::string(side) + " offset of example " + std::to_string(e + 1) + " is " +
                      std::to_string(offsets[e + 1]) + " after " + std::to_string(offsets[e]) +
                      " (" + std::to_string(num_tokens) + " tokens)");
    }
  }
  if (offsets[num_examples] != num_tokens) {
    return DataLoss(std::string(side) + " offsets end at " + std::to_string(offsets[num_examples]) +
                    ", header says " + std::to_string(num_tokens) + " tokens");
  }
  return OkStatus();
}

// Checks that every id is in [0, vocab_size) and that every example ends with </s>.
Status ValidateTokens(const int32_t* tokens, const uint64_t* offsets, uint64_t num_examples,
                      const ShardHeader& header, const char* side) {
  const int32_t vocab_size = static_cast<int32_t>(header.vocab_size);
  for (uint64_t i = 0; i < offsets[num_examples]; ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab_size) {
      return DataLoss(std::string(side) + " token " + std::to_string(i) + " has id " +
                      std::to_string(tokens[i]) + ", outside the vocabulary of " +
                      std::to_string(vocab_size));
    }
  }
  for (uint64_t e = 0; e < num_examples; ++e) {
    if (tokens[offsets[e + 1] - 1] != header.eos_id) {
      return DataLoss(std::string(side) + " of example " + std::to_string(e) +
                      " does not end with </s>");
    }
  }
  return OkStatus();
}

// The CRC-32 of a header with its header_crc32 field taken as 0.
uint32_t HeaderCrc(ShardHeader header) {
  header.header_crc32 = 0;
  return Crc32(&header, sizeof(header));
}

uint64_t NumBlocks(uint64_t body_bytes, uint64_t block_bytes) {
  return body_bytes / block_bytes + (body_bytes % block_bytes != 0 ? 1 : 0);
}

// Which array elements the file bytes [begin, end) of the body hold, e.g.
// "source_tokens[0..16384), target_tokens[0..80)".
std::string DescribeBytes(const ShardHeader& header, uint64_t begin, uint64_t end) {
  const uint64_t e = header.num_examples;
  const struct {
    const char* name;
    uint64_t count;
    uint64_t element_bytes;
  } arrays[] = {{"source_offsets", e + 1, 8},
                {"target_offsets", e + 1, 8},
                {"source_tokens", header.num_source_tokens, 4},
                {"target_tokens", header.num_target_tokens, 4}};
  std::string text;
  uint64_t start = sizeof(ShardHeader);
  for (const auto& array : arrays) {
    const uint64_t stop = start + array.count * array.element_bytes;
    const uint64_t lo = std::max(begin, start), hi = std::min(end, stop);
    if (lo < hi) {
      if (!text.empty()) text += ", ";
      text += std::string(array.name) + "[" + std::to_string((lo - start) / array.element_bytes) +
              ".." + std::to_string((hi - start + array.element_bytes - 1) / array.element_bytes) +
              ")";
    }
    start = stop;
  }
  return text;
}

// Logs, once per path in this process, that the shard at `path` has no checksums.
void WarnUncheckedOnce(const std::string& path) {
  static std::mutex mutex;
  static auto* warned = new std::set<std::string>();
  std::lock_guard<std::mutex> lock(mutex);
  if (!warned->insert(path).second) return;
  LOG(WARNING) << path
               << ": token shard format v1 carries no checksums, so damage that keeps its ids in "
                  "range cannot be detected; re-run `deepnet prepare` to rewrite it as v"
               << kShardVersion << " with checksums";
}

}  // namespace

ShardWriter::ShardWriter(int32_t vocab_size, const SpecialIds& special)
    : vocab_size_(vocab_size), special_(special) {}

void ShardWriter::Add(std::span<const int32_t> source, std::span<const int32_t> target) {
  CHECK(!source.empty() && !target.empty()) << "a shard example needs source and target tokens";
  source_tokens_.insert(source_tokens_.end(), source.begin(), source.end());
  target_tokens_.insert(target_tokens_.end(), target.begin(), target.end());
  source_offsets_.push_back(source_tokens_.size());
  target_offsets_.push_back(target_tokens_.size());
}

Status ShardWriter::Write(const std::string& path) const {
  ShardHeader header{};
  std::memcpy(header.magic, kShardMagic, sizeof(header.magic));
  header.version = kShardVersion;
  header.vocab_size = static_cast<uint32_t>(vocab_size_);
  header.pad_id = special_.pad;
  header.bos_id = special_.bos;
  header.eos_id = special_.eos;
  header.unk_id = special_.unk;
  header.num_examples = static_cast<uint64_t>(num_examples());
  header.num_source_tokens = source_tokens_.size();
  header.num_target_tokens = target_tokens_.size();
  header.checksum_block_bytes = kShardChecksumBlockBytes;
  header.header_crc32 = HeaderCrc(header);

  const uint64_t body_bytes = 8 * (source_offsets_.size() + target_offsets_.size()) +
                              4 * (source_tokens_.size() + target_tokens_.size());
  const uint64_t num_blocks = NumBlocks(body_bytes, kShardChecksumBlockBytes);
  std::string bytes;
  bytes.reserve(sizeof(header) + body_bytes + 4 * num_blocks);
  AppendRaw(&bytes, &header, 1);
  AppendRaw(&bytes, source_offsets_.data(), source_offsets_.size());
  AppendRaw(&bytes, target_offsets_.data(), target_offsets_.size());
  AppendRaw(&bytes, source_tokens_.data(), source_tokens_.size());
  AppendRaw(&bytes, target_tokens_.data(), target_tokens_.size());
  std::vector<uint32_t> block_crcs(num_blocks);
  for (uint64_t k = 0; k < num_blocks; ++k) {
    const uint64_t begin = k * kShardChecksumBlockBytes;
    const uint64_t size = std::min(kShardChecksumBlockBytes, body_bytes - begin);
    block_crcs[k] = Crc32(bytes.data() + sizeof(header) + begin, size);
  }
  AppendRaw(&bytes, block_crcs.data(), block_crcs.size());
  return WriteFileAtomically(path, bytes);
}

StatusOr<ShardReader> ShardReader::Open(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return NotFound(path + ": cannot open shard: " + std::strerror(errno));
  struct stat info;
  if (fstat(fd, &info) != 0) {
    close(fd);
    return Internal(path + ": fstat failed: " + std::strerror(errno));
  }
  const size_t file_size = static_cast<size_t>(info.st_size);
  if (file_size < sizeof(ShardHeader)) {
    close(fd);
    return DataLoss(path + ": truncated shard: " + std::to_string(file_size) +
                    " bytes, smaller than the " + std::to_string(sizeof(ShardHeader)) +
                    "-byte header");
  }
  void* map = mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (map == MAP_FAILED) return Internal(path + ": mmap failed: " + std::strerror(errno));

  ShardReader reader;
  reader.path_ = path;
  reader.map_ = map;
  reader.map_size_ = file_size;
  const Status status = reader.Validate(file_size);
  if (!status.ok()) return status.WithContext(path);
  return reader;
}

Status ShardReader::Validate(size_t file_size) {
  std::memcpy(&header_, map_, sizeof(header_));
  if (std::memcmp(header_.magic, kShardMagic, sizeof(kShardMagic)) != 0) {
    return DataLoss("bad magic: not a deepnet token shard (expected \"DNTK\")");
  }
  if (header_.version < kShardOldestVersion || header_.version > kShardVersion) {
    return DataLoss("unsupported shard version " + std::to_string(header_.version) +
                    " (this build reads versions " + std::to_string(kShardOldestVersion) + " to " +
                    std::to_string(kShardVersion) +
                    "; re-run `deepnet prepare` with this build to rewrite it)");
  }
  const bool checksummed = header_.version >= 2;
  if (checksummed) {
    const uint32_t computed = HeaderCrc(header_);
    if (computed != header_.header_crc32) {
      return DataLoss("header checksum mismatch (stored " + Crc32Hex(header_.header_crc32) +
                      ", computed " + Crc32Hex(computed) +
                      "): the 64-byte header is damaged; re-run `deepnet prepare`");
    }
    if (header_.checksum_block_bytes == 0 || header_.checksum_block_bytes > (uint64_t{1} << 30)) {
      return DataLoss("bad header: checksum block size " +
                      std::to_string(header_.checksum_block_bytes));
    }
  }
  const int64_t vocab = header_.vocab_size;
  for (const int32_t id : {header_.pad_id, header_.bos_id, header_.eos_id, header_.unk_id}) {
    if (vocab <= 0 || vocab > INT32_MAX || id < 0 || id >= vocab) {
      return DataLoss("bad header: vocab_size " + std::to_string(vocab) + " with special id " +
                      std::to_string(id));
    }
  }
  // Counts larger than the file cannot be right; bounding them first keeps the sums below exact.
  const uint64_t e = header_.num_examples, s = header_.num_source_tokens,
                 t = header_.num_target_tokens;
  const bool bounded = e < file_size && s < file_size && t < file_size;
  const uint64_t body_bytes = bounded ? 16 * (e + 1) + 4 * (s + t) : 0;
  const uint64_t table_bytes =
      checksummed ? 4 * NumBlocks(body_bytes, header_.checksum_block_bytes) : 0;
  const uint64_t expected = bounded ? sizeof(ShardHeader) + body_bytes + table_bytes : UINT64_MAX;
  if (expected != file_size) {
    return DataLoss((expected > file_size ? "truncated shard: " : "wrong shard size: ") +
                    std::to_string(file_size) + " bytes, header (" + std::to_string(e) +
                    " examples, " + std::to_string(s) + " + " + std::to_string(t) +
                    " tokens) needs " +
                    (expected == UINT64_MAX ? std::string("more") : std::to_string(expected)));
  }
  if (checksummed) {
    RETURN_IF_ERROR(VerifyBlocks(body_bytes));
  } else {
    WarnUncheckedOnce(path_);
  }
  const char* base = static_cast<const char*>(map_);
  source_offsets_ = reinterpret_cast<const uint64_t*>(base + sizeof(ShardHeader));
  target_offsets_ = source_offsets_ + (e + 1);
  source_tokens_ = reinterpret_cast<const int32_t*>(target_offsets_ + (e + 1));
  target_tokens_ = source_tokens_ + s;
  RETURN_IF_ERROR(ValidateOffsets(source_offsets_, e, s, "source"));
  RETURN_IF_ERROR(ValidateOffsets(target_offsets_, e, t, "target"));
  RETURN_IF_ERROR(ValidateTokens(source_tokens_, source_offsets_, e, header_, "source"));
  return ValidateTokens(target_tokens_, target_offsets_, e, header_, "target");
}

Status ShardReader::VerifyBlocks(uint64_t body_bytes) const {
  const char* body = static_cast<const char*>(map_) + sizeof(ShardHeader);
  const char* table = body + body_bytes;
  const uint64_t block_bytes = header_.checksum_block_bytes;
  const uint64_t num_blocks = NumBlocks(body_bytes, block_bytes);
  for (uint64_t k = 0; k < num_blocks; ++k) {
    const uint64_t begin = k * block_bytes;
    const uint64_t size = std::min(block_bytes, body_bytes - begin);
    const uint32_t computed = Crc32(body + begin, size);
    uint32_t stored = 0;
    std::memcpy(&stored, table + 4 * k, sizeof(stored));
    if (computed != stored) {
      const uint64_t first = sizeof(ShardHeader) + begin;
      return DataLoss("checksum mismatch in block " + std::to_string(k) + " of " +
                      std::to_string(num_blocks) + " (file bytes " + std::to_string(first) + ".." +
                      std::to_string(first + size) + ", holding " +
                      DescribeBytes(header_, first, first + size) + "): stored " +
                      Crc32Hex(stored) + ", computed " + Crc32Hex(computed) +
                      "; the shard is damaged: re-run `deepnet prepare`");
    }
  }
  return OkStatus();
}

ShardReader::ShardReader(ShardReader&& other) noexcept { *this = std::move(other); }

ShardReader& ShardReader::operator=(ShardReader&& other) noexcept {
  if (this == &other) return *this;
  Unmap();
  path_ = std::move(other.path_);
  map_ = std::exchange(other.map_, nullptr);
  map_size_ = std::exchange(other.map_size_, 0);
  header_ = other.header_;
  source_offsets_ = std::exchange(other.source_offsets_, nullptr);
  target_offsets_ = std::exchange(other.target_offsets_, nullptr);
  source_tokens_ = std::exchange(other.source_tokens_, nullptr);
  target_tokens_ = std::exchange(other.target_tokens_, nullptr);
  return *this;
}

ShardReader::~ShardReader() { Unmap(); }

void ShardReader::Unmap() {
  if (map_ != nullptr) munmap(map_, map_size_);
  map_ = nullptr;
  map_size_ = 0;
}

SpecialIds ShardReader::special_ids() const {
  return {
      .pad = header_.pad_id, .unk = header_.unk_id, .bos = header_.bos_id, .eos = header_.eos_id};
}

std::span<const int32_t> ShardReader::source(int64_t example) const {
  DCHECK(example >= 0 && example < num_examples());
  return {source_tokens_ + source_offsets_[example], static_cast<size_t>(source_length(example))};
}

std::span<const int32_t> ShardReader::target(int64_t example) const {
  DCHECK(example >= 0 && example < num_examples());
  return {target_tokens_ + target_offsets_[example], static_cast<size_t>(target_length(example))};
}

int32_t ShardReader::source_length(int64_t example) const {
  return static_cast<int32_t>(source_offsets_[example + 1] - source_offsets_[example]);
}

int32_t ShardReader::target_length(int64_t example) const {
  return static_cast<int32_t>(target_offsets_[example + 1] - target_offsets_[example]);
}

std::vector<int32_t> ShardReader::source_lengths() const {
  std::vector<int32_t> lengths(static_cast<size_t>(num_examples()));
  for (int64_t e = 0; e < num_examples(); ++e) lengths[e] = source_length(e);
  return lengths;
}

std::vector<int32_t> ShardReader::target_lengths() const {
  std::vector<int32_t> lengths(static_cast<size_t>(num_examples()));
  for (int64_t e = 0; e < num_examples(); ++e) lengths[e] = target_length(e);
  return lengths;
}

}  // namespace deepnet
