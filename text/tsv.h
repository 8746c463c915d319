// Parsing the parallel corpus: tab-separated lines of aligned sentences.
//
// A corpus line is `ref<TAB>English<TAB>Spanish` (data/README.md); which columns are the source
// and the target is the caller's choice. Empty lines are skipped; a line with too few columns or
// an empty source/target is malformed: it is counted, the first few are named by file:line, and
// the caller decides how many it tolerates.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace deepnet {

struct SentencePair {
  std::string source;
  std::string target;
};

struct ParallelCorpus {
  std::vector<SentencePair> pairs;
  int64_t num_lines = 0;                        // lines read, empty ones included
  int64_t num_empty_lines = 0;                  // blank lines, skipped silently
  int64_t num_malformed_lines = 0;              // too few columns or an empty side, skipped
  std::vector<std::string> malformed_examples;  // "file:line: why", the first few
};

// Splits `contents` into lines (LF or CRLF) and keeps columns `source_column` and `target_column`
// (0-based) of each. `file_name` only labels messages.
StatusOr<ParallelCorpus> ParseParallelTsv(std::string_view contents, std::string_view file_name,
                                          int source_column, int target_column);

}  // namespace deepnet
