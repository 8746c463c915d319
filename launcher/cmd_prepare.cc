// `deepnet prepare --config X`: tokenizer and token shards from the TSV corpus, into data.data_dir.
#include "configs/config.h"
#include "launcher/command_line.h"
#include "text/prepare.h"

namespace deepnet {
namespace {

// The config's data section as text's options (the config counts columns from 1).
StatusOr<PrepareOptions> PrepareOptionsFrom(const config::RunConfig& config) {
  const config::DataConfig& data = config.data();
  if (data.spm_vocab_size() == 0) {
    return FailedPrecondition("prepare trains a tokenizer, but data.spm_vocab_size is 0");
  }
  if (data.valid_tsv().empty()) {
    return FailedPrecondition("prepare needs data.valid_tsv (the validation corpus)");
  }
  PrepareOptions options;
  options.train_path = data.train_tsv();
  options.valid_path = data.valid_tsv();
  options.data_dir = data.data_dir();
  options.source_column = data.source_column() - 1;
  options.target_column = data.target_column() - 1;
  options.max_source_tokens = data.max_source_length();
  options.max_target_tokens = data.max_target_length();
  options.tokenizer.vocab_size = data.spm_vocab_size();
  options.tokenizer.seed = config.train().seed();
  return options;
}

}  // namespace

Status RunPrepareCommand(const CommandLine& command_line) {
  ASSIGN_OR_RETURN(const config::RunConfig config,
                   LoadRunConfig(command_line, /*require_file=*/true));
  ASSIGN_OR_RETURN(const PrepareOptions options, PrepareOptionsFrom(config));
  return PrepareData(options);
}

}  // namespace deepnet
