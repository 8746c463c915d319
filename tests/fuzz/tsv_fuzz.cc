// Fuzzes the parallel-corpus reader of `prepare` and `eval`: ParseParallelTsv, and ReadTextFile's
// xz path (the shipped corpora are .tsv.xz).
//
// Input: one byte choosing the columns (low nibble: source column, high nibble: target column,
// each 0..15), then the file. A file that starts with the xz magic (FD 37 7A 58 5A 00) is written
// to a scratch ".xz" file and read back through ReadTextFile, as `prepare` reads one.
//
// Properties: no crash or sanitizer report; with distinct columns the parse succeeds and its
// counts add up (every line is a pair, blank or malformed; no more than 5 examples); every pair
// has a non-empty source and target free of tabs and newlines.
#include "tests/fuzz/fuzz_util.h"
#include "text/file_io.h"
#include "text/tsv.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FLAGS_minloglevel = 2;
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace deepnet;
  if (size < 1) return 0;
  const int source_column = data[0] & 0x0F;
  const int target_column = data[0] >> 4;
  std::string_view file = fuzz::AsText(data + 1, size - 1);

  std::string decompressed;
  constexpr std::string_view kXzMagic("\xFD\x37\x7A\x58\x5A\x00", 6);
  if (file.starts_with(kXzMagic)) {
    const std::string path = fuzz::ScratchPath(".xz");
    StatusOr<std::string> text = ReadTextFile(fuzz::WriteScratch(path, file));
    if (!text.ok()) {
      FUZZ_CHECK(text.status().code() == StatusCode::kDataLoss, text.status().ToString());
      return 0;
    }
    decompressed = std::move(text).value();
    file = decompressed;
  }

  StatusOr<ParallelCorpus> corpus =
      ParseParallelTsv(file, "fuzz.tsv", source_column, target_column);
  if (source_column == target_column) {
    FUZZ_CHECK(!corpus.ok(), "equal columns accepted");
    return 0;
  }
  FUZZ_CHECK(corpus.ok(), corpus.status().ToString());
  FUZZ_CHECK(static_cast<int64_t>(corpus->pairs.size()) + corpus->num_empty_lines +
                     corpus->num_malformed_lines ==
                 corpus->num_lines,
             "line counts do not add up");
  FUZZ_CHECK(corpus->malformed_examples.size() <= 5, "more than 5 malformed examples kept");
  FUZZ_CHECK(corpus->malformed_examples.size() ==
                 static_cast<size_t>(std::min<int64_t>(corpus->num_malformed_lines, 5)),
             "malformed examples and count disagree");
  for (const SentencePair& pair : corpus->pairs) {
    for (const std::string* side : {&pair.source, &pair.target}) {
      FUZZ_CHECK(!side->empty(), "an empty side kept");
      FUZZ_CHECK(side->find_first_of("\t\n") == std::string::npos, "a tab or newline kept");
    }
  }
  return 0;
}
