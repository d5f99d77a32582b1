#pragma once

// UTF-8 checks for text that users hand the operator. nlohmann::json throws on
// dump() of a string that is not valid UTF-8, and the API server refuses such
// text: check at the edge, and cut text only at character boundaries.

#include <cstddef>
#include <string>
#include <string_view>

namespace patchgate {

// Length of the well-formed UTF-8 sequence at s[i] (1-4), or 0 when it is
// not one (overlong forms, surrogates and code points above U+10FFFF are not).
inline size_t utf8SequenceLength(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = at(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  return n;
}

// The offset of the first byte that does not start a well-formed UTF-8
// sequence, or npos when all of `s` is valid UTF-8.
inline size_t invalidUtf8At(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t n = utf8SequenceLength(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

inline bool isValidUtf8(std::string_view s) { return invalidUtf8At(s) == std::string_view::npos; }

// At most `max` bytes of `s`, cut before a character that would not fit
// (never inside a multi-byte sequence). `s` is assumed valid UTF-8; stray
// continuation bytes at the cut are dropped too.
inline std::string truncateUtf8(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return std::string(s.substr(0, end));
}

}  // namespace patchgate
