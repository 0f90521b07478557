#include "protocol/frame_scan.hpp"

#include <cstdint>
#include <vector>

#include "protocol/utf8.hpp"

namespace jobcast::proto::detail {

namespace {

std::uint64_t read_be(const unsigned char* p, std::size_t bytes) {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < bytes; ++i)
        value = (value << 8) | p[i];
    return value;
}

}  // namespace

ScanResult scan_frame(std::string_view frame, std::size_t max_depth) {
    const auto* p = reinterpret_cast<const unsigned char*>(frame.data());
    const std::size_t n = frame.size();
    std::size_t pos = 0;

    // Items still to read in each open container; the bottom entry stands for the
    // single top-level object. Reused per thread: decode runs per message.
    thread_local std::vector<std::uint64_t> remaining;
    remaining.clear();
    remaining.push_back(1);
    // Sum of `remaining`: each item takes at least one byte, so more pending
    // items than bytes left means the frame is truncated (or lies).
    std::uint64_t pending = 1;

    auto malformed = [](std::string_view why) { return ScanResult{ScanError::malformed, why}; };

    while (!remaining.empty()) {
        if (remaining.back() == 0) {
            remaining.pop_back();
            continue;
        }
        --remaining.back();
        --pending;
        if (pos >= n) return malformed("truncated frame");
        const unsigned char b = p[pos++];
        const std::size_t left = n - pos;

        std::uint64_t payload = 0;   // bytes to skip after the header
        std::uint64_t children = 0;  // items inside, for arrays and maps
        bool container = false;
        bool is_str = false;
        auto length_field = [&](std::size_t bytes) -> bool {
            if (left < bytes) return false;
            payload = read_be(p + pos, bytes);
            pos += bytes;
            return true;
        };

        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            // fixint, nil, bool: the header is the whole item
        } else if (b <= 0x8f) {
            container = true;
            children = 2 * std::uint64_t(b & 0x0f);
        } else if (b <= 0x9f) {
            container = true;
            children = b & 0x0f;
        } else if (b <= 0xbf) {
            is_str = true;
            payload = b & 0x1f;
        } else {
            switch (b) {
                case 0xc4:
                    if (!length_field(1)) return malformed("truncated bin");
                    break;
                case 0xc5:
                    if (!length_field(2)) return malformed("truncated bin");
                    break;
                case 0xc6:
                    if (!length_field(4)) return malformed("truncated bin");
                    break;
                case 0xc7:
                case 0xc8:
                case 0xc9:
                    if (!length_field(b == 0xc7 ? 1 : b == 0xc8 ? 2 : 4)) {
                        return malformed("truncated ext");
                    }
                    payload += 1;  // the ext type byte
                    break;
                case 0xca:
                    payload = 4;
                    break;
                case 0xcb:
                    payload = 8;
                    break;
                case 0xcc:
                    payload = 1;
                    break;
                case 0xcd:
                    payload = 2;
                    break;
                case 0xce:
                    payload = 4;
                    break;
                case 0xcf:
                    payload = 8;
                    break;
                case 0xd0:
                    payload = 1;
                    break;
                case 0xd1:
                    payload = 2;
                    break;
                case 0xd2:
                    payload = 4;
                    break;
                case 0xd3:
                    payload = 8;
                    break;
                case 0xd4:
                    payload = 2;
                    break;
                case 0xd5:
                    payload = 3;
                    break;
                case 0xd6:
                    payload = 5;
                    break;
                case 0xd7:
                    payload = 9;
                    break;
                case 0xd8:
                    payload = 17;
                    break;
                case 0xd9:
                case 0xda:
                case 0xdb:
                    is_str = true;
                    if (!length_field(b == 0xd9 ? 1 : b == 0xda ? 2 : 4)) {
                        return malformed("truncated str");
                    }
                    break;
                case 0xdc:
                case 0xdd:
                    container = true;
                    if (!length_field(b == 0xdc ? 2 : 4)) return malformed("truncated array");
                    children = payload;
                    payload = 0;
                    break;
                case 0xde:
                case 0xdf:
                    container = true;
                    if (!length_field(b == 0xde ? 2 : 4)) return malformed("truncated map");
                    children = 2 * payload;
                    payload = 0;
                    break;
                default:
                    return malformed("invalid msgpack byte 0xc1");
            }
        }

        if (payload > n - pos) return malformed("truncated frame");
        if (is_str) {
            std::string_view text(frame.data() + pos, payload);
            if (!is_valid_utf8(text)) return {ScanError::invalid_utf8, "string is not valid UTF-8"};
        }
        pos += payload;

        if (container) {
            // remaining.size() is this container's depth (the top level is 1).
            if (remaining.size() > max_depth) return {ScanError::too_deep, "nesting too deep"};
            pending += children;
            if (pending > n - pos) return malformed("truncated frame");
            remaining.push_back(children);
        }
    }
    if (pos != n) return malformed("trailing bytes after the message");
    return {};
}

}  // namespace jobcast::proto::detail
