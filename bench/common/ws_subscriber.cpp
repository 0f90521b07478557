#include "bench/common/ws_subscriber.hpp"

#include <cstring>

namespace jobcast::bench {

void Subscriber::connect() {
    start_ns = mono_ns();
    open(loop_.ep, true);
}

// The first connect counts for the loop's connects in flight and as ready or
// failed; a failover's connect moves on to the next broker when refused.
void Subscriber::open(const tcp::endpoint& ep, bool first) {
    ws_.emplace(loop_.ioc);
    async_open(*ws_, ep, loop_.host, target_,
               [this, first](beast::error_code ec, const char* stage) {
                   if (!ec) {
                       on_open();
                   } else if (!first && !closed_) {
                       net::post(loop_.ioc, [this] { fail_over(); });  // replaces this stream
                   } else if (first) {
                       loop_.shared.failed.fetch_add(1);
                       const std::string where =
                           std::string_view(stage) == "handshake" ? "handshake " + target_ : stage;
                       loop_.shared.error(where + ": " + ec.message());
                   }
                   if (first) loop_.connect_done();
               });
}

void Subscriber::fail_over() {
    if (next_broker_ >= failover_.size()) {
        loop_.shared.error("subscriber of " + job_ + ": no broker left to fail over to");
        return;
    }
    ++failovers;
    hello_ =
        R"({"op":"subscribe","job":")" + job_ + R"(","after":)" + std::to_string(next_n - 1) + "}";
    out_.clear();
    buffer_.clear();
    open(failover_[next_broker_++], false);
}

void Subscriber::on_open() {
    if (sys_ == "nats")
        ws_->binary(true);
    else
        ws_->text(true);
    if (!hello_.empty()) write(hello_);
    if (sys_ == "nchan") set_ready();  // subscribed once the handshake is done
    read();
}

void Subscriber::set_ready() {
    if (ready) return;
    ready = true;
    loop_.shared.ready.fetch_add(1);
}

void Subscriber::write(std::string s) {
    out_.push_back(std::move(s));
    if (!writing_) do_write();
}

void Subscriber::do_write() {
    writing_ = true;
    ws_->async_write(net::buffer(out_.front()), [this](beast::error_code ec, std::size_t) {
        out_.pop_front();
        writing_ = false;
        if (ec) {
            loop_.shared.error("write: " + ec.message());
            return;
        }
        if (!out_.empty()) do_write();
    });
}

void Subscriber::read() {
    ws_->async_read(buffer_, [this](beast::error_code ec, std::size_t) {
        if (ec) {
            if (!closed_ && !failover_.empty() && !writing_ && !(expect_ && got >= expect_)) {
                // Not from inside the stream's own handler: the new stream replaces it.
                net::post(loop_.ioc, [this] { fail_over(); });
                return;
            }
            if (ec != net::error::operation_aborted && ec != net::error::bad_descriptor &&
                !(expect_ && got >= expect_))
                loop_.shared.error(sys_ + " read: " + ec.message());
            return;
        }
        const auto data = buffer_.cdata();
        on_frame(std::string_view(static_cast<const char*>(data.data()), data.size()));
        buffer_.consume(buffer_.size());
        read();
    });
}

void Subscriber::on_frame(std::string_view f) {
    const auto now_us = unix_us();
    const auto before = got;
    if (sys_ == "nchan") {
        std::int64_t t = 0, n = 0;
        if (parse_payload(f, t, n)) on_event(n, t, true, now_us);
    } else if (sys_ == "nats") {
        acc_.append(f);
        const auto used = nats_parse(
            acc_,
            [&](std::string_view subject, std::string_view reply, std::string_view payload, bool) {
                if (reply.starts_with("$JS.FC.")) {
                    write("PUB " + std::string(reply) + " 0\r\n\r\n");  // flow control
                    return;
                }
                if (subject.starts_with("_INBOX.")) {
                    if (payload.find("\"error\"") != std::string_view::npos)
                        loop_.shared.error(std::string(payload));
                    return;
                }
                std::int64_t t = 0, n = 0;
                if (parse_payload(payload, t, n)) on_event(n, t, true, now_us);
            },
            [&](std::string_view line) {
                if (line == "PING")
                    write("PONG\r\n");
                else if (line == "PONG")
                    set_ready();
                else if (line.starts_with("-ERR"))
                    loop_.shared.error(std::string(line));
            });
        acc_.erase(0, used);
    } else {
        const char* p = f.data();
        const char* const end = p + f.size();
        if (!starts_with(p, end, R"({"type":"event)")) {
            if (starts_with(p, end, R"({"type":"subscribed")"))
                set_ready();
            else if (starts_with(p, end, R"({"type":"error")"))
                loop_.shared.error(std::string(f));
            return;
        }
        // The events of a frame in their fixed field order
        // ({"seq":N,"kind":"K","ts":T,"data":{"t":T,...}}, protocol/json.cpp),
        // read in one pass where the bench's own data lets it (no '}' in its
        // text) and searched for otherwise, so the load generator's parse is
        // not what a long resume measures.
        p = find(p, end, R"("seq":)");
        while (p) {
            p += 6;
            const auto seq = parse_int(p, end);
            const bool token = eat(p, end, R"(,"kind":"token")");
            std::int64_t t = 0;
            if (token) {
                const char* q = p;
                const bool ts = eat(q, end, R"(,"ts":)");
                if (ts) parse_int(q, end);
                if (ts && eat(q, end, R"(,"data":{"t":)")) {
                    t = parse_int(q, end);
                    p = q;
                } else {
                    // Within this event only: another's data may hold one.
                    const char* next = find(p, end, R"("seq":)");
                    const char* d = find(p, next ? next : end, R"("data":{"t":)");
                    if (d) {
                        p = d + 12;
                        t = parse_int(p, end);
                    }
                }
            }
            on_event(seq, t, token, now_us);
            // The next event follows this one's data object and closing brace.
            const char* brace =
                static_cast<const char*>(std::memchr(p, '}', static_cast<std::size_t>(end - p)));
            if (brace && starts_with(brace, end, R"(}},{"seq":)")) {
                p = brace + 4;
            } else {
                p = find(p, end, R"("seq":)");
            }
        }
    }
    if (got != before) {
        loop_.shared.delivered.fetch_add(static_cast<std::uint64_t>(got - before),
                                         std::memory_order_relaxed);
        const auto ns = mono_ns();
        std::int64_t zero = 0;
        loop_.shared.first_ns.compare_exchange_strong(zero, ns);
        loop_.shared.last_ns.store(ns, std::memory_order_relaxed);
    }
}

void Subscriber::on_event(std::int64_t n, std::int64_t t, bool counted, std::int64_t now_us) {
    if (n == next_n) {
        ++next_n;
    } else if (n < next_n) {
        ++dups;
        return;
    } else {
        gaps += n - next_n;
        next_n = n + 1;
    }
    if (!counted) return;
    ++got;
    if (!after_mark_us && t >= loop_.shared.mark_us.load(std::memory_order_relaxed))
        after_mark_us = now_us;
    if (t >= loop_.shared.latency_from_us) loop_.hist.record(now_us - t);
    if (expect_ && got == expect_) {
        done_ns = mono_ns();
        loop_.shared.done.fetch_add(1);
    }
}

}  // namespace jobcast::bench
