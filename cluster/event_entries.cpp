#include "cluster/event_entries.hpp"

#include <algorithm>
#include <charconv>
#include <string>
#include <string_view>

#include "persistence/store.hpp"

namespace jobcast::cluster {

namespace {

[[noreturn]] void corrupt(const redis::Reply& entry, const std::string& what) {
    const std::string id =
        entry.is_array() && !entry.elements.empty() ? entry.elements[0].str : std::string();
    throw store::StoreError("event log entry " + id + " is corrupt: " + what);
}

bool parse_u64(std::string_view text, std::uint64_t& value) {
    const char* end = text.data() + text.size();
    auto [ptr, ec] = std::from_chars(text.data(), end, value);
    return ec == std::errc() && ptr == end && !text.empty();
}

// "<a>-<b>" of a stream entry ID.
bool parse_id(std::string_view id, std::uint64_t& a, std::uint64_t& b) {
    const std::size_t dash = id.find('-');
    return dash != std::string_view::npos && parse_u64(id.substr(0, dash), a) &&
           parse_u64(id.substr(dash + 1), b);
}

}  // namespace

void append_entry(const redis::Reply& entry, const EntryCut& cut, store::ByteBudget& budget,
                  std::vector<EventView>& out) {
    if (out.size() >= cut.limit || (!out.empty() && budget.used >= budget.max)) return;
    if (!entry.is_array() || entry.elements.size() < 2 || !entry.elements[1].is_array())
        corrupt(entry, "not an entry");
    std::uint64_t a = 0;
    std::uint64_t b = 0;
    if (!parse_id(entry.elements[0].str, a, b)) corrupt(entry, "bad ID");
    const std::vector<redis::Reply>& fields = entry.elements[1].elements;
    if (fields.size() == 2 && fields[0].str == "b") {
        // Seqs [a, b]: those in (after, cap], at most as many as the limit leaves.
        if (a == 0 || b < a) corrupt(entry, "bad seq range");
        if (b <= cut.after || a > cut.cap) return;
        const std::uint64_t from = std::max(cut.after, a - 1);
        const std::uint64_t to = std::min(cut.cap, b);
        const std::size_t take =
            static_cast<std::size_t>(std::min<std::uint64_t>(cut.limit - out.size(), to - from));
        if (auto error = store::decode_block(fields[1].str, a, b, from, take, out, &budget))
            corrupt(entry, *error);
        return;
    }
    // One event: seq a.
    if (b != 0) corrupt(entry, "an event of its own with a bad ID");
    if (a <= cut.after || a > cut.cap) return;
    EventView event;
    event.seq = a;
    event.data = "{}";
    for (std::size_t i = 0; i + 1 < fields.size(); i += 2) {
        const std::string& name = fields[i].str;
        const std::string& value = fields[i + 1].str;
        if (name == "k") {
            event.kind = parse_event_kind(value).value_or(EventKind::log);
        } else if (name == "t") {
            std::int64_t ts = 0;
            std::from_chars(value.data(), value.data() + value.size(), ts);
            event.ts = ts;
        } else if (name == "d") {
            event.data = value;
        }
    }
    budget.used += event.data.size();
    out.push_back(event);
}

}  // namespace jobcast::cluster
