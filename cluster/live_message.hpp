// The payload of a job's live channel (Partitions::live_channel): the events
// one commit round made durable and visible for that job, published by the
// broker that committed them after WAIT and jc_confirm (CLUSTER.md §5.3-5.5).
// msgpack: [job, owner, [[seq, kind, ts_us, data], ...]], kind as its name.
// Readers trust nothing in it: a payload that does not decode is dropped and
// the reader's seq gap fill reads what it missed from the store.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "persistence/store.hpp"

namespace jobcast::cluster {

std::string encode_live_message(const store::JobEvents& events);
std::optional<store::JobEvents> decode_live_message(std::string_view payload);

}  // namespace jobcast::cluster
