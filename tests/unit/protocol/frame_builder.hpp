// Hand-built msgpack frames for codec tests: a message is a list of (key, value
// writer) pairs, so a test can drop, replace or corrupt exactly one field.
#pragma once

#include <cstring>
#include <functional>
#include <msgpack.hpp>
#include <string>
#include <utility>
#include <vector>

namespace jobcast::test {

using Packer = msgpack::packer<msgpack::sbuffer>;
// Writes one msgpack value. Gets the buffer too, for raw (invalid) bytes.
using Value = std::function<void(Packer&, msgpack::sbuffer&)>;
using Fields = std::vector<std::pair<std::string, Value>>;

inline Value str(std::string text) {
    return [text](Packer& p, msgpack::sbuffer&) {
        p.pack_str(static_cast<uint32_t>(text.size()));
        p.pack_str_body(text.data(), static_cast<uint32_t>(text.size()));
    };
}
inline Value bin(std::string bytes) {
    return [bytes](Packer& p, msgpack::sbuffer&) {
        p.pack_bin(static_cast<uint32_t>(bytes.size()));
        p.pack_bin_body(bytes.data(), static_cast<uint32_t>(bytes.size()));
    };
}
inline Value uint64(uint64_t v) {
    return [v](Packer& p, msgpack::sbuffer&) { p.pack_uint64(v); };
}
inline Value int64(int64_t v) {
    return [v](Packer& p, msgpack::sbuffer&) { p.pack_int64(v); };
}
inline Value boolean(bool v) {
    return [v](Packer& p, msgpack::sbuffer&) {
        if (v) {
            p.pack_true();
        } else {
            p.pack_false();
        }
    };
}
inline Value nil() {
    return [](Packer& p, msgpack::sbuffer&) { p.pack_nil(); };
}
// Raw bytes, spliced in as they are (for values msgpack-c would not write).
inline Value raw(std::string bytes) {
    return [bytes](Packer&, msgpack::sbuffer& b) { b.write(bytes.data(), bytes.size()); };
}
inline Value float64(double v) {
    // Bypass pack_double, which turns integral doubles into integers.
    return [v](Packer&, msgpack::sbuffer& b) {
        uint64_t bits;
        std::memcpy(&bits, &v, 8);
        char out[9] = {static_cast<char>(0xcb)};
        for (int i = 0; i < 8; ++i)
            out[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
        b.write(out, 9);
    };
}
inline Value float32(float v) {
    return [v](Packer&, msgpack::sbuffer& b) {
        uint32_t bits;
        std::memcpy(&bits, &v, 4);
        char out[5] = {static_cast<char>(0xca)};
        for (int i = 0; i < 4; ++i)
            out[1 + i] = static_cast<char>(bits >> (24 - 8 * i));
        b.write(out, 5);
    };
}
inline Value map(Fields fields) {
    return [fields](Packer& p, msgpack::sbuffer& b) {
        p.pack_map(static_cast<uint32_t>(fields.size()));
        for (const auto& [key, value] : fields) {
            str(key)(p, b);
            value(p, b);
        }
    };
}
inline Value array(std::vector<Value> items) {
    return [items](Packer& p, msgpack::sbuffer& b) {
        p.pack_array(static_cast<uint32_t>(items.size()));
        for (const auto& item : items)
            item(p, b);
    };
}

inline std::string pack(const Value& value) {
    msgpack::sbuffer buffer;
    Packer packer(buffer);
    value(packer, buffer);
    return std::string(buffer.data(), buffer.size());
}
inline std::string frame(const Fields& fields) {
    return pack(map(fields));
}

inline Fields without(Fields fields, const std::string& key) {
    std::erase_if(fields, [&](const auto& f) { return f.first == key; });
    return fields;
}
inline Fields with(Fields fields, const std::string& key, Value value) {
    for (auto& f : fields) {
        if (f.first == key) {
            f.second = std::move(value);
            return fields;
        }
    }
    fields.emplace_back(key, std::move(value));
    return fields;
}

// A valid chunk: {"v":1,"t":"chunk","job":..,"attempt":1,"wseq":7,"kind":"token",
// "data":{"text":"hi"},"ts":1700000000000000}.
inline Fields chunk_fields() {
    return {
        {"v", uint64(1)},
        {"t", str("chunk")},
        {"job", str("01HZY3J5KX8Q2V7R4M6N0P1S9T")},
        {"attempt", uint64(1)},
        {"wseq", uint64(7)},
        {"kind", str("token")},
        {"data", map({{"text", str("hi")}})},
        {"ts", uint64(1700000000000000)},
    };
}

}  // namespace jobcast::test
