// `deepnet eval --checkpoint DIR [--device cpu|cuda|strict] [--valid FILE] [--beam 4]
// [--no_repeat_ngram N] [--limit N] [--samples K]`: the validation loss (token-weighted
// cross-entropy, no label smoothing, no dropout) and the corpus BLEU (sacreBLEU defaults) of
// translations of the validation set. Prints a summary line and sacreBLEU's line, then K sample
// translations spread over the set.
#include <gflags/gflags.h>
#include <glog/logging.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "infer/scoring.h"
#include "infer/translator.h"
#include "kernels/backends.h"
#include "launcher/command_line.h"
#include "text/bleu.h"
#include "text/file_io.h"
#include "text/tsv.h"

DECLARE_int32(source_column);
DECLARE_int32(target_column);
DECLARE_int32(beam);
DECLARE_int32(no_repeat_ngram);
DEFINE_string(valid, "", kHelpInCommandTable);
DEFINE_int32(limit, 0, kHelpInCommandTable);
DEFINE_int32(samples, 0, kHelpInCommandTable);

namespace deepnet {

// Defined in cmd_translate.cc: the decoding flags, and their checks.
TranslateOptions TranslateOptionsFromFlags();
Status CheckTranslateFlags();

namespace {

StatusOr<std::vector<SentencePair>> ReadValidPairs(const InferenceModel& model) {
  const std::string path = FLAGS_valid.empty() ? model.config.data().valid_tsv() : FLAGS_valid;
  if (path.empty()) return InvalidArgument("the run has no data.valid_tsv; pass --valid FILE");
  const int source_column =
      FLAGS_source_column > 0 ? FLAGS_source_column : model.config.data().source_column();
  const int target_column =
      FLAGS_target_column > 0 ? FLAGS_target_column : model.config.data().target_column();
  ASSIGN_OR_RETURN(const std::string contents, ReadTextFile(path));
  ASSIGN_OR_RETURN(ParallelCorpus corpus,
                   ParseParallelTsv(contents, path, source_column - 1, target_column - 1));
  LOG_IF(WARNING, corpus.num_malformed_lines > 0)
      << path << ": skipped " << corpus.num_malformed_lines << " malformed lines";
  if (FLAGS_limit > 0 && corpus.pairs.size() > static_cast<size_t>(FLAGS_limit)) {
    corpus.pairs.resize(FLAGS_limit);
  }
  if (corpus.pairs.empty()) return InvalidArgument(path + " holds no sentence pairs");
  return corpus.pairs;
}

// Mean NLL per target token; validation targets are cut to the run's limits as `prepare` does.
StatusOr<PairScore> ValidationLoss(InferenceModel& model, const std::vector<SentencePair>& pairs) {
  std::vector<TokenizedPair> tokenized;
  for (size_t i = 0; i < pairs.size(); ++i) {
    TokenizedPair pair;
    StatusOr<std::vector<int32_t>> source =
        EncodeSentence(model, pairs[i].source, model.max_source_tokens);
    StatusOr<std::vector<int32_t>> target =
        EncodeSentence(model, pairs[i].target, model.max_target_tokens);
    if (!source.ok()) return source.status().WithContext("pair " + std::to_string(i + 1));
    if (!target.ok()) return target.status().WithContext("pair " + std::to_string(i + 1));
    tokenized.push_back({std::move(source).value(), std::move(target).value()});
  }
  ASSIGN_OR_RETURN(const std::vector<PairScore> scores,
                   ScorePairs(*model.model, tokenized, model.special_ids,
                              model.config.data().max_tokens_per_batch()));
  return SumScores(scores);
}

void PrintSamples(const std::vector<SentencePair>& pairs,
                  const std::vector<std::string>& translations, int count) {
  const size_t n = pairs.size();
  const size_t shown = std::min<size_t>(count, n);
  for (size_t k = 0; k < shown; ++k) {
    const size_t i = k * n / shown;  // spread over the set
    std::printf("\n[%zu] source:     %s\n    reference:  %s\n    hypothesis: %s\n", i + 1,
                pairs[i].source.c_str(), pairs[i].target.c_str(), translations[i].c_str());
  }
}

}  // namespace

Status RunEvalCommand(const CommandLine&) {
  RETURN_IF_ERROR(CheckTranslateFlags());
  if (FLAGS_limit < 0 || FLAGS_samples < 0) {
    return InvalidArgument("--limit and --samples must be >= 0");
  }
  ASSIGN_OR_RETURN(const Backend* device, DeviceFromFlag());
  ASSIGN_OR_RETURN(InferenceModel model,
                   LoadInferenceModel(FLAGS_checkpoint, FLAGS_data_dir, *device));
  ASSIGN_OR_RETURN(const std::vector<SentencePair> pairs, ReadValidPairs(model));
  LOG(INFO) << "evaluating " << model.checkpoint_dir << " (step " << model.step << ") on "
            << pairs.size() << " pairs, device " << DescribeDevice(*device);
  LOG_IF(INFO, FLAGS_no_repeat_ngram > 0)
      << "translations repeat no " << FLAGS_no_repeat_ngram << "-gram (--no_repeat_ngram)";

  const auto loss_start = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(const PairScore loss, ValidationLoss(model, pairs));
  const double loss_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - loss_start).count();

  std::vector<std::string> sources, references;
  for (const SentencePair& pair : pairs) {
    sources.push_back(pair.source);
    references.push_back(pair.target);
  }
  TranslateStats stats;
  ASSIGN_OR_RETURN(const std::vector<std::string> translations,
                   Translate(model, sources, TranslateOptionsFromFlags(), &stats));
  ASSIGN_OR_RETURN(const BleuScore bleu, CorpusBleu(translations, references));

  std::printf(
      "eval step %lld | %zu sentences | valid loss %.4f (ppl %.2f, %lld tokens, %.1f s) | "
      "BLEU %.2f (beam %d, %.2f sentences/s)\n",
      static_cast<long long>(model.step), pairs.size(), loss.mean_nll(), std::exp(loss.mean_nll()),
      static_cast<long long>(loss.tokens), loss_seconds, bleu.score, FLAGS_beam,
      stats.seconds > 0 ? static_cast<double>(stats.sentences) / stats.seconds : 0.0);
  std::printf("%s\n", bleu.ToString().c_str());
  PrintSamples(pairs, translations, FLAGS_samples);
  std::fflush(stdout);
  return OkStatus();
}

}  // namespace deepnet
