// UTF-8 validation for text from outside: corpora (prepare) and sentences (translate, score).
#pragma once

#include <cstddef>
#include <string_view>

namespace deepnet {

// The byte offset of the first byte of `text` that does not start a well-formed UTF-8 sequence
// (overlong forms, surrogates, values past U+10FFFF and cut sequences are ill-formed), or npos.
size_t FirstInvalidUtf8(std::string_view text);

inline bool IsValidUtf8(std::string_view text) {
  return FirstInvalidUtf8(text) == std::string_view::npos;
}

}  // namespace deepnet
