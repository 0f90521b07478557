// jobcast-bench-stream-worker: a worker built on the SDK (workers/worker.hpp)
// that serves "bench.stream" {count, rate, size, start_us, burst, tick_us}: a fixed-rate
// publisher for jobcast-bench-stream's latency and resume scenarios.
//
//   - `burst` token events first, as fast as the SDK takes them;
//   - then `count` token events on a fixed schedule of `rate` events/s (0: as
//     fast as possible), the first at unix time `start_us` (µs; 0 or past:
//     now). Event i is *intended* at start + i/rate; a late emit does not move
//     the schedule (coordinated omission: the load generator measures latency
//     from the intended time, carried in the data). The publisher wakes once
//     per tick of `tick_us` (0: 1,000 µs), on a grid from the start, and emits
//     every event due by then: at most 1,000 wake-ups a second, not one per
//     event. An event waits for its tick (less than one, and nothing when its
//     time is on the grid, as at 1,000/s), and that wait is in the latency
//     measured from its intended time. `tick_us` 1 sleeps for each event.
//
// Each token's data is {"t":<intended unix µs>,"text":"xxx…"} with `t` first,
// so a client finds it right after `"data":`. The SDK stamps the event's `ts`
// with the actual emit time. Result: {"emitted":N,"late":L} (L: events emitted
// more than 1 ms after their tick). Runs until SIGTERM.
//
//   jobcast-bench-stream-worker --broker tcp://127.0.0.1:5555 [--capacity N] [--name NAME]
//                               [--log-level info]
#include <signal.h>
#include <sys/prctl.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "bench/common/bench_worker_main.hpp"

namespace wk = jobcast::worker;

namespace {

constexpr std::int64_t kDefaultTickUs = 1000;

std::int64_t unix_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

void append_int(std::string& out, std::int64_t v) {
    char buf[24];
    auto n = std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
    out.append(buf, static_cast<std::size_t>(n));
}

wk::JobOutcome bench_stream(wk::JobContext& job) {
    const auto count = job.param_int("count", 0);
    const auto rate = job.param_int("rate", 0);
    const auto size = job.param_int("size", 16);
    const auto burst = job.param_int("burst", 0);
    auto start_us = job.param_int("start_us", 0);
    const auto tick_us = job.param_int("tick_us", 0);
    if (count < 0 || rate < 0 || burst < 0 || tick_us < 0 || size < 0 || size > (1 << 20)) {
        return wk::Failure("bench.stream: bad count, rate, burst or size", false);
    }
    const std::string text(static_cast<std::size_t>(size), 'x');
    std::string data;
    data.reserve(text.size() + 48);
    auto emit = [&](std::int64_t intended) {
        data.assign("{\"t\":");
        append_int(data, intended);
        data.append(",\"text\":\"").append(text).append("\"}");
        job.emit(jobcast::EventKind::token, data);
    };

    std::int64_t emitted = 0, late = 0;
    for (std::int64_t i = 0; i < burst && !job.cancelled(); ++i, ++emitted)
        emit(unix_us());

    // The schedule runs on the steady clock; `t` is its unix-time equivalent.
    const auto now_unix = unix_us();
    if (start_us < now_unix) start_us = now_unix;
    const auto steady_start =
        std::chrono::steady_clock::now() + std::chrono::microseconds(start_us - now_unix);
    const double period_us = rate > 0 ? 1e6 / static_cast<double>(rate) : 0.0;
    if (rate > 0 || start_us > now_unix) std::this_thread::sleep_until(steady_start);
    const std::int64_t tick = tick_us > 0 ? tick_us : kDefaultTickUs;
    std::int64_t i = 0;
    auto offset_of = [&](std::int64_t n) {
        return static_cast<std::int64_t>(static_cast<double>(n) * period_us);
    };
    while (i < count && !job.cancelled()) {
        if (rate == 0) {
            emit(unix_us());
            ++i, ++emitted;
            continue;
        }
        // Sleep to the first tick at or after the next event's time, then
        // emit every event due by the time we woke.
        const auto tick_at = [&](std::int64_t offset) {
            return steady_start + std::chrono::microseconds((offset + tick - 1) / tick * tick);
        };
        auto now = std::chrono::steady_clock::now();
        if (now < steady_start + std::chrono::microseconds(offset_of(i))) {
            std::this_thread::sleep_until(tick_at(offset_of(i)));
            now = std::chrono::steady_clock::now();
        }
        do {
            const auto offset = offset_of(i);
            if (now - tick_at(offset) > std::chrono::milliseconds(1)) ++late;
            emit(start_us + offset);
            ++i, ++emitted;
        } while (i < count && !job.cancelled() &&
                 steady_start + std::chrono::microseconds(offset_of(i)) <= now);
    }
    return "{\"emitted\":" + std::to_string(emitted) + ",\"late\":" + std::to_string(late) + "}";
}

}  // namespace

int main(int argc, char** argv) {
    // Sleeps of a 10,000/s schedule are 100 µs: keep the kernel's default 50 µs
    // timer slack out of the measured latency.
    ::prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    return jobcast::bench::run_bench_worker(argc, argv, "jobcast-bench-stream-worker",
                                            "bench.stream", bench_stream);
}
