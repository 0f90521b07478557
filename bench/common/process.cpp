#include "bench/common/process.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "bench/common/clock.hpp"

namespace jobcast::bench {

pid_t spawn(const std::vector<std::string>& argv, const std::string& log_path) {
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
        // The load generator may block SIGINT/SIGTERM (kill_children_on_signal):
        // the child takes them as usual.
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
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

int stop_process(pid_t pid, int sig, std::chrono::milliseconds grace) {
    if (pid <= 0) return -1;
    ::kill(pid, sig);
    int status = 0;
    const auto deadline = Clock::now() + grace;
    for (;;) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) break;
        if (r < 0) {
            status = -1;
            break;
        }
        if (Clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            break;
        }
        sleep_ms(5);
    }
    std::lock_guard lock(g_children_mutex);
    std::erase(g_children, pid);
    return status;
}

void kill_all_children() {
    std::lock_guard lock(g_children_mutex);
    for (pid_t pid : g_children) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
    g_children.clear();
}

bool alive(pid_t pid) {
    int status = 0;
    return ::waitpid(pid, &status, WNOHANG) == 0;
}

std::string make_temp_dir(const std::string& dir, const std::string& prefix) {
    std::string templ = dir + "/" + prefix + "-XXXXXX";
    if (!::mkdtemp(templ.data())) fail("mkdtemp in " + dir + ": " + std::strerror(errno));
    return templ;
}

std::optional<double> cpu_seconds_of(const std::string& stat_path, std::string* comm) {
    static const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    std::ifstream in(stat_path);
    std::string line;
    if (!std::getline(in, line)) return std::nullopt;
    const auto open = line.find('(');
    const auto close = line.rfind(')');
    if (open == std::string::npos || close == std::string::npos) return std::nullopt;
    if (comm) *comm = line.substr(open + 1, close - open - 1);
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> fields;
    for (std::string f; rest >> f;)
        fields.push_back(f);
    // Fields after "(comm)": state is #3 of the man page, utime #14, stime #15.
    if (fields.size() < 13) return std::nullopt;
    return (std::stod(fields[11]) + std::stod(fields[12])) / tick;
}

double cpu_seconds(pid_t pid) {
    return cpu_seconds_of("/proc/" + std::to_string(pid) + "/stat").value_or(0.0);
}

double self_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    auto tv = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
    return tv(u.ru_utime) + tv(u.ru_stime);
}

long rss_kib(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    }
    return 0;
}

std::vector<pid_t> process_tree(pid_t root) {
    std::map<pid_t, pid_t> parent;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const auto name = e.path().filename().string();
        if (name.empty() || !std::isdigit(static_cast<unsigned char>(name[0]))) continue;
        std::ifstream in(e.path() / "stat");
        std::string line;
        if (!std::getline(in, line)) continue;
        const auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        std::string state;
        pid_t ppid = 0;
        rest >> state >> ppid;
        parent[std::stoi(name)] = ppid;
    }
    std::vector<pid_t> out{root};
    for (std::size_t i = 0; i < out.size(); ++i)
        for (const auto& [pid, pp] : parent)
            if (pp == out[i]) out.push_back(pid);
    return out;
}

double tree_cpu_seconds(pid_t root) {
    double s = 0;
    for (pid_t p : process_tree(root))
        s += cpu_seconds(p);
    return s;
}

std::string load_average() {
    std::ifstream in("/proc/loadavg");
    std::string a, b, c;
    in >> a >> b >> c;
    return a + " " + b + " " + c;
}

double load1() {
    return std::strtod(load_average().c_str(), nullptr);
}

void kill_children_on_signal(const char* program) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    ::pthread_sigmask(SIG_BLOCK, &set, nullptr);  // inherited by every later thread
    std::thread([set, program] {
        int sig = 0;
        ::sigwait(&set, &sig);
        std::vector<pid_t> children;
        {
            std::lock_guard lock(g_children_mutex);
            children = g_children;
        }
        for (pid_t c : children)
            for (pid_t p : process_tree(c))
                ::kill(p, SIGKILL);
        std::fprintf(stderr, "%s: stopped by signal %d\n", program, sig);
        std::_Exit(128 + sig);
    }).detach();
}

std::string self_dir() {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string(".") : exe.parent_path().string();
}

}  // namespace jobcast::bench
