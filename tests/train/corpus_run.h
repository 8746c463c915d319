// A tiny run over the bundled corpus for command-line tests: the first lines of data/*.tsv, a
// 1+1-layer d 16 model with a 200-piece tokenizer, checkpoints in <dir>/ck.
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "text/file_io.h"

namespace deepnet {

// The first `count` lines of the shipped corpus file data/`name` under `source_dir`.
inline std::string CorpusHead(const std::string& source_dir, const std::string& name, int count) {
  const StatusOr<std::string> text = ReadTextFile(source_dir + "/data/" + name);
  EXPECT_TRUE(text.ok()) << text.status();
  std::string head;
  std::istringstream in(text.ok() ? *text : "");
  std::string line;
  for (int i = 0; i < count && std::getline(in, line); ++i) head += line + "\n";
  return head;
}

// The run's config: corpus <dir>/{train,valid}.tsv, shards in <dir>/data, checkpoints in <dir>/ck
// at the end of `max_steps`.
inline std::string CorpusRunConfigText(const std::string& dir, int max_steps) {
  return R"(
model { encoder_layers: 1 decoder_layers: 1 d_model: 16 heads: 2 ffn_dim: 32 vocab_size: 0
        dropout: 0 max_positions: 256 }
data { train_tsv: ")" +
         dir + R"(/train.tsv" valid_tsv: ")" + dir + R"(/valid.tsv" data_dir: ")" + dir +
         R"(/data" spm_vocab_size: 200 max_tokens_per_batch: 1024 max_source_length: 128
       max_target_length: 128 }
train { max_steps: )" +
         std::to_string(max_steps) + R"( valid_every: 0 }
optimizer { lr: 1e-3 }
lr_schedule { warmup_steps: 2 }
checkpoint { dir: ")" +
         dir + R"(/ck" every_steps: 0 }
logging { log_every: 1 }
)";
}

}  // namespace deepnet
