// Text helpers for building event payloads. The broker rejects strings that are
// not valid UTF-8, and a handler's text often comes from places that do not
// promise it (process output, remote APIs), so everything a JobContext puts
// into JSON goes through these.
#pragma once

#include <string>
#include <string_view>

namespace jobcast::worker {

// `text` with every invalid UTF-8 sequence (bad lead byte, truncated or
// overlong sequence, surrogate, code point above U+10FFFF) replaced by U+FFFD.
std::string sanitize_utf8(std::string_view text);

// True when `text` is valid UTF-8 (the same rules as sanitize_utf8).
bool is_valid_utf8(std::string_view text);

// Appends `text` to `out` as a JSON string literal, quotes included; control
// characters are escaped and invalid UTF-8 becomes U+FFFD.
void append_json_string(std::string& out, std::string_view text);

}  // namespace jobcast::worker
