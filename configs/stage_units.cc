// parallel.stage_units text (see the header).
#include "configs/stage_units.h"

#include <charconv>

namespace deepnet {
namespace {

std::string_view Trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

}  // namespace

StatusOr<std::vector<int>> ParseStageUnits(std::string_view text) {
  std::vector<int> counts;
  size_t start = 0;
  for (int item = 1;; ++item) {
    const size_t comma = text.find(',', start);
    const std::string_view part = Trim(text.substr(start, comma - start));
    int count = 0;
    const auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), count);
    if (part.empty() || error != std::errc() || end != part.data() + part.size() || count < 1) {
      return InvalidArgument("item " + std::to_string(item) + " \"" + std::string(part) +
                             "\" is not a positive unit count; write units per pipeline chunk "
                             "in model order, e.g. \"2,499,501\"");
    }
    counts.push_back(count);
    if (comma == std::string_view::npos) return counts;
    start = comma + 1;
  }
}

std::string FormatStageUnits(const std::vector<int>& counts) {
  std::string text;
  for (size_t i = 0; i < counts.size(); ++i) {
    text += (i > 0 ? "," : "") + std::to_string(counts[i]);
  }
  return text;
}

}  // namespace deepnet
