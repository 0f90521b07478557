// jobcast-bench-worker: a worker built on the SDK (workers/worker.hpp) that
// serves one job type, "bench.emit" {count, size}: it emits `count` token
// events whose text is `size` bytes, as fast as the SDK takes them, then
// returns {"emitted":count}. Used by jobcast-bench-ingest; runs until SIGTERM.
//
//   jobcast-bench-worker --broker tcp://127.0.0.1:5555 [--capacity N] [--name NAME]
//                        [--max-unacked-bytes B] [--log-level info]
#include <cstdint>
#include <string>

#include "bench/common/bench_worker_main.hpp"

namespace wk = jobcast::worker;

namespace {

wk::JobOutcome bench_emit(wk::JobContext& job) {
    const auto count = job.param_int("count", 0);
    const auto size = job.param_int("size", 64);
    if (count < 0 || size < 0 || size > (1 << 20)) {
        return wk::Failure("bench.emit: bad count or size", false);
    }
    // Plain ASCII: the SDK's JSON escaping scans it but changes nothing.
    std::string text(static_cast<std::size_t>(size), 'x');
    std::int64_t emitted = 0;
    for (; emitted < count && !job.cancelled(); ++emitted)
        job.token(text);
    return std::string("{\"emitted\":") + std::to_string(emitted) + "}";
}

}  // namespace

int main(int argc, char** argv) {
    return jobcast::bench::run_bench_worker(argc, argv, "jobcast-bench-worker", "bench.emit",
                                            bench_emit);
}
