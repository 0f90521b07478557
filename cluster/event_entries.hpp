// A job's log as its stream holds it (cluster/jobcast_v1.lua, "ev:<id>"): each
// entry the events of one Function call, packed as the SQLite store packs a
// row (ID <first seq>-<last seq>, field b: persistence/event_block.hpp), or
// one event of its own (ID <seq>-0, fields k, t, d: an event whose ts the
// Function cannot pack, and every entry of library version 4). Internal to
// cluster/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "persistence/event_block.hpp"
#include "protocol/model.hpp"
#include "redis/reply.hpp"

namespace jobcast::cluster {

// Which of an entry's events a read takes: seq in (after, cap], while `out`
// holds fewer than `limit` and the budget allows (store::ByteBudget: an event
// is added to a page that holds one only while less than max was used).
struct EntryCut {
    std::uint64_t after = 0;
    std::uint64_t cap = 0;  // the confirmed watermark: nothing past it is shown
    std::size_t limit = 0;
};

// Appends to `out` the events of one XRANGE entry that `cut` and `budget`
// take, as views into `entry` (valid while it is). Throws store::StoreError
// for an entry that is neither form (the log is corrupt), leaving `out` as it
// was.
void append_entry(const redis::Reply& entry, const EntryCut& cut, store::ByteBudget& budget,
                  std::vector<EventView>& out);

}  // namespace jobcast::cluster
