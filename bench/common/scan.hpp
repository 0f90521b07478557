// Scanners for the broker's JSON: a field of a response body, and frames whose
// field order is fixed (protocol/json.cpp).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace jobcast::bench {

inline std::string json_string(const std::string& body, const std::string& key) {
    const std::string pattern = "\"" + key + "\":\"";
    const auto at = body.find(pattern);
    if (at == std::string::npos) return {};
    const auto from = at + pattern.size();
    const auto to = body.find('"', from);
    return to == std::string::npos ? std::string() : body.substr(from, to - from);
}

inline double json_number(const std::string& body, const std::string& key) {
    const std::string pattern = "\"" + key + "\":";
    const auto at = body.find(pattern);
    if (at == std::string::npos) return 0;
    return std::strtod(body.c_str() + at + pattern.size(), nullptr);
}

inline bool eat(const char*& p, const char* end, std::string_view lit) {
    if (static_cast<std::size_t>(end - p) < lit.size() || std::memcmp(p, lit.data(), lit.size()))
        return false;
    p += lit.size();
    return true;
}

inline std::int64_t parse_int(const char*& p, const char* end) {
    bool neg = p < end && *p == '-';
    if (neg) ++p;
    std::int64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (*p++ - '0');
    return neg ? -v : v;
}

// The first `lit` in [p, end), or nullptr.
inline const char* find(const char* p, const char* end, std::string_view lit) {
    return static_cast<const char*>(
        ::memmem(p, static_cast<std::size_t>(end - p), lit.data(), lit.size()));
}

inline bool starts_with(const char* p, const char* end, std::string_view lit) {
    return static_cast<std::size_t>(end - p) >= lit.size() &&
           std::memcmp(p, lit.data(), lit.size()) == 0;
}

}  // namespace jobcast::bench
