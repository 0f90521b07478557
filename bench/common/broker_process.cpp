#include "bench/common/broker_process.hpp"

#include <fstream>

#include "bench/common/clock.hpp"
#include "bench/common/process.hpp"

namespace jobcast::bench {

BrokerProcess start_broker(const std::string& bin_dir, const std::string& dir,
                           const std::vector<std::string>& args,
                           const std::vector<std::string>& prefix, std::chrono::seconds wait) {
    BrokerProcess b;
    b.log_path = dir + "/broker.log";
    std::vector<std::string> argv = prefix;
    for (const std::string& a :
         {bin_dir + "/jobcast-broker", std::string("--http"), std::string("127.0.0.1:0"),
          std::string("--zmq"), std::string("tcp://127.0.0.1:0"), std::string("--db"),
          dir + "/bench.db"})
        argv.push_back(a);
    argv.insert(argv.end(), args.begin(), args.end());
    b.pid = spawn(argv, b.log_path);
    const auto deadline = Clock::now() + wait;
    while (Clock::now() < deadline) {
        std::ifstream in(b.log_path);
        for (std::string line; std::getline(in, line);) {
            if (line.find("listening") == std::string::npos) continue;
            auto field = [&](const std::string& key) {
                auto at = line.find(key + "=");
                if (at == std::string::npos) return std::string();
                at += key.size() + 1;
                return line.substr(at, line.find(' ', at) - at);
            };
            const std::string http = field("http");
            b.zmq = field("zmq");
            const auto colon = http.rfind(':');
            if (colon == std::string::npos || b.zmq.empty()) fail("cannot parse: " + line);
            b.http_host = http.substr(0, colon);
            b.http_port = std::stoi(http.substr(colon + 1));
            return b;
        }
        if (!alive(b.pid)) fail("the broker exited at start; see " + b.log_path);
        sleep_ms(10);
    }
    fail("the broker did not log 'listening' within 15 s; see " + b.log_path);
}

pid_t start_worker(const std::string& path, const std::string& zmq, const std::string& name,
                   int capacity, const std::string& log_path,
                   const std::vector<std::string>& args) {
    std::vector<std::string> argv = {
        path, "--broker", zmq, "--name", name, "--capacity", std::to_string(capacity)};
    argv.insert(argv.end(), args.begin(), args.end());
    return spawn(argv, log_path);
}

}  // namespace jobcast::bench
