// The standard Prometheus process metrics (process_resident_memory_bytes,
// process_open_fds, process_cpu_seconds_total, ...) read from /proc/self at
// scrape time, for the broker's /metrics and the worker's --metrics-port.
#pragma once

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "common/metric_family.hpp"

namespace jobcast {

namespace detail {

inline double open_fds() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return 0;
    double n = 0;
    while (const dirent* entry = ::readdir(dir)) {
        if (entry->d_name[0] != '.') ++n;
    }
    ::closedir(dir);
    return n - 1;  // the descriptor of the directory being read
}

}  // namespace detail

inline std::vector<prometheus::MetricFamily> process_metric_families() {
    using prometheus::MetricType;
    std::vector<prometheus::MetricFamily> out;
    // /proc/self/stat: fields after the ")" that ends the command name.
    std::ifstream stat_file("/proc/self/stat");
    std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return out;
    std::istringstream fields(stat.substr(close + 2));
    std::vector<std::string> f{std::istream_iterator<std::string>(fields),
                               std::istream_iterator<std::string>()};
    // f[0] is field 3 (state): utime=14, stime=15, threads=20, starttime=22,
    // vsize=23, rss=24 (pages), all 1-based in proc(5).
    if (f.size() < 22) return out;
    auto field = [&](int number) { return std::stod(f[static_cast<std::size_t>(number - 3)]); };
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    double boot_time = 0;
    std::ifstream proc_stat("/proc/stat");
    for (std::string key; proc_stat >> key;) {
        if (key == "btime") {
            proc_stat >> boot_time;
            break;
        }
        proc_stat.ignore(1 << 20, '\n');
    }
    rlimit limit{};
    ::getrlimit(RLIMIT_NOFILE, &limit);

    out.push_back(metrics::single("process_cpu_seconds_total",
                                  "User and system CPU time spent, in seconds", MetricType::Counter,
                                  (field(14) + field(15)) / ticks));
    out.push_back(metrics::single("process_resident_memory_bytes", "Resident memory size in bytes",
                                  MetricType::Gauge, field(24) * page));
    out.push_back(metrics::single("process_virtual_memory_bytes", "Virtual memory size in bytes",
                                  MetricType::Gauge, field(23)));
    out.push_back(metrics::single("process_open_fds", "Open file descriptors", MetricType::Gauge,
                                  detail::open_fds()));
    out.push_back(metrics::single("process_max_fds", "Limit on open file descriptors",
                                  MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
    out.push_back(metrics::single("process_threads", "OS threads", MetricType::Gauge, field(20)));
    out.push_back(metrics::single("process_start_time_seconds",
                                  "Start time of the process since the Unix epoch",
                                  MetricType::Gauge, boot_time + field(22) / ticks));
    return out;
}

}  // namespace jobcast
