// Helpers shared by the config loader and validator (internal to configs/): field paths over the
// RunConfig descriptor, enum value lists, number formatting and name suggestions.
#pragma once

#include <google/protobuf/descriptor.h>

#include <string>
#include <string_view>
#include <vector>

namespace deepnet::config {

// The fields named by "model.heads", outermost first; empty when a name does not resolve.
std::vector<const google::protobuf::FieldDescriptor*> ResolveFieldPath(
    std::string_view dotted_path);

// "DEEPNORM, POSTLN, PRELN": the values of `type` without its *_UNSPECIFIED = 0.
std::string EnumChoices(const google::protobuf::EnumDescriptor* type);

// Shortest text that reads back as the same double ("0.1", "5e-4", "256", "inf").
std::string FormatNumber(double value);

// The name in `candidates` closest to `name` by edit distance, or "" when none is close enough to
// be a plausible typo.
std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates);

// The field names of `type`, in declaration order.
std::vector<std::string> FieldNames(const google::protobuf::Descriptor* type);

// "a, b, c".
std::string JoinNames(const std::vector<std::string>& names, std::string_view separator = ", ");

}  // namespace deepnet::config
