// Command-line flags of the bench drivers: a walk over argv that prints the
// driver's usage and exits 2 on a missing value, a bad number or an unknown
// flag, the flags shared by the drivers that run their own broker, and comma
// lists.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "bench/common/process.hpp"

namespace jobcast::bench {

class Args {
  public:
    // `usage` is the text after "PROGRAM: WHY\n", from "usage: " on.
    Args(int argc, char** argv, const char* program, const char* usage)
        : argc_(argc), argv_(argv), program_(program), usage_(usage) {}

    // Moves to the next flag; false after the last.
    bool next() {
        if (++i_ >= argc_) return false;
        flag_ = argv_[i_];
        return true;
    }
    const std::string& flag() const { return flag_; }
    // The flag's value: the next argument.
    std::string value() {
        if (i_ + 1 >= argc_) usage("missing value for " + flag_);
        return argv_[++i_];
    }
    long integer() {
        const std::string v = value();
        char* end = nullptr;
        const long n = std::strtol(v.c_str(), &end, 10);
        if (end == v.c_str() || *end != '\0') usage("not a number for " + flag_ + ": " + v);
        return n;
    }
    double number() {
        const std::string v = value();
        char* end = nullptr;
        const double n = std::strtod(v.c_str(), &end);
        if (end == v.c_str() || *end != '\0') usage("not a number for " + flag_ + ": " + v);
        return n;
    }
    // For a flag no branch took: --help / -h, or an unknown argument.
    [[noreturn]] void unknown() const {
        usage(flag_ == "--help" || flag_ == "-h" ? "help" : "unknown argument " + flag_);
    }
    [[noreturn]] void usage(const std::string& why) const {
        std::fprintf(stderr, "%s: %s\n%s", program_, why.c_str(), usage_);
        std::exit(2);
    }

  private:
    int argc_;
    char** argv_;
    const char* program_;
    const char* usage_;
    int i_ = 0;
    std::string flag_;
};

// The flags of a driver that runs its own broker: where the binaries are, where
// a run's files go and whether they stay, the JSON report, extra broker
// arguments, and perf's output file and arguments.
struct BrokerRunFlags {
    explicit BrokerRunFlags(std::string default_perf_args)
        : perf_args(std::move(default_perf_args)) {}

    // Takes the flag `args` is at when it is one of these; false otherwise.
    bool take(Args& args) {
        const std::string& flag = args.flag();
        if (flag == "--bin-dir") {
            bin_dir = args.value();
        } else if (flag == "--dir") {
            dir = args.value();
        } else if (flag == "--keep") {
            keep = true;
        } else if (flag == "--json") {
            json_path = args.value();
        } else if (flag == "--broker-arg") {
            broker_args.push_back(args.value());
        } else if (flag == "--perf-out") {
            perf_out = args.value();
        } else if (flag == "--perf-args") {
            perf_args = args.value();
        } else {
            return false;
        }
        return true;
    }

    std::string bin_dir = self_dir();
    std::string dir = "/tmp";
    bool keep = false;
    std::string json_path;
    std::vector<std::string> broker_args;
    std::string perf_out;
    std::string perf_args;
};

// The non-empty items of a `sep`-separated list.
inline std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string item; std::getline(in, item, sep);)
        if (!item.empty()) out.push_back(item);
    return out;
}

}  // namespace jobcast::bench
