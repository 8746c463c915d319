#include "configs/config_util.h"

#include <algorithm>
#include <charconv>

#include "configs/deepnet.pb.h"

namespace deepnet::config {
namespace {

namespace pb = google::protobuf;

// Levenshtein distance; names are short, so the quadratic table is fine.
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      const size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

std::vector<const pb::FieldDescriptor*> ResolveFieldPath(std::string_view dotted_path) {
  std::vector<const pb::FieldDescriptor*> path;
  const pb::Descriptor* type = RunConfig::descriptor();
  while (!dotted_path.empty()) {
    const size_t dot = dotted_path.find('.');
    const std::string_view name = dotted_path.substr(0, dot);
    const pb::FieldDescriptor* field = type ? type->FindFieldByName(std::string(name)) : nullptr;
    if (field == nullptr) return {};
    path.push_back(field);
    type = field->message_type();
    dotted_path = dot == std::string_view::npos ? "" : dotted_path.substr(dot + 1);
  }
  return path;
}

std::string EnumChoices(const pb::EnumDescriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->value_count(); ++i) {
    if (type->value(i)->number() != 0) names.push_back(type->value(i)->name());
  }
  return JoinNames(names);
}

std::string FormatNumber(double value) {
  char buffer[64];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string text(buffer, result.ptr);
  // to_chars writes "5e-04"; drop the exponent's leading zeros as config files would ("5e-4").
  const size_t exponent = text.find('e');
  if (exponent != std::string::npos) {
    size_t digits = exponent + 1;
    if (digits < text.size() && (text[digits] == '-' || text[digits] == '+')) ++digits;
    while (digits + 1 < text.size() && text[digits] == '0') text.erase(digits, 1);
  }
  return text;
}

std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, name.size() / 3) + 1;
  for (const std::string& candidate : candidates) {
    // The distance is at least the difference in length: skip the quadratic table when that
    // already rules the candidate out (a long mistyped name would cost seconds).
    const size_t length_difference = name.size() > candidate.size()
                                         ? name.size() - candidate.size()
                                         : candidate.size() - name.size();
    if (length_difference >= best_distance) continue;
    const size_t distance = EditDistance(name, candidate);
    if (distance < best_distance) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::vector<std::string> FieldNames(const pb::Descriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->field_count(); ++i) names.push_back(type->field(i)->name());
  return names;
}

std::string JoinNames(const std::vector<std::string>& names, std::string_view separator) {
  std::string joined;
  for (const std::string& name : names) {
    if (!joined.empty()) joined += separator;
    joined += name;
  }
  return joined;
}

}  // namespace deepnet::config
