// The packed encoding of an events row: consecutive events of one job from one
// commit. Their seqs are implied (the row's first_seq + index), so a block is
//   u8 format (1)
//   per event: u8 kind, varint zigzag(ts - previous ts), varint data length, data bytes
// with the first event's "previous ts" being 0. Decoding trusts nothing: every
// length and value is bounds-checked, and a corrupt block is reported, never read
// past. Internal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/model.hpp"

namespace jobcast::store {

inline constexpr std::uint8_t kBlockFormat = 1;

// Replaces `body` with the encoding of `events` (their seqs are not stored).
void encode_block(std::span<const Event> events, std::string& body);

// Bytes of event data a read may gather: once `used` reaches `max`, no event
// is appended to a page that already holds one (so a page is never empty, and
// overshoots by at most its last event).
struct ByteBudget {
    std::size_t max;
    std::size_t used = 0;
};

// Decodes a block holding seqs [first_seq, last_seq] and appends to `out` its
// events with seq > `after` (views into `body`), at most `limit` of them and,
// with `budget`, no more once the budget is spent (see ByteBudget). Returns an error message
// (and leaves `out` as it was) when the block is corrupt or does not hold
// exactly last_seq - first_seq + 1 events.
std::optional<std::string> decode_block(std::string_view body, std::uint64_t first_seq,
                                        std::uint64_t last_seq, std::uint64_t after,
                                        std::size_t limit, std::vector<EventView>& out,
                                        ByteBudget* budget = nullptr);

}  // namespace jobcast::store
