// Child processes of the load generators (spawn, stop, kill on exit) and what
// /proc says about processes and the machine: CPU seconds, RSS, descendants,
// load average.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <csignal>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace jobcast::bench {

[[noreturn]] inline void fail(const std::string& what) {
    throw std::runtime_error(what);
}

// Every child spawn() started and stop_process() has not reaped yet.
inline std::vector<pid_t> g_children;
inline std::mutex g_children_mutex;

// Starts argv[0] (a path) with stdout and stderr to `log_path`; the child dies
// with the load generator.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path);

// `sig`, then SIGKILL after `grace`; returns the wait status (-1 when there was
// no such child).
int stop_process(pid_t pid, int sig = SIGTERM,
                 std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

void kill_all_children();
bool alive(pid_t pid);

// A fresh folder DIR/PREFIX-XXXXXX.
std::string make_temp_dir(const std::string& dir, const std::string& prefix);

// utime + stime of a process or thread from its stat file, in seconds; with
// `comm`, also its name.
std::optional<double> cpu_seconds_of(const std::string& stat_path, std::string* comm = nullptr);
double cpu_seconds(pid_t pid);
double self_cpu_seconds();

// VmRSS of a process in KiB.
long rss_kib(pid_t pid);

// A process and its descendants (nginx: master + workers).
std::vector<pid_t> process_tree(pid_t root);

// utime + stime of a process and its descendants, in seconds.
double tree_cpu_seconds(pid_t root);

// /proc/loadavg: "1min 5min 15min".
std::string load_average();
// Its first figure: other people's work on a shared machine shows here.
double load1();

// On SIGINT/SIGTERM: kills every child and their descendants, then exits
// (`program` says so on stderr). Call it before starting threads: it blocks
// both signals in the threads started after it.
void kill_children_on_signal(const char* program);

// The folder of the running executable ("." when unknown).
std::string self_dir();

}  // namespace jobcast::bench
