// Helpers shared by the libFuzzer targets of tests/fuzz (README.md there).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

// A property every input must keep. A violation aborts, which libFuzzer reports as a crash (and
// saves the input), like an ASan or UBSan report would.
#define FUZZ_CHECK(condition, what)                                                              \
  do {                                                                                           \
    if (!(condition)) {                                                                          \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s: %s\n", __FILE__, __LINE__, #condition, \
                   std::string(what).c_str());                                                   \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

namespace deepnet::fuzz {

inline std::string_view AsText(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Splits `input` at every `separator` (kept out of the parts); always at least one part.
inline std::vector<std::string> Split(std::string_view input, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    const size_t end = input.find(separator, start);
    parts.emplace_back(input.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// A file of this process that each input overwrites, for the readers that only take a path
// (ShardReader::Open, SafetensorsReader::Open, ReadTextFile). In $DEEPNET_FUZZ_SCRATCH_DIR
// (run_fuzz.sh makes one and removes it, with what crashed runs left there), else in /dev/shm
// when there is one, so an execution costs no disk I/O; `suffix` picks the reader's path.
inline std::string ScratchPath(const char* suffix = "") {
  static const std::string* base = [] {
    const char* dir = std::getenv("DEEPNET_FUZZ_SCRATCH_DIR");
    if (dir == nullptr || *dir == '\0') {
      dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : std::getenv("TMPDIR");
    }
    if (dir == nullptr || *dir == '\0') dir = "/tmp";
    return new std::string(std::string(dir) + "/deepnet-fuzz-" + std::to_string(getpid()));
  }();
  return *base + suffix;
}

// Removes the scratch files at exit.
inline void RemoveScratchAtExit() {
  static bool registered = false;
  if (registered) return;
  registered = true;
  std::atexit([] {
    unlink(ScratchPath("").c_str());
    unlink(ScratchPath(".xz").c_str());
  });
}

// Writes `bytes` to `path` (truncating it) and returns the path. Aborts when it cannot: a
// harness fault, not a finding.
inline const std::string& WriteScratch(const std::string& path, std::string_view bytes) {
  RemoveScratchAtExit();
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  FUZZ_CHECK(fd >= 0, "cannot create " + path);
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = write(fd, bytes.data() + written, bytes.size() - written);
    FUZZ_CHECK(n > 0, "cannot write " + path);
    written += static_cast<size_t>(n);
  }
  close(fd);
  return path;
}

}  // namespace deepnet::fuzz
