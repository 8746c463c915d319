#include "text/tsv.h"

#include <algorithm>

namespace deepnet {
namespace {

constexpr int kMaxMalformedExamples = 5;

// Splits a line on tabs, dropping a trailing CR.
std::vector<std::string_view> SplitColumns(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::vector<std::string_view> columns;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    columns.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  return columns;
}

bool IsBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

}  // namespace

StatusOr<ParallelCorpus> ParseParallelTsv(std::string_view contents, std::string_view file_name,
                                          int source_column, int target_column) {
  if (source_column < 0 || target_column < 0 || source_column == target_column) {
    return InvalidArgument("source and target columns must be distinct and >= 0");
  }
  const size_t needed = static_cast<size_t>(std::max(source_column, target_column)) + 1;
  ParallelCorpus corpus;
  size_t start = 0;
  while (start < contents.size()) {
    size_t end = contents.find('\n', start);
    if (end == std::string_view::npos) end = contents.size();
    const std::string_view line = contents.substr(start, end - start);
    start = end + 1;
    ++corpus.num_lines;
    if (IsBlank(line)) {
      ++corpus.num_empty_lines;
      continue;
    }
    const std::vector<std::string_view> columns = SplitColumns(line);
    std::string why;
    if (columns.size() < needed) {
      why = "expected at least " + std::to_string(needed) + " tab-separated columns, found " +
            std::to_string(columns.size());
    } else if (columns[source_column].empty() || columns[target_column].empty()) {
      why = "empty source or target column";
    }
    if (!why.empty()) {
      ++corpus.num_malformed_lines;
      if (corpus.malformed_examples.size() < kMaxMalformedExamples) {
        corpus.malformed_examples.push_back(std::string(file_name) + ":" +
                                            std::to_string(corpus.num_lines) + ": " + why);
      }
      continue;
    }
    corpus.pairs.push_back(
        {std::string(columns[source_column]), std::string(columns[target_column])});
  }
  return corpus;
}

}  // namespace deepnet
