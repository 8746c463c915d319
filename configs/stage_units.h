// parallel.stage_units: the pipeline split given as text, "2,499,501" = units per model chunk in
// model order (embedding, layers, [final norms], output). The one reader and writer of that text:
// config validation and the trainer read it, `deepnet plan` writes it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "runtime/status.h"

namespace deepnet {

// Comma-separated positive integers (spaces allowed); InvalidArgument names the bad item.
StatusOr<std::vector<int>> ParseStageUnits(std::string_view text);
// "2,499,501".
std::string FormatStageUnits(const std::vector<int>& counts);

}  // namespace deepnet
