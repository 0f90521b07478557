// UTF-8 validation shared by the msgpack decoder and the JSON writer. Internal to
// protocol/: other modules see only validated text.
#pragma once

#include <cstddef>
#include <string_view>

namespace jobcast::proto::detail {

// Length (1-4) of the well-formed UTF-8 sequence starting at text[pos], or 0 when
// the bytes there are not one (overlong forms, surrogates, > U+10FFFF, truncated
// sequences and stray continuation bytes are all rejected, as RFC 3629 says).
std::size_t utf8_sequence_length(std::string_view text, std::size_t pos);

bool is_valid_utf8(std::string_view text);

}  // namespace jobcast::proto::detail
