// The broker's /metrics text (Prometheus exposition) as a map.
#pragma once

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>

namespace jobcast::bench {

using Metrics = std::map<std::string, double>;  // series (name{labels}) -> value

inline Metrics parse_metrics(const std::string& text) {
    Metrics m;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty() || line[0] == '#') continue;
        const auto space = line.rfind(' ');
        if (space == std::string::npos) continue;
        m[line.substr(0, space)] = std::strtod(line.c_str() + space + 1, nullptr);
    }
    return m;
}

inline double metric(const Metrics& m, const std::string& series) {
    auto it = m.find(series);
    return it == m.end() ? 0.0 : it->second;
}

}  // namespace jobcast::bench
