// Real Redis servers for the integration tests, from Debian's redis-tools: the
// server binary is /usr/bin/redis-check-rdb, which runs as a server when
// started under the name redis-server (a symlink in a temporary bin/). Each
// node gets an ephemeral port below 55536 whose cluster bus port (+10000) is
// free too. Every process is killed when the fixture goes, also when a test
// fails, and dies with the test process (PR_SET_PDEATHSIG).
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "redis/connection.hpp"

namespace jobcast::redis::testing {

inline const char* const kServerBinary = "/usr/bin/redis-check-rdb";
inline const char* const kCli = "/usr/bin/redis-cli";

inline bool redis_available() {
    return ::access(kServerBinary, X_OK) == 0 && ::access(kCli, X_OK) == 0;
}

// True, with a warning, when the test must be skipped for want of redis-tools.
inline bool skip_without_redis() {
    if (redis_available()) return false;
    WARN("redis-tools is not installed (" << kServerBinary << "): skipped");
    return true;
}

// Polls `ready` every 20 ms until it holds; throws after `limit`.
inline void wait_until(const std::string& what, std::function<bool()> ready,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!ready()) {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("timed out waiting for " + what);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

class RedisNodes {
  public:
    // `count` servers, in cluster mode or standalone.
    RedisNodes(int count, bool cluster) : cluster_(cluster) {
        std::string pattern =
            (std::filesystem::temp_directory_path() / "jobcast-redis-XXXXXX").string();
        if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir_ = pattern;
        std::filesystem::create_directory(dir_ / "bin");
        std::filesystem::create_symlink(kServerBinary, dir_ / "bin" / "redis-server");
        for (int i = 0; i < count; ++i)
            ports_.push_back(free_port());
        pids_.assign(count, -1);
        for (int i = 0; i < count; ++i)
            start(i);
    }

    ~RedisNodes() {
        for (int i = 0; i < static_cast<int>(pids_.size()); ++i)
            kill(i);
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    RedisNodes(const RedisNodes&) = delete;
    RedisNodes& operator=(const RedisNodes&) = delete;

    int size() const { return static_cast<int>(ports_.size()); }
    std::uint16_t port(int i) const { return ports_.at(i); }
    Endpoint endpoint(int i) const { return {"127.0.0.1", port(i)}; }
    int index_of(std::uint16_t port) const {
        for (int i = 0; i < size(); ++i)
            if (ports_[i] == port) return i;
        throw std::runtime_error("no node on port " + std::to_string(port));
    }

    // Starts node i (again, after kill) and waits until it answers PING.
    void start(int i) {
        std::filesystem::path data = dir_ / std::to_string(ports_[i]);
        std::filesystem::create_directories(data);
        std::vector<std::string> args = {(dir_ / "bin" / "redis-server").string(),
                                         "--port",
                                         std::to_string(ports_[i]),
                                         "--bind",
                                         "127.0.0.1",
                                         "--dir",
                                         data.string(),
                                         "--save",
                                         "",
                                         "--appendonly",
                                         "no",
                                         "--logfile",
                                         (data / "redis.log").string(),
                                         "--repl-diskless-sync-delay",
                                         "0"};
        if (cluster_) {
            for (const char* arg : {"--cluster-enabled", "yes", "--cluster-node-timeout", "1000",
                                    "--cluster-config-file", "nodes.conf"})
                args.emplace_back(arg);
        }
        std::vector<char*> argv;
        for (std::string& arg : args)
            argv.push_back(arg.data());
        argv.push_back(nullptr);
        const pid_t pid = ::fork();
        if (pid < 0) throw std::runtime_error("fork failed");
        if (pid == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        pids_[i] = pid;
        wait_until("redis on port " + std::to_string(ports_[i]),
                   [&] { return cli(i, {"PING"}) == "PONG\n"; });
    }

    // SIGKILL, and reap.
    void kill(int i) {
        if (pids_.at(i) <= 0) return;
        ::kill(pids_[i], SIGKILL);
        ::waitpid(pids_[i], nullptr, 0);
        pids_[i] = -1;
    }

    // redis-cli against node i; its standard output.
    std::string cli(int i, const std::vector<std::string>& args) const {
        std::string command = std::string(kCli) + " -p " + std::to_string(ports_.at(i));
        for (const std::string& arg : args)
            command += " '" + arg + "'";
        command += " 2>&1";
        FILE* out = ::popen(command.c_str(), "r");
        if (!out) throw std::runtime_error("popen failed");
        std::string text;
        char buffer[4096];
        while (std::size_t n = std::fread(buffer, 1, sizeof buffer, out))
            text.append(buffer, n);
        ::pclose(out);
        return text;
    }

    // The value of `field` in the INFO/CLUSTER INFO text of node i.
    std::string info(int i, const std::vector<std::string>& command,
                     const std::string& field) const {
        std::istringstream lines(cli(i, command));
        for (std::string line; std::getline(lines, line);) {
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.starts_with(field + ":")) return line.substr(field.size() + 1);
        }
        return {};
    }

    // Makes a cluster of all nodes with `replicas` replicas per primary and
    // waits until every node says cluster_state:ok and every replica's link
    // to its primary is up.
    void create_cluster(int replicas) {
        std::vector<std::string> args = {"--cluster", "create"};
        for (int i = 0; i < size(); ++i)
            args.push_back(endpoint(i).str());
        args.insert(args.end(), {"--cluster-replicas", std::to_string(replicas), "--cluster-yes"});
        std::string out = cli(0, args);
        if (out.find("[OK] All 16384 slots covered") == std::string::npos)
            throw std::runtime_error("redis-cli --cluster create failed:\n" + out);
        wait_cluster_ok();
    }

    // A cluster of one shard: node 0 the primary of every slot, node 1 its
    // replica (redis-cli --cluster create wants 3 primaries at least).
    void create_single_shard() {
        if (cli(0, {"CLUSTER", "ADDSLOTSRANGE", "0", "16383"}) != "OK\n")
            throw std::runtime_error("CLUSTER ADDSLOTSRANGE failed");
        cli(1, {"CLUSTER", "MEET", "127.0.0.1", std::to_string(port(0))});
        const std::string primary = node_id(0);
        wait_until("node 1 to meet node 0", [&] {
            return cli(1, {"CLUSTER", "NODES"}).find(primary) != std::string::npos;
        });
        wait_until("node 1 to replicate node 0", [&] {
            return cli(1, {"CLUSTER", "REPLICATE", primary}) == "OK\n";
        });
        wait_cluster_ok();
    }

    // Sends `signal` (SIGSTOP, SIGCONT) to node i.
    void signal(int i, int sig) const {
        if (pids_.at(i) > 0) ::kill(pids_[i], sig);
    }

    void wait_cluster_ok() {
        for (int i = 0; i < size(); ++i) {
            if (pids_[i] <= 0) continue;
            wait_until("cluster_state:ok on node " + std::to_string(i), [&] {
                return info(i, {"CLUSTER", "INFO"}, "cluster_state") == "ok";
            });
            if (role(i) == "slave")
                wait_until("the replication link of node " + std::to_string(i), [&] {
                    return info(i, {"INFO", "replication"}, "master_link_status") == "up";
                });
        }
    }

    // "master" or "slave" (INFO replication).
    std::string role(int i) const { return info(i, {"INFO", "replication"}, "role"); }

    // The node whose primary is node i.
    int replica_of(int i) const {
        for (int j = 0; j < size(); ++j)
            if (j != i && pids_[j] > 0 && role(j) == "slave" &&
                info(j, {"INFO", "replication"}, "master_port") == std::to_string(port(i)))
                return j;
        throw std::runtime_error("node " + std::to_string(i) + " has no replica");
    }

    // The node serving `slot` as primary, as node `asked` sees it.
    int owner_of(std::uint16_t slot, int asked = 0) const {
        std::istringstream lines(cli(asked, {"CLUSTER", "NODES"}));
        for (std::string line; std::getline(lines, line);) {
            std::istringstream fields(line);
            std::vector<std::string> f;
            for (std::string w; fields >> w;)
                f.push_back(w);
            if (f.size() < 9 || f[2].find("master") == std::string::npos) continue;
            for (std::size_t k = 8; k < f.size(); ++k) {
                auto dash = f[k].find('-');
                if (f[k].starts_with('[')) continue;
                int first = std::stoi(f[k].substr(0, dash));
                int last = dash == std::string::npos ? first : std::stoi(f[k].substr(dash + 1));
                if (slot >= first && slot <= last) {
                    auto at = f[1].find('@');
                    return index_of(static_cast<std::uint16_t>(
                        std::stoi(f[1].substr(f[1].rfind(':', at) + 1))));
                }
            }
        }
        throw std::runtime_error("no owner of slot " + std::to_string(slot));
    }

    std::string node_id(int i) const {
        std::string id = cli(i, {"CLUSTER", "MYID"});
        while (!id.empty() && (id.back() == '\n' || id.back() == '\r'))
            id.pop_back();
        return id;
    }

  private:
    // A port the kernel handed out as ephemeral, below 55536, whose +10000 is free.
    std::uint16_t free_port() {
        for (int attempt = 0; attempt < 200; ++attempt) {
            std::uint16_t port = bind_port(0);
            if (port == 0 || port >= 55536 || taken_.contains(port)) continue;
            if (bind_port(static_cast<std::uint16_t>(port + 10000)) == 0) continue;
            taken_.insert(port);
            return port;
        }
        throw std::runtime_error("no free port pair for a Redis node");
    }

    // Binds 127.0.0.1:port (0: any), closes, and says which port it was (0 on failure).
    static std::uint16_t bind_port(std::uint16_t port) {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port);
        socklen_t size = sizeof addr;
        std::uint16_t bound = 0;
        if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &size) == 0)
            bound = ntohs(addr.sin_port);
        ::close(fd);
        return bound;
    }

    bool cluster_;
    std::filesystem::path dir_;
    std::vector<std::uint16_t> ports_;
    std::vector<pid_t> pids_;
    std::set<std::uint16_t> taken_;
};

}  // namespace jobcast::redis::testing
