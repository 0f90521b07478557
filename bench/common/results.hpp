// The figures of a comparing bench: one table of metric rows x columns (the
// systems or set-ups compared), printed as each figure comes and at the end,
// and kept as numbers for the JSON report.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "bench/common/report.hpp"

namespace jobcast::bench {

struct Results {
    struct Cell {
        double value;
        std::string text;
    };
    std::vector<std::string> rows;
    std::map<std::string, std::map<std::string, Cell>> cells;
    std::vector<std::string> notes;

    void set(const std::string& row, const std::string& sys, double v, int digits = 0,
             const std::string& suffix = "") {
        if (std::find(rows.begin(), rows.end(), row) == rows.end()) rows.push_back(row);
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.*f", digits, v);
        std::string text = buf;
        if (digits == 0) {  // thousands separators
            const bool neg = !text.empty() && text[0] == '-';
            std::string d = text.substr(neg ? 1 : 0), out;
            for (std::size_t i = 0; i < d.size(); ++i) {
                if (i && (d.size() - i) % 3 == 0) out += ',';
                out += d[i];
            }
            text = (neg ? "-" : "") + out;
        }
        cells[row][sys] = {v, text + suffix};
        std::printf("  %-44s %-10s %s\n", row.c_str(), sys.c_str(), (text + suffix).c_str());
        std::fflush(stdout);
    }
    // Places a row that only some columns fill where the others would have it.
    void reserve(const std::string& row) {
        if (std::find(rows.begin(), rows.end(), row) == rows.end()) rows.push_back(row);
    }
    const Cell* get(const std::string& row, const std::string& sys) const {
        auto r = cells.find(row);
        if (r == cells.end()) return nullptr;
        auto c = r->second.find(sys);
        return c == r->second.end() ? nullptr : &c->second;
    }
    // A figure that could not be measured: "n/a" in the table, null in the
    // JSON, and a note that says why.
    void unmeasured(const std::string& row, const std::string& sys, const std::string& why) {
        reserve(row);
        cells[row][sys] = {std::numeric_limits<double>::quiet_NaN(), "n/a"};
        std::printf("  %-44s %-10s n/a\n", row.c_str(), sys.c_str());
        note(sys + " " + row + " not measured: " + why);
    }
    void note(const std::string& n) {
        notes.push_back(n);
        std::printf("  NOTE %s\n", n.c_str());
        std::fflush(stdout);
    }

    // The table with these columns, in this order, then the notes.
    void print_table(const std::vector<std::string>& cols) const {
        std::size_t w = 10;
        for (const auto& r : rows)
            w = std::max(w, r.size());
        std::printf("\n%-*s", static_cast<int>(w), "scenario");
        for (const auto& c : cols)
            std::printf(" | %16s", c.c_str());
        std::printf("\n%s\n", std::string(w + cols.size() * 19, '-').c_str());
        for (const auto& r : rows) {
            std::printf("%-*s", static_cast<int>(w), r.c_str());
            for (const auto& c : cols) {
                const auto* cell = get(r, c);
                std::printf(" | %16s", cell ? cell->text.c_str() : "");
            }
            std::printf("\n");
        }
        for (const auto& n : notes)
            std::printf("NOTE %s\n", n.c_str());
        std::fflush(stdout);
    }

    // `"results":[...],"notes":[...]`, members of the report's JSON object.
    void write_json(std::ostream& out) const {
        out << "\"results\":[";
        bool first = true;
        for (const auto& row : rows) {
            const auto r = cells.find(row);
            if (r == cells.end()) continue;
            for (const auto& [sys, cell] : r->second) {
                out << (first ? "" : ",") << "\n {\"scenario\":" << json_quote(row)
                    << ",\"system\":" << json_quote(sys) << ",\"value\":";
                if (std::isfinite(cell.value))
                    out << cell.value;
                else
                    out << "null";
                out << ",\"text\":" << json_quote(cell.text) << "}";
                first = false;
            }
        }
        out << "\n],\"notes\":[";
        first = true;
        for (const auto& n : notes) {
            out << (first ? "" : ",") << "\n " << json_quote(n);
            first = false;
        }
        out << "\n]";
    }
};

}  // namespace jobcast::bench
