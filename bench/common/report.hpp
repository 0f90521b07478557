// Writing the bench reports.
#pragma once

#include <string>

namespace jobcast::bench {

// `s` as a JSON string, quotes included; control characters are left out.
inline std::string json_quote(const std::string& s) {
    std::string out = "\"";
    for (char c : s) {
        if (static_cast<unsigned char>(c) < 0x20) continue;
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

}  // namespace jobcast::bench
