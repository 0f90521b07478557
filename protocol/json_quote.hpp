// Quoting text as a JSON string while checking that it is UTF-8, in one pass:
// the chunk decoder's (chunk_decode.cpp), which takes text straight from a
// worker's frame. Internal to protocol/; defined with json::append_quoted.
#pragma once

#include <string>
#include <string_view>

namespace jobcast::json::detail {

// append_quoted for text that must be valid UTF-8: returns false at the first
// byte that is not (`out` then holds part of it), instead of writing U+FFFD.
bool append_quoted_utf8(std::string& out, std::string_view text);

}  // namespace jobcast::json::detail
