#include "cluster/live_message.hpp"

#include <msgpack.hpp>

#include "cluster/msgpack_fields.hpp"

namespace jobcast::cluster {

std::string encode_live_message(const store::JobEvents& events) {
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pack(buffer);
    pack.pack_array(3);
    pack.pack(events.job);
    pack.pack(events.owner);
    pack.pack_array(static_cast<std::uint32_t>(events.events.size()));
    for (const auto& event : events.events) {
        pack.pack_array(4);
        pack.pack(event.seq);
        pack.pack(to_string(event.kind));
        pack.pack(event.ts);
        pack.pack(event.data);
    }
    return {buffer.data(), buffer.size()};
}

std::optional<store::JobEvents> decode_live_message(std::string_view payload) {
    const auto handle = unpack_array(payload, 3);
    if (!handle) return std::nullopt;
    store::JobEvents out;
    const msgpack::object* fields = handle->get().via.array.ptr;
    if (!read_string(fields[0], out.job) || !read_string(fields[1], out.owner) ||
        fields[2].type != msgpack::type::ARRAY)
        return std::nullopt;
    const msgpack::object_array& list = fields[2].via.array;
    out.events.reserve(list.size);
    for (std::uint32_t i = 0; i < list.size; ++i) {
        const msgpack::object& item = list.ptr[i];
        if (item.type != msgpack::type::ARRAY || item.via.array.size != 4) return std::nullopt;
        const msgpack::object* f = item.via.array.ptr;
        Event event;
        std::string kind;
        if (f[0].type != msgpack::type::POSITIVE_INTEGER || !read_string(f[1], kind) ||
            f[2].type != msgpack::type::POSITIVE_INTEGER || !read_string(f[3], event.data))
            return std::nullopt;
        const auto parsed = parse_event_kind(kind);
        if (!parsed) return std::nullopt;
        event.seq = f[0].via.u64;
        event.kind = *parsed;
        event.ts = static_cast<UnixUs>(f[2].via.u64);
        if (event.seq == 0 || (!out.events.empty() && event.seq <= out.events.back().seq))
            return std::nullopt;
        out.events.push_back(std::move(event));
    }
    return out;
}

}  // namespace jobcast::cluster
