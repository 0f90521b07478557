// Helpers shared by the load generators (jobcast-bench-stream, jobcast-bench):
// clocks, an HdrHistogram-like latency histogram, child processes (spawn, stop,
// CPU seconds, RSS) and a one-shot HTTP client.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace jobcast::bench {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

[[noreturn]] inline void fail(const std::string& what) {
    throw std::runtime_error(what);
}

inline void sleep_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

inline std::int64_t unix_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

inline std::int64_t mono_ns() {
    timespec ts;
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

inline std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

// ---------------------------------------------------------------- histogram

// HdrHistogram-like: exact below 128 µs, then 64 sub-buckets per power of two
// (under 1.6 % relative error), up to 2^63 µs.
class Histogram {
  public:
    Histogram() : counts_(kBuckets, 0) {}

    void record(std::int64_t us) {
        if (us < 0) {
            ++negative_;
            us = 0;
        }
        const auto v = static_cast<std::uint64_t>(us);
        ++counts_[index(v)];
        ++count_;
        max_ = std::max(max_, v);
        sum_ += static_cast<double>(v);
    }
    void merge(const Histogram& o) {
        for (std::size_t i = 0; i < kBuckets; ++i)
            counts_[i] += o.counts_[i];
        count_ += o.count_;
        negative_ += o.negative_;
        max_ = std::max(max_, o.max_);
        sum_ += o.sum_;
    }
    std::uint64_t count() const { return count_; }
    std::uint64_t negative() const { return negative_; }
    // The value at quantile q (0..1) in ms: the upper bound of its bucket.
    double quantile_ms(double q) const {
        if (count_ == 0) return 0;
        const auto rank = std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count_))));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < kBuckets; ++i) {
            seen += counts_[i];
            if (seen >= rank) return static_cast<double>(std::min(upper(i), max_)) / 1000.0;
        }
        return static_cast<double>(max_) / 1000.0;
    }
    double max_ms() const { return static_cast<double>(max_) / 1000.0; }
    double mean_ms() const { return count_ ? sum_ / static_cast<double>(count_) / 1000.0 : 0; }

  private:
    static constexpr std::size_t kBuckets = 128 + 57 * 64;
    static std::size_t index(std::uint64_t v) {
        if (v < 128) return static_cast<std::size_t>(v);
        const int msb = 63 - __builtin_clzll(v);
        const int shift = msb - 6;  // the top 7 bits, in [64, 127]
        return 128 + static_cast<std::size_t>(shift - 1) * 64 + ((v >> shift) - 64);
    }
    static std::uint64_t upper(std::size_t i) {
        if (i < 128) return i;
        const std::size_t k = i - 128;
        const int shift = static_cast<int>(k / 64) + 1;
        const std::uint64_t top = 64 + k % 64;
        return ((top + 1) << shift) - 1;
    }
    std::vector<std::uint64_t> counts_;
    std::uint64_t count_ = 0, negative_ = 0, max_ = 0;
    double sum_ = 0;
};

// ---------------------------------------------------------------- processes

inline std::vector<pid_t> g_children;
inline std::mutex g_children_mutex;

inline pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path) {
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) fail("cannot open " + log_path + ": " + std::strerror(errno));
    std::vector<char*> args;
    for (const auto& a : argv)
        args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) fail(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // die with the load generator
        if (::getppid() != parent) ::_exit(127);
        const int null_fd = ::open("/dev/null", O_RDONLY);
        if (null_fd >= 0) ::dup2(null_fd, 0);
        ::dup2(log_fd, 1);
        ::dup2(log_fd, 2);
        ::execv(args[0], args.data());
        std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(log_fd);
    std::lock_guard lock(g_children_mutex);
    g_children.push_back(pid);
    return pid;
}

inline void stop_process(pid_t pid, int sig = SIGTERM,
                         std::chrono::milliseconds grace = std::chrono::milliseconds(5000)) {
    if (pid <= 0) return;
    ::kill(pid, sig);
    const auto deadline = Clock::now() + grace;
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid || r < 0) break;
        if (Clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            break;
        }
        sleep_ms(5);
    }
    std::lock_guard lock(g_children_mutex);
    std::erase(g_children, pid);
}

inline void kill_all_children() {
    std::lock_guard lock(g_children_mutex);
    for (pid_t pid : g_children) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
    g_children.clear();
}

inline bool alive(pid_t pid) {
    int status = 0;
    return ::waitpid(pid, &status, WNOHANG) == 0;
}

inline double cpu_seconds(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return 0;
    const auto close = line.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> f;
    for (std::string x; rest >> x;)
        f.push_back(x);
    if (f.size() < 13) return 0;
    static const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    return (std::stod(f[11]) + std::stod(f[12])) / tick;
}

inline double self_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return tv(u.ru_utime) + tv(u.ru_stime);
}

// VmRSS of a process in KiB.
inline long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    }
    return 0;
}

// ---------------------------------------------------------------- HTTP

struct HttpResult {
    int status = 0;
    std::string body;
};

inline HttpResult http_request(const tcp::endpoint& ep, http::verb method,
                               const std::string& target, const std::string& body = {}) {
    net::io_context ioc;
    tcp::socket socket(ioc);
    socket.connect(ep);
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, ep.address().to_string() + ":" + std::to_string(ep.port()));
    if (method == http::verb::post) {
        req.set(http::field::content_type, "application/json");
        req.body() = body;
        req.prepare_payload();
    }
    http::write(socket, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(socket, buffer, res);
    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    return {static_cast<int>(res.result_int()), std::move(res.body())};
}

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

// One io_context run by one thread, and the clients it connects: at most
// `parallel` connects in flight; each client calls connect_done() when its
// connect (and handshake) finished. Sub needs connect() and close().
// A derived class calls stop() in its own destructor, before its members go.
template <class Sub>
class ConnectLoop {
  public:
    explicit ConnectLoop(int parallel) : parallel_(parallel) {}
    ~ConnectLoop() { stop(); }
    ConnectLoop(const ConnectLoop&) = delete;
    ConnectLoop& operator=(const ConnectLoop&) = delete;

    void start() {
        thread_ = std::thread([this] {
            auto guard = net::make_work_guard(ioc);
            net::post(ioc, [this] { pump_connects(); });
            ioc.run();
        });
    }
    // Closes every socket and stops the thread.
    void stop() {
        if (!thread_.joinable()) return;
        net::post(ioc, [this] {
            for (auto& s : subs)
                s->close();
            ioc.stop();
        });
        thread_.join();
    }
    void connect_done() {
        --in_flight_;
        pump_connects();
    }

    net::io_context ioc{1};
    std::vector<std::unique_ptr<Sub>> subs;

  private:
    void pump_connects() {
        while (in_flight_ < parallel_ && next_ < subs.size()) {
            ++in_flight_;
            subs[next_++]->connect();
        }
    }
    int parallel_;
    int in_flight_ = 0;
    std::size_t next_ = 0;
    std::thread thread_;
};

// Scanners for frames whose field order is fixed (protocol/json.cpp).
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

inline bool starts_with(const char* p, const char* end, std::string_view lit) {
    return static_cast<std::size_t>(end - p) >= lit.size() &&
           std::memcmp(p, lit.data(), lit.size()) == 0;
}

}  // namespace jobcast::bench
