#pragma once
// Reading what another broker published on a channel: a msgpack array of a
// fixed size, and its fields. Anything else is refused (nullopt / false),
// never trusted.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <msgpack.hpp>

namespace jobcast::cluster {

// The payload unpacked, when it is one array of exactly `size` elements.
inline std::optional<msgpack::object_handle> unpack_array(std::string_view payload,
                                                          std::uint32_t size) {
    msgpack::object_handle handle;
    try {
        handle = msgpack::unpack(payload.data(), payload.size());
    } catch (const std::exception&) {
        return std::nullopt;
    }
    const msgpack::object& root = handle.get();
    if (root.type != msgpack::type::ARRAY || root.via.array.size != size) return std::nullopt;
    return handle;
}

inline bool read_string(const msgpack::object& o, std::string& out) {
    if (o.type != msgpack::type::STR) return false;
    out.assign(o.via.str.ptr, o.via.str.size);
    return true;
}

}  // namespace jobcast::cluster
