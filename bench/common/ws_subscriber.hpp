// The WebSocket subscribers of the load generators: a jobcast job (/v1/ws), an
// nchan channel or a NATS subject each, all of a Loop in one io_context thread.
// Each checks its channel's numbering (gaps, duplicates) and records latency
// from the event's intended send time. A jobcast subscriber given other brokers
// (fail_over_to) subscribes again on the next one, after the last seq it has,
// when its connection drops.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bench/common/clock.hpp"
#include "bench/common/errors.hpp"
#include "bench/common/histogram.hpp"
#include "bench/common/process.hpp"
#include "bench/common/scan.hpp"
#include "bench/common/ws_client.hpp"

namespace jobcast::bench {

// Parses NATS server->client protocol from `buf`; returns the bytes consumed.
// on_msg(subject, reply, payload, has_headers); on_ctl(line) for PING, PONG,
// -ERR, +OK and INFO.
template <class OnMsg, class OnCtl>
std::size_t nats_parse(std::string_view buf, OnMsg&& on_msg, OnCtl&& on_ctl) {
    std::size_t pos = 0;
    for (;;) {
        const auto eol = buf.find("\r\n", pos);
        if (eol == std::string_view::npos) return pos;
        const std::string_view line = buf.substr(pos, eol - pos);
        const bool hmsg = line.starts_with("HMSG ");
        if (!hmsg && !line.starts_with("MSG ")) {
            on_ctl(line);
            pos = eol + 2;
            continue;
        }
        std::string_view tok[6];
        int n = 0;
        for (std::size_t at = hmsg ? 5 : 4; at < line.size() && n < 6;) {
            const auto sp = line.find(' ', at);
            const auto end = sp == std::string_view::npos ? line.size() : sp;
            if (end > at) tok[n++] = line.substr(at, end - at);
            at = end + 1;
        }
        const int need = hmsg ? 4 : 3;  // subject sid [reply] [hdr] total
        if (n < need) fail("bad NATS line: " + std::string(line));
        const std::string_view reply = n > need ? tok[2] : std::string_view();
        const std::size_t total = std::strtoul(std::string(tok[n - 1]).c_str(), nullptr, 10);
        const std::size_t hdr =
            hmsg ? std::strtoul(std::string(tok[n - 2]).c_str(), nullptr, 10) : 0;
        if (eol + 2 + total + 2 > buf.size()) return pos;
        on_msg(tok[0], reply, buf.substr(eol + 2 + hdr, total - hdr), hmsg);
        pos = eol + 2 + total + 2;
    }
}

inline const std::string kNatsConnect =
    R"(CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true,"lang":"c++","version":"bench"})"
    "\r\n";

// {"t":T,"n":N...: false if not one of ours.
inline bool parse_payload(std::string_view p, std::int64_t& t, std::int64_t& n) {
    const char* c = p.data();
    const char* end = c + p.size();
    if (!eat(c, end, R"({"t":)")) return false;
    t = parse_int(c, end);
    if (!eat(c, end, R"(,"n":)")) return false;
    n = parse_int(c, end);
    return true;
}

struct Shared : Errors {
    std::atomic<int> ready{0}, failed{0}, done{0};
    std::atomic<std::uint64_t> delivered{0};
    std::atomic<std::int64_t> first_ns{0}, last_ns{0};
    std::int64_t latency_from_us = 0;  // events intended before it are warm-up
    // A moment (unix µs, e.g. a kill): each subscriber notes when the first
    // event intended at or after it arrives.
    std::atomic<std::int64_t> mark_us{std::numeric_limits<std::int64_t>::max()};
};

class Loop;

// One WebSocket subscriber of one channel (jobcast job, nchan channel, NATS subject).
class Subscriber {
  public:
    Subscriber(Loop& loop, std::string sys, std::string target, std::string hello,
               std::int64_t expect)
        : loop_(loop),
          sys_(std::move(sys)),
          target_(std::move(target)),
          hello_(std::move(hello)),
          expect_(expect) {}

    // jobcast only: when the connection drops (its broker died), connect to
    // `brokers` in turn (the next when one refuses) and subscribe to `job`
    // again after the last seq received.
    void fail_over_to(std::vector<tcp::endpoint> brokers, std::string job) {
        failover_ = std::move(brokers);
        job_ = std::move(job);
    }
    void connect();
    void close() {
        closed_ = true;
        beast::error_code ignored;
        if (ws_) ws_->next_layer().close(ignored);
    }

    std::int64_t next_n = 1, got = 0, gaps = 0, dups = 0;
    std::int64_t start_ns = 0, done_ns = 0;
    std::int64_t after_mark_us = 0;  // receipt of the first event intended at or after the mark
    int failovers = 0;
    bool ready = false;

  private:
    void open(const tcp::endpoint& ep, bool first);
    void fail_over();
    void on_open();
    void write(std::string s);
    void do_write();
    void read();
    void on_frame(std::string_view f);
    void on_event(std::int64_t n, std::int64_t t, bool counted, std::int64_t now_us);
    void set_ready();

    Loop& loop_;
    std::string sys_, target_, hello_;
    std::int64_t expect_;
    std::optional<websocket::stream<tcp::socket>> ws_;
    beast::flat_buffer buffer_;
    std::vector<tcp::endpoint> failover_;
    std::size_t next_broker_ = 0;  // in failover_
    std::string job_;
    bool closed_ = false;
    std::string acc_;  // NATS: protocol bytes not yet parsed
    std::deque<std::string> out_;
    bool writing_ = false;
};

// One io_context in one thread: every subscriber and their latency histogram.
class Loop : public ConnectLoop<Subscriber> {
  public:
    Loop(Shared& shared, int port, int parallel)
        : ConnectLoop(parallel),
          shared(shared),
          ep(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)) {}
    ~Loop() { stop(); }

    Subscriber& add(const std::string& sys, const std::string& target, const std::string& hello,
                    std::int64_t expect) {
        subs.push_back(std::make_unique<Subscriber>(*this, sys, target, hello, expect));
        return *subs.back();
    }
    // Waits until every subscriber is ready (or failed); false on timeout.
    bool wait_ready(double timeout) {
        const auto t0 = Clock::now();
        while (shared.ready.load() + shared.failed.load() < static_cast<int>(subs.size())) {
            if (seconds_since(t0) > timeout) return false;
            sleep_ms(5);
        }
        return shared.failed.load() == 0;
    }
    // Waits until `expect` deliveries, or no progress for `stall` seconds after
    // the first, or the timeout.
    void wait_delivered(std::uint64_t expect, double stall, double timeout) {
        const auto t0 = Clock::now();
        auto last_change = Clock::now();
        std::uint64_t last = 0;
        for (;;) {
            const auto d = shared.delivered.load();
            if (d >= expect || seconds_since(t0) > timeout) return;
            if (d != last) {
                last = d;
                last_change = Clock::now();
            } else if (d > 0 && seconds_since(last_change) > stall) {
                return;
            }
            sleep_ms(5);
        }
    }
    // Stops the thread, then sums what the subscribers saw.
    struct Totals {
        std::int64_t got = 0, gaps = 0, dups = 0, missing = 0;
    };
    Totals totals(std::int64_t expect_each) {
        stop();
        Totals t;
        for (auto& s : subs) {
            t.got += s->got;
            t.gaps += s->gaps;
            t.dups += s->dups;
            if (expect_each > s->got) t.missing += expect_each - s->got;
        }
        return t;
    }

    Shared& shared;
    tcp::endpoint ep;
    std::string host = "127.0.0.1:" + std::to_string(ep.port());
    Histogram hist;  // µs: receive - intended send time
};

}  // namespace jobcast::bench
