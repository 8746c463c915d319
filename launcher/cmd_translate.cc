// `deepnet translate --checkpoint DIR [--device cpu|cuda|strict] [--input FILE|-] [--beam 4]
// [--max_len_a 1.2] [--max_len_b 10] [--no_repeat_ngram N] [--batch 32]`: one source sentence per
// input line, one translation per output line, in order. Lines are read in chunks, so a pipe gets
// its translations as it goes.
#include <gflags/gflags.h>
#include <glog/logging.h>

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "infer/translator.h"
#include "kernels/backends.h"
#include "launcher/command_line.h"

DEFINE_string(input, "-", kHelpInCommandTable);
DEFINE_int32(beam, 4, kHelpInCommandTable);
DEFINE_double(max_len_a, 1.2, kHelpInCommandTable);
DEFINE_int32(max_len_b, 10, kHelpInCommandTable);
DEFINE_double(lenpen, 1.0, kHelpInCommandTable);
DEFINE_int32(no_repeat_ngram, 0, kHelpInCommandTable);
DECLARE_int32(batch);  // defined in cmd_profile.cc; here 0 means 32

namespace deepnet {

namespace {

constexpr int kDefaultBatch = 32;
int BatchSize() { return FLAGS_batch > 0 ? FLAGS_batch : kDefaultBatch; }

}  // namespace

// The decoding flags (shared with `eval`).
TranslateOptions TranslateOptionsFromFlags() {
  TranslateOptions options;
  options.decode.beam = FLAGS_beam;
  options.decode.max_len_a = FLAGS_max_len_a;
  options.decode.max_len_b = FLAGS_max_len_b;
  options.decode.len_penalty = FLAGS_lenpen;
  options.decode.no_repeat_ngram = FLAGS_no_repeat_ngram;
  options.batch_size = BatchSize();
  return options;
}

Status CheckTranslateFlags() {
  if (FLAGS_beam < 1) return InvalidArgument("--beam must be >= 1");
  if (FLAGS_batch < 0) return InvalidArgument("--batch must be >= 1");
  if (FLAGS_no_repeat_ngram < 0) {
    return InvalidArgument("--no_repeat_ngram must be >= 0 (0 = off), got " +
                           std::to_string(FLAGS_no_repeat_ngram));
  }
  if (FLAGS_max_len_a < 0 || FLAGS_max_len_b < 1) {
    return InvalidArgument("--max_len_a must be >= 0 and --max_len_b >= 1");
  }
  return OkStatus();
}

namespace {

// Up to `count` lines (without the line end, a trailing CR dropped); false at the end of input.
bool ReadLines(std::istream& in, size_t count, std::vector<std::string>* lines) {
  lines->clear();
  std::string line;
  while (lines->size() < count && std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines->push_back(std::move(line));
  }
  return !lines->empty();
}

}  // namespace

Status RunTranslateCommand(const CommandLine&) {
  RETURN_IF_ERROR(CheckTranslateFlags());
  std::ifstream file;
  if (FLAGS_input != "-" && !FLAGS_input.empty()) {
    file.open(FLAGS_input);
    if (!file) return NotFound("cannot open --input " + FLAGS_input);
  }
  std::istream& in = file.is_open() ? static_cast<std::istream&>(file) : std::cin;
  ASSIGN_OR_RETURN(const Backend* device, DeviceFromFlag());
  ASSIGN_OR_RETURN(InferenceModel model,
                   LoadInferenceModel(FLAGS_checkpoint, FLAGS_data_dir, *device));
  LOG(INFO) << "translating with " << model.checkpoint_dir << " (step " << model.step << ", "
            << model.model->num_parameters() << " parameters) on " << DescribeDevice(*device)
            << ", beam " << FLAGS_beam;
  const TranslateOptions options = TranslateOptionsFromFlags();
  // Enough lines per chunk to sort them into well-filled batches.
  const size_t chunk = static_cast<size_t>(BatchSize()) * 16;
  TranslateStats stats;
  std::vector<std::string> lines;
  while (ReadLines(in, chunk, &lines)) {
    ASSIGN_OR_RETURN(const std::vector<std::string> translations,
                     Translate(model, lines, options, &stats, stats.sentences));
    for (const std::string& translation : translations) std::cout << translation << '\n';
    std::cout.flush();
  }
  if (in.bad()) return DataLoss("reading the input failed");
  LOG_IF(WARNING, stats.truncated > 0)
      << stats.truncated << " source sentences were cut to " << model.max_source_tokens
      << " tokens (data.max_source_length of the run)";
  LOG(INFO) << "translated " << stats.sentences << " sentences in " << stats.seconds << " s ("
            << (stats.seconds > 0 ? stats.sentences / stats.seconds : 0.0) << " sentences/s)";
  return OkStatus();
}

}  // namespace deepnet
