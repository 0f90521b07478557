// The real jobcast-broker under test and its workers, as child processes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace jobcast::bench {

struct BrokerProcess {
    pid_t pid = -1;
    std::string http_host;  // from its "listening http=HOST:PORT zmq=ENDPOINT" line
    int http_port = 0;
    std::string zmq;
    std::string log_path;
};

// Starts BIN_DIR/jobcast-broker on ports the kernel picks (loopback), with a
// fresh database DIR/bench.db and its log in DIR/broker.log; `prefix` runs it
// under another program (valgrind, ...), `args` go after the broker's own.
// Waits up to `wait` for the line that says where it listens.
BrokerProcess start_broker(const std::string& bin_dir, const std::string& dir,
                           const std::vector<std::string>& args,
                           const std::vector<std::string>& prefix = {},
                           std::chrono::seconds wait = std::chrono::seconds(15));

// Starts a worker binary (jobcast-bench-worker, jobcast-bench-stream-worker)
// against the broker's ZeroMQ endpoint; `args` go after its own.
pid_t start_worker(const std::string& path, const std::string& zmq, const std::string& name,
                   int capacity, const std::string& log_path,
                   const std::vector<std::string>& args = {});

}  // namespace jobcast::bench
