// kill -9 in the middle of a stream of commits: everything acknowledged is
// there after reopening, every log is gapless, nothing is stored twice, and the
// worker's next message after the crash is recognized for what it is.
//
// The child is this same test binary, exec'd with a hidden test case name and
// two environment variables: a clean process (no fork-inherited threads or
// locks) that appends until it is killed and reports each acknowledged
// (job, wseq, seq) on a pipe, after its completion ran, i.e. after COMMIT.
#include <catch2/catch.hpp>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>

#include "store_test_support.hpp"

extern char** environ;

namespace jobcast::store {
namespace {

constexpr const char* kChildTestName = "crash child: append until killed";
constexpr const char* kChildDbEnv = "JOBCAST_CRASH_CHILD_DB";
constexpr const char* kChildFdEnv = "JOBCAST_CRASH_CHILD_FD";
constexpr int kJobs = 40;

std::string crash_job(int index) {
    return "crash-job-" + std::to_string(index);
}

std::string token_data(std::uint64_t wseq) {
    return "{\"w\":" + std::to_string(wseq) + "}";
}

void write_record(int fd, int job, std::uint64_t wseq, std::uint64_t seq) {
    char line[64];
    const int n =
        std::snprintf(line, sizeof line, "%d %llu %llu\n", job,
                      static_cast<unsigned long long>(wseq), static_cast<unsigned long long>(seq));
    // One write of less than PIPE_BUF bytes: a record is whole or absent.
    ssize_t written;
    do {
        written = ::write(fd, line, static_cast<std::size_t>(n));
    } while (written < 0 && errno == EINTR);
}

struct Ack {
    int job;
    std::uint64_t wseq;
    std::uint64_t seq;
};

struct ChildRun {
    std::vector<Ack> acks;
    bool killed = false;
    int status = 0;
};

// Starts the child on `db`, SIGKILLs it once `kill_after` acks arrived, and
// returns every ack it reported before dying.
ChildRun run_child(const std::string& db, std::size_t kill_after) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    REQUIRE(devnull >= 0);

    // Everything the child needs is built before fork: after it, only
    // async-signal-safe calls until exec.
    std::string exe = "/proc/self/exe";
    std::string name = kChildTestName;
    char* argv[] = {exe.data(), name.data(), nullptr};
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e)
        env_strings.emplace_back(*e);
    env_strings.push_back(std::string(kChildDbEnv) + "=" + db);
    env_strings.push_back(std::string(kChildFdEnv) + "=" + std::to_string(fds[1]));
    std::vector<char*> envp;
    for (std::string& s : env_strings)
        envp.push_back(s.data());
    envp.push_back(nullptr);

    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
        ::dup2(devnull, STDOUT_FILENO);
        ::fcntl(fds[1], F_SETFD, 0);  // the write end stays open across exec
        ::execve(exe.c_str(), argv, envp.data());
        ::_exit(127);
    }
    ::close(fds[1]);
    ::close(devnull);

    ChildRun run;
    std::string pending;
    char buffer[65536];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    for (;;) {
        pollfd pfd{fds[0], POLLIN, 0};
        const int ready = ::poll(&pfd, 1, 1000);
        if (ready < 0 && errno == EINTR) continue;
        if (std::chrono::steady_clock::now() > deadline && !run.killed) {
            ::kill(pid, SIGKILL);
            run.killed = true;
            FAIL_CHECK("the crash child did not produce " << kill_after << " acks in time, got "
                                                          << run.acks.size());
        }
        if (ready == 0) continue;
        const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;  // EOF: the child is gone
        pending.append(buffer, static_cast<std::size_t>(n));
        std::size_t start = 0;
        for (std::size_t nl; (nl = pending.find('\n', start)) != std::string::npos;
             start = nl + 1) {
            Ack ack{};
            unsigned long long wseq = 0;
            unsigned long long seq = 0;
            if (std::sscanf(pending.c_str() + start, "%d %llu %llu", &ack.job, &wseq, &seq) == 3) {
                ack.wseq = wseq;
                ack.seq = seq;
                run.acks.push_back(ack);
            }
        }
        pending.erase(0, start);
        if (!run.killed && run.acks.size() >= kill_after) {
            ::kill(pid, SIGKILL);
            run.killed = true;
        }
    }
    ::close(fds[0]);
    ::waitpid(pid, &run.status, 0);
    CHECK(pending.empty());  // records are written whole
    return run;
}

}  // namespace

// Hidden ("[.]"): runs only when named, as the child of the test below.
TEST_CASE("crash child: append until killed", "[.]") {
    const char* db = std::getenv(kChildDbEnv);
    const char* fd_text = std::getenv(kChildFdEnv);
    if (db == nullptr || fd_text == nullptr) return;
    const int fd = std::atoi(fd_text);

    StoreConfig config;
    config.path = db;
    config.read_connections = 1;
    config.max_batch_ops = 2048;
    auto store = Store::open(config);
    for (int j = 0; j < kJobs; ++j) {
        store->submit(CreateJob{testing::new_job(crash_job(j)), ""});
        store->submit(LeaseJob{crash_job(j), "w", 0});
    }
    store->flush();
    for (std::uint64_t w = 1;; ++w) {
        for (int j = 0; j < kJobs; ++j) {
            store->submit(testing::chunk(crash_job(j), 1, w, token_data(w)),
                          [fd, j, w](const WriteResult& r) {
                              if (r.status == WriteStatus::ok)
                                  write_record(fd, j, w, r.job->last_seq);
                          });
        }
    }
}

TEST_CASE("kill -9 loses nothing acknowledged and stores nothing twice", "[crash]") {
    for (const std::size_t kill_after : {3'000u, 40'000u}) {
        testing::TempDir dir;
        const std::string db = dir.file("crash.db");
        const ChildRun run = run_child(db, kill_after);
        REQUIRE(run.killed);
        CHECK(WIFSIGNALED(run.status));
        REQUIRE(run.acks.size() >= kill_after);

        std::map<int, std::uint64_t> max_acked;  // job -> highest acknowledged wseq
        for (const Ack& ack : run.acks) {
            REQUIRE(ack.job >= 0);
            REQUIRE(ack.job < kJobs);
            REQUIRE(ack.seq == ack.wseq + 2);  // seq 1 queued, 2 running, then tokens
            max_acked[ack.job] = std::max(max_acked[ack.job], ack.wseq);
        }

        StoreConfig config;
        config.path = db;
        config.read_connections = 1;
        auto store = Store::open(config);
        for (int j = 0; j < kJobs; ++j) {
            const std::string id = crash_job(j);
            const auto job = store->jobs().get(id);
            REQUIRE(job);
            CHECK(job->state == JobState::running);
            const auto events = testing::read_all(*store, id, 10'000);
            REQUIRE(events.size() == job->last_seq);
            REQUIRE(events.size() >= 2);
            CHECK(events[0].data == R"({"state":"queued","attempt":0})");
            CHECK(events[1].data == R"({"state":"running","attempt":1,"worker":"w"})");
            for (std::size_t i = 0; i < events.size(); ++i) {
                REQUIRE(events[i].seq == i + 1);
                if (i >= 2) REQUIRE(events[i].data == token_data(i - 1));  // each wseq once
            }
            const std::uint64_t stored_wseq = events.size() - 2;
            INFO("job " << id << " stored_wseq " << stored_wseq << " acked " << max_acked[j]);
            REQUIRE(stored_wseq >= max_acked[j]);

            // The worker resends what it was not sure of: a duplicate, then new.
            if (stored_wseq > 0) {
                const WriteResult resent = testing::submit_sync(
                    *store, testing::chunk(id, 1, stored_wseq, token_data(stored_wseq)));
                CHECK(resent.status == WriteStatus::duplicate);
                CHECK(resent.acked_wseq == stored_wseq);
            }
            const WriteResult next = testing::submit_sync(
                *store, testing::chunk(id, 1, stored_wseq + 1, token_data(stored_wseq + 1)));
            REQUIRE(next.status == WriteStatus::ok);
            CHECK(next.job->last_seq == events.size() + 1);
        }
    }
}

}  // namespace jobcast::store
