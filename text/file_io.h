// Whole-file I/O for the data pipeline: reading text (plain or xz-compressed) and writing
// outputs atomically, so an interrupted `prepare` never leaves a half-written file behind.
#pragma once

#include <string>
#include <string_view>

#include "runtime/status.h"

namespace deepnet {

// Reads a whole file. A name ending in ".xz" is decompressed (liblzma). When `path` does not exist
// but `path + ".xz"` does, that file is read instead, so "data/train.tsv" finds the shipped
// "data/train.tsv.xz".
StatusOr<std::string> ReadTextFile(const std::string& path);

// Writes `contents` to `path` atomically: a temporary file beside it, fsync, rename.
Status WriteFileAtomically(const std::string& path, std::string_view contents);

}  // namespace deepnet
