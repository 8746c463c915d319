// `deepnet score --checkpoint DIR [--device cpu|cuda|strict] --input pairs.tsv
// [--source_column N --target_column N]`:
// the teacher-forced cross-entropy of each (source, target) line, no label smoothing, no dropout,
// as JSON lines on stdout:
//   {"line": 3, "tokens": 12, "nll": 2.345678, "ppl": 10.439}   per pair (file line number)
//   {"mean_nll": 2.1, "tokens": 1234}                           token-weighted over the file
#include <gflags/gflags.h>
#include <glog/logging.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "infer/scoring.h"
#include "infer/translator.h"
#include "kernels/backends.h"
#include "launcher/command_line.h"
#include "runtime/json.h"
#include "text/file_io.h"

DECLARE_string(input);
DEFINE_int32(source_column, 0, kHelpInCommandTable);
DEFINE_int32(target_column, 0, kHelpInCommandTable);

namespace deepnet {
namespace {

struct ScoredLine {
  int64_t line = 0;  // 1-based line number in the file
  TokenizedPair pair;
};

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

// Every non-blank line of `path` as a tokenized pair; errors name file:line.
StatusOr<std::vector<ScoredLine>> ReadPairs(const InferenceModel& model, const std::string& path,
                                            int source_column, int target_column) {
  ASSIGN_OR_RETURN(const std::string contents, ReadTextFile(path));
  const int max_tokens =
      model.config.model().has_max_positions() ? model.config.model().max_positions() : 1024;
  std::vector<ScoredLine> lines;
  int64_t number = 0, truncated = 0;
  for (std::string_view line : Split(contents, '\n')) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    const std::vector<std::string_view> columns = Split(line, '\t');
    const std::string where = path + ":" + std::to_string(number);
    const int needed = std::max(source_column, target_column);
    if (static_cast<int>(columns.size()) < needed) {
      return InvalidArgument(where + ": " + std::to_string(columns.size()) +
                             " tab-separated columns, but column " + std::to_string(needed) +
                             " is needed (--source_column / --target_column)");
    }
    ScoredLine scored{number, {}};
    bool cut_source = false, cut_target = false;
    StatusOr<std::vector<int32_t>> source =
        EncodeSentence(model, columns[source_column - 1], max_tokens, &cut_source);
    if (!source.ok()) return source.status().WithContext(where);
    StatusOr<std::vector<int32_t>> target =
        EncodeSentence(model, columns[target_column - 1], max_tokens, &cut_target);
    if (!target.ok()) return target.status().WithContext(where);
    truncated += cut_source || cut_target ? 1 : 0;
    scored.pair = {std::move(source).value(), std::move(target).value()};
    lines.push_back(std::move(scored));
  }
  LOG_IF(WARNING, truncated > 0) << truncated << " pairs of " << path << " were cut to "
                                 << max_tokens << " tokens (model.max_positions): their scores "
                                 << "cover only the kept part";
  return lines;
}

}  // namespace

Status RunScoreCommand(const CommandLine&) {
  if (FLAGS_input.empty() || FLAGS_input == "-") {
    return InvalidArgument("score needs --input FILE (tab-separated source and target)");
  }
  if (FLAGS_source_column < 0 || FLAGS_target_column < 0) {
    return InvalidArgument("--source_column and --target_column count from 1");
  }
  ASSIGN_OR_RETURN(const Backend* device, DeviceFromFlag());
  ASSIGN_OR_RETURN(InferenceModel model,
                   LoadInferenceModel(FLAGS_checkpoint, FLAGS_data_dir, *device));
  const int source_column =
      FLAGS_source_column > 0 ? FLAGS_source_column : model.config.data().source_column();
  const int target_column =
      FLAGS_target_column > 0 ? FLAGS_target_column : model.config.data().target_column();
  if (source_column == target_column) {
    return InvalidArgument("--source_column and --target_column are both column " +
                           std::to_string(source_column) +
                           ": a sentence would be scored as its own translation");
  }
  ASSIGN_OR_RETURN(const std::vector<ScoredLine> lines,
                   ReadPairs(model, FLAGS_input, source_column, target_column));
  std::vector<TokenizedPair> pairs;
  for (const ScoredLine& line : lines) pairs.push_back(line.pair);
  ASSIGN_OR_RETURN(const std::vector<PairScore> scores,
                   ScorePairs(*model.model, pairs, model.special_ids,
                              model.config.data().max_tokens_per_batch()));
  // JSON lines (runtime/json is the one writer): a perplexity that overflows is null, not inf.
  for (size_t i = 0; i < lines.size(); ++i) {
    const double nll = scores[i].mean_nll();
    JsonValue json = JsonValue::Object();
    json.Set("line", JsonValue::Int(lines[i].line));
    json.Set("tokens", JsonValue::Int(scores[i].tokens));
    json.Set("nll", JsonValue::Fixed(nll, 6));
    json.Set("ppl", JsonValue::Double(std::exp(nll), 6));
    std::printf("%s\n", json.Serialize().c_str());
  }
  const PairScore total = SumScores(scores);
  JsonValue summary = JsonValue::Object();
  summary.Set("mean_nll", JsonValue::Fixed(total.mean_nll(), 6));
  summary.Set("tokens", JsonValue::Int(total.tokens));
  std::printf("%s\n", summary.Serialize().c_str());
  std::fflush(stdout);
  LOG(INFO) << "scored " << lines.size() << " pairs of " << FLAGS_input << " with "
            << model.checkpoint_dir << " on " << DescribeDevice(*device);
  return OkStatus();
}

}  // namespace deepnet
