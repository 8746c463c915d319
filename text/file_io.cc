#include "text/file_io.h"

#include <fcntl.h>
#include <lzma.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace deepnet {
namespace {

bool FileExists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0;
}

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

StatusOr<std::string> ReadRawFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return DataLoss(path + ": read failed");
  return contents.str();
}

StatusOr<std::string> DecompressXz(const std::string& compressed, const std::string& path) {
  lzma_stream stream = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&stream, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
    return Internal(path + ": cannot start the xz decoder");
  }
  std::string out;
  std::string chunk(1 << 20, '\0');
  stream.next_in = reinterpret_cast<const uint8_t*>(compressed.data());
  stream.avail_in = compressed.size();
  lzma_ret ret = LZMA_OK;
  while (ret == LZMA_OK) {
    stream.next_out = reinterpret_cast<uint8_t*>(chunk.data());
    stream.avail_out = chunk.size();
    ret = lzma_code(&stream, LZMA_FINISH);
    out.append(chunk.data(), chunk.size() - stream.avail_out);
  }
  lzma_end(&stream);
  if (ret != LZMA_STREAM_END) {
    return DataLoss(path + ": corrupt or truncated xz data (liblzma error " +
                    std::to_string(static_cast<int>(ret)) + ")");
  }
  return out;
}

}  // namespace

StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::string actual = path;
  if (!FileExists(actual) && FileExists(path + ".xz")) actual = path + ".xz";
  if (!FileExists(actual)) return NotFound(path + ": no such file (nor " + path + ".xz)");
  ASSIGN_OR_RETURN(std::string raw, ReadRawFile(actual));
  if (!EndsWith(actual, ".xz")) return raw;
  return DecompressXz(raw, actual);
}

Status WriteFileAtomically(const std::string& path, std::string_view contents) {
  const std::string temp = path + ".tmp." + std::to_string(getpid());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return NotFound(temp + ": cannot create: " + std::strerror(errno));
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = write(fd, contents.data() + written, contents.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      close(fd);
      unlink(temp.c_str());
      return ResourceExhausted(temp + ": write failed: " + why);
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    unlink(temp.c_str());
    return Internal(temp + ": fsync/close failed: " + std::strerror(errno));
  }
  if (rename(temp.c_str(), path.c_str()) != 0) {
    unlink(temp.c_str());
    return Internal(path + ": rename failed: " + std::strerror(errno));
  }
  return OkStatus();
}

}  // namespace deepnet
