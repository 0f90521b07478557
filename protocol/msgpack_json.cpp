#include "protocol/msgpack_json.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <vector>

#include "protocol/json_document.hpp"
#include "protocol/json_writer.hpp"

namespace jobcast::proto::detail {

namespace {

using json::detail::JsonDocument;
using json::detail::Token;
using json::detail::TokenKind;

// Deep enough for anything a decoder with a sane max_depth accepted.
constexpr std::size_t kEncodeMaxDepth = 512;
// Up to this many keys, comparing every pair is cheaper than sorting a copy.
constexpr std::uint32_t kLinearDuplicateCheck = 16;
// A duplicate key named in an error detail: at most this many bytes of it.
constexpr std::size_t kEchoedKeyBytes = 64;

std::string_view key_view(const msgpack::object& key) {
    return std::string_view(key.via.str.ptr, key.via.str.size);
}

class JsonConverter {
  public:
    JsonConverter(std::string_view field, int max_depth, std::string& out, DecodeError& error)
        : field_(field), max_depth_(max_depth), out_(out), error_(error) {}

    bool value(const msgpack::object& o, int depth) {
        switch (o.type) {
            case msgpack::type::NIL:
                out_ += "null";
                return true;
            case msgpack::type::BOOLEAN:
                out_ += o.via.boolean ? "true" : "false";
                return true;
            case msgpack::type::POSITIVE_INTEGER:
                json::detail::append_uint(out_, o.via.u64);
                return true;
            case msgpack::type::NEGATIVE_INTEGER:
                json::detail::append_int(out_, o.via.i64);
                return true;
            case msgpack::type::FLOAT32:
                if (json::detail::append_float(out_, static_cast<float>(o.via.f64))) return true;
                return fail(DecodeErrorCode::wrong_type, "NaN and infinity have no JSON form");
            case msgpack::type::FLOAT64:
                if (json::detail::append_double(out_, o.via.f64)) return true;
                return fail(DecodeErrorCode::wrong_type, "NaN and infinity have no JSON form");
            case msgpack::type::STR:
                json::append_quoted(out_, std::string_view(o.via.str.ptr, o.via.str.size));
                return true;
            case msgpack::type::ARRAY:
                return array(o, depth + 1);
            case msgpack::type::MAP:
                return map(o, depth + 1);
            case msgpack::type::BIN:
                return fail(DecodeErrorCode::wrong_type, "bin has no JSON form");
            case msgpack::type::EXT:
                return fail(DecodeErrorCode::wrong_type, "ext has no JSON form");
        }
        return fail(DecodeErrorCode::wrong_type, "unknown msgpack type");
    }

    bool map(const msgpack::object& o, int depth) {
        if (depth > max_depth_) return fail(DecodeErrorCode::too_deep, "nesting too deep");
        const msgpack::object_kv* kv = o.via.map.ptr;
        const std::uint32_t size = o.via.map.size;
        for (std::uint32_t i = 0; i < size; ++i) {
            if (kv[i].key.type != msgpack::type::STR) {
                return fail(DecodeErrorCode::wrong_type, "map key is not a string");
            }
        }
        if (auto duplicate = duplicate_key(kv, size)) {
            // JSON readers disagree on duplicates (first wins, last wins, error);
            // refusing them keeps what clients see unambiguous.
            std::size_t end = std::min(duplicate->size(), kEchoedKeyBytes);
            while (end < duplicate->size() && end > 0 &&
                   (static_cast<unsigned char>((*duplicate)[end]) & 0xc0) == 0x80)
                --end;  // a whole character: keys are valid UTF-8
            std::string why = "duplicate map key ";
            json::append_quoted(why, duplicate->substr(0, end));
            if (end < duplicate->size()) why += "...";
            return fail(DecodeErrorCode::wrong_type, why);
        }
        out_.push_back('{');
        for (std::uint32_t i = 0; i < size; ++i) {
            if (i != 0) out_.push_back(',');
            json::append_quoted(out_, key_view(kv[i].key));
            out_.push_back(':');
            if (!value(kv[i].val, depth)) return false;
        }
        out_.push_back('}');
        return true;
    }

  private:
    bool array(const msgpack::object& o, int depth) {
        if (depth > max_depth_) return fail(DecodeErrorCode::too_deep, "nesting too deep");
        out_.push_back('[');
        for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
            if (i != 0) out_.push_back(',');
            if (!value(o.via.array.ptr[i], depth)) return false;
        }
        out_.push_back(']');
        return true;
    }

    // A key that appears twice, if any.
    static std::optional<std::string_view> duplicate_key(const msgpack::object_kv* kv,
                                                         std::uint32_t size) {
        if (size <= kLinearDuplicateCheck) {
            for (std::uint32_t i = 1; i < size; ++i) {
                for (std::uint32_t j = 0; j < i; ++j) {
                    if (key_view(kv[i].key) == key_view(kv[j].key)) return key_view(kv[i].key);
                }
            }
            return std::nullopt;
        }
        // Called before recursing into the values, so one buffer per thread is
        // never in use twice.
        thread_local std::vector<std::string_view> keys;
        keys.clear();
        for (std::uint32_t i = 0; i < size; ++i)
            keys.push_back(key_view(kv[i].key));
        std::sort(keys.begin(), keys.end());
        const auto found = std::adjacent_find(keys.begin(), keys.end());
        std::optional<std::string_view> duplicate;
        if (found != keys.end()) duplicate = *found;
        if (keys.capacity() > 4096) std::vector<std::string_view>().swap(keys);
        return duplicate;
    }

    bool fail(DecodeErrorCode code, std::string_view why) {
        error_.code = code;
        error_.detail.assign("field '").append(field_).append("': ").append(why);
        return false;
    }

    std::string_view field_;
    int max_depth_;
    std::string& out_;
    DecodeError& error_;
};

// msgpack-c's pack_double stores integral doubles as integers, which turns -0.0
// into 0 and converts 2^64 to uint64_t (undefined behaviour); write float64
// ourselves so a double stays a double.
void pack_float64(std::string& out, double value) {
    std::uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    char buffer[9];
    buffer[0] = static_cast<char>(0xcb);
    for (int i = 0; i < 8; ++i)
        buffer[1 + i] = static_cast<char>(bits >> (56 - 8 * i));
    out.append(buffer, sizeof buffer);
}

void pack_string(Packer& packer, std::string_view text) {
    packer.pack_str(static_cast<std::uint32_t>(text.size()));
    packer.pack_str_body(text.data(), static_cast<std::uint32_t>(text.size()));
}

// Packs the value at `index` and returns the index after its subtree.
std::size_t pack_token(const JsonDocument& doc, std::size_t index, Packer& packer,
                       std::string& out) {
    const Token& token = doc.tokens()[index];
    switch (token.kind) {
        case TokenKind::object: {
            packer.pack_map(token.count);
            std::size_t child = index + 1;
            for (std::uint32_t i = 0; i < token.count; ++i) {
                pack_string(packer, doc.string(doc.tokens()[child]));
                child = pack_token(doc, child + 1, packer, out);
            }
            return token.end;
        }
        case TokenKind::array: {
            packer.pack_array(token.count);
            std::size_t child = index + 1;
            for (std::uint32_t i = 0; i < token.count; ++i) {
                child = pack_token(doc, child, packer, out);
            }
            return token.end;
        }
        case TokenKind::key:
        case TokenKind::string:
            pack_string(packer, doc.string(token));
            break;
        case TokenKind::int64:
            packer.pack_int64(token.int64);
            break;
        case TokenKind::uint64:
            packer.pack_uint64(token.uint64);
            break;
        case TokenKind::number:
            pack_float64(out, token.number);
            break;
        case TokenKind::boolean:
            if (token.boolean) {
                packer.pack_true();
            } else {
                packer.pack_false();
            }
            break;
        case TokenKind::null:
            packer.pack_nil();
            break;
    }
    return index + 1;
}

}  // namespace

bool map_to_json(const msgpack::object& map, std::string_view field, int max_depth,
                 std::string& out, DecodeError& error) {
    out.clear();
    JsonConverter converter(field, max_depth, out, error);
    return converter.map(map, 1);
}

void pack_json_object(std::string& out, std::string_view json_text, std::string_view field) {
    // Encoding runs per chunk on the worker side: keep the token buffers.
    thread_local JsonDocument doc;
    std::string why;
    if (!doc.parse(json_text, kEncodeMaxDepth, &why)) {
        throw std::invalid_argument("field '" + std::string(field) + "' is not valid JSON: " + why);
    }
    if (doc.tokens()[0].kind != TokenKind::object) {
        throw std::invalid_argument("field '" + std::string(field) + "' is not a JSON object");
    }
    StringSink sink{&out};
    Packer packer(sink);
    pack_token(doc, 0, packer, out);
    doc.trim();
}

}  // namespace jobcast::proto::detail
