// exec: runs an allow-listed command without a shell, in its own process
// group, streaming stdout/stderr lines as log events. The command and its
// arguments come from untrusted job params: nothing is interpreted by a shell,
// the child gets a minimal environment (no JOBCAST_* secrets such as the
// OpenAI key), no inherited descriptors beyond 0-2, and default signal
// dispositions. Cancel (or the command exiting while children of it linger)
// signals the whole process group; the worker is a child subreaper so that
// orphaned group members are reaped here and none survive the job.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>

#include "common/log_quote.hpp"
#include "workers/jobs/jobs.hpp"
#include "workers/log.hpp"
#include "workers/text.hpp"

extern char** environ;

namespace jobcast::worker::jobs {
namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxLineBytes = 16 * 1024;  // longer lines are split
constexpr auto kPipeGraceAfterExit = std::chrono::milliseconds{1000};
constexpr auto kReapTimeout = std::chrono::seconds{5};

// Variables a command may reasonably need; everything else (tokens, keys) stays out.
constexpr const char* kPassedEnvironment[] = {"PATH",   "HOME",     "USER", "LOGNAME", "LANG",
                                              "LC_ALL", "LC_CTYPE", "TZ",   "TMPDIR"};

void become_subreaper_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
            worker_logger()->warn("exec: cannot become child subreaper error={}",
                                  std::strerror(errno));
        }
    });
}

std::vector<std::string> child_environment() {
    std::vector<std::string> env;
    for (const char* name : kPassedEnvironment) {
        if (const char* value = std::getenv(name)) env.push_back(std::string(name) + "=" + value);
    }
    if (std::getenv("PATH") == nullptr) env.emplace_back("PATH=/usr/local/bin:/usr/bin:/bin");
    return env;
}

// Accumulates one output stream and emits it line by line.
class LineStream {
  public:
    LineStream(JobContext& context, int fd, std::string_view stream, std::string_view level)
        : context_(context), fd_(fd), stream_(stream), level_(level) {}
    ~LineStream() { close(); }

    int fd() const { return fd_; }
    bool open() const { return fd_ >= 0; }
    void close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    // Reads what is available; at EOF flushes the last partial line and closes.
    void drain() {
        char buffer[65536];
        while (fd_ >= 0) {
            const ssize_t n = ::read(fd_, buffer, sizeof buffer);
            if (n > 0) {
                append(std::string_view(buffer, static_cast<std::size_t>(n)));
            } else if (n == 0) {
                if (!pending_.empty()) emit_line(pending_);
                pending_.clear();
                close();
            } else if (errno == EINTR) {
                continue;
            } else {
                if (errno != EAGAIN && errno != EWOULDBLOCK) close();
                return;
            }
        }
    }

  private:
    void append(std::string_view bytes) {
        while (!bytes.empty()) {
            const auto newline = bytes.find('\n');
            const auto piece = bytes.substr(0, newline);
            pending_.append(piece);
            if (newline == std::string_view::npos) {
                bytes = {};
            } else {
                bytes.remove_prefix(newline + 1);
                if (!pending_.empty() && pending_.back() == '\r') pending_.pop_back();
                emit_line(pending_);
                pending_.clear();
            }
            while (pending_.size() >= kMaxLineBytes) {
                emit_line(std::string_view(pending_).substr(0, kMaxLineBytes));
                pending_.erase(0, kMaxLineBytes);
            }
        }
    }

    void emit_line(std::string_view line) {
        json_.clear();
        json_ += "{\"level\":";
        append_json_string(json_, level_);
        json_ += ",\"message\":";
        append_json_string(json_, line);  // invalid UTF-8 becomes U+FFFD
        json_ += ",\"stream\":";
        append_json_string(json_, stream_);
        json_ += '}';
        context_.emit(EventKind::log, json_);
    }

    JobContext& context_;
    int fd_;
    std::string_view stream_;
    std::string_view level_;
    std::string pending_;
    std::string json_;
};

std::string signal_name(int signal) {
    const char* name = sigabbrev_np(signal);
    return name != nullptr ? std::string("SIG") + name : std::to_string(signal);
}

JobOutcome run_command(JobContext& context, const ExecOptions& options) {
    const auto command = context.param_string("command", "");
    if (command.empty()) return Failure("param 'command' is required", false);
    const auto args = context.param_strings("args");
    if (!exec_allowed(options.allow, command)) {
        return Failure(
            options.allow.empty()
                ? "exec is disabled on this worker (no --exec-allow list)"
                : "command '" + sanitize_utf8(command) + "' is not allowed on this worker",
            false);
    }
    for (const auto& arg : args) {
        if (arg.find('\0') != std::string::npos) {
            return Failure("param 'args' must not contain NUL characters", false);
        }
    }
    if (context.cancelled()) return Failure("cancelled", false);
    become_subreaper_once();

    int out_pipe[2];
    int err_pipe[2];
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        return Failure(std::string("pipe: ") + std::strerror(errno), true);
    }
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
        const int saved = errno;
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        return Failure(std::string("pipe: ") + std::strerror(saved), true);
    }
    LineStream out(context, out_pipe[0], "stdout", "info");
    LineStream err(context, err_pipe[0], "stderr", "error");

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&actions, 3);

    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t defaults;
    sigfillset(&defaults);
    sigdelset(&defaults, SIGKILL);
    sigdelset(&defaults, SIGSTOP);
    sigset_t empty_mask;
    sigemptyset(&empty_mask);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setsigmask(&attributes, &empty_mask);
    posix_spawnattr_setpgroup(&attributes, 0);  // a new group led by the child
    posix_spawnattr_setflags(
        &attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(command.c_str()));
    for (const auto& arg : args)
        argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    auto env_strings = child_environment();
    std::vector<char*> envp;
    for (auto& entry : env_strings)
        envp.push_back(entry.data());
    envp.push_back(nullptr);

    pid_t pid = -1;
    // A bare name is looked up in the worker's PATH; an absolute path is used as is.
    const int spawned =
        command.front() == '/'
            ? posix_spawn(&pid, command.c_str(), &actions, &attributes, argv.data(), envp.data())
            : posix_spawnp(&pid, command.c_str(), &actions, &attributes, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (spawned != 0) {
        return Failure("cannot start '" + sanitize_utf8(command) + "': " + std::strerror(spawned),
                       false);
    }
    const pid_t group = pid;
    fcntl(out.fd(), F_SETFL, fcntl(out.fd(), F_GETFL) | O_NONBLOCK);
    fcntl(err.fd(), F_SETFL, fcntl(err.fd(), F_GETFL) | O_NONBLOCK);
    context.log("info", "started " + command + " pid=" + std::to_string(pid));
    worker_logger()->debug("exec started job={} command={} pid={}", context.job_id(),
                           log_quote(command), pid);

    bool reaped = false;
    int status = 0;
    std::optional<Clock::time_point> exited_at, term_at, kill_at;
    const auto signal_group = [&](int signal) {
        if (::kill(-group, signal) != 0 && errno != ESRCH) {
            worker_logger()->warn("exec kill failed job={} pgid={} error={}", context.job_id(),
                                  group, std::strerror(errno));
        }
    };
    while (true) {
        const auto now = Clock::now();
        if (context.cancelled() && !term_at) {
            signal_group(SIGTERM);
            term_at = now;
        }
        if (term_at && !kill_at && now - *term_at >= options.kill_grace) {
            signal_group(SIGKILL);
            kill_at = now;
        }
        // The command exited but something it started keeps the pipes open:
        // the job is over, so is the rest of its group.
        if (exited_at && !kill_at && (out.open() || err.open()) &&
            now - *exited_at >= kPipeGraceAfterExit) {
            signal_group(SIGKILL);
            kill_at = now;
        }
        if (!reaped) {
            const pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid) {
                reaped = true;
                exited_at = now;
            }
        }
        if (reaped) {
            // Orphans of the group were re-parented to us (subreaper): reap them.
            while (waitpid(-group, nullptr, WNOHANG) > 0) {
            }
            const bool group_gone = ::kill(-group, 0) != 0 && errno == ESRCH;
            if (!out.open() && !err.open() && group_gone) break;
            if (!group_gone && !kill_at && !out.open() && !err.open()) {
                signal_group(SIGKILL);  // detached from our pipes but still alive
                kill_at = now;
            }
            if (kill_at && now - *kill_at >= kReapTimeout) {
                worker_logger()->warn("exec group did not go away job={} pgid={}", context.job_id(),
                                      group);
                break;
            }
        }
        pollfd fds[2];
        nfds_t count = 0;
        if (out.open()) fds[count++] = pollfd{out.fd(), POLLIN, 0};
        if (err.open()) fds[count++] = pollfd{err.fd(), POLLIN, 0};
        const int timeout_ms = (reaped && count == 0) ? 10 : 50;
        ::poll(fds, count, timeout_ms);  // with no fds: a short pause while the group dies
        out.drain();
        err.drain();
    }
    out.close();
    err.close();

    if (term_at) return Failure("cancelled", false);
    if (WIFEXITED(status)) {
        const int code = WEXITSTATUS(status);
        if (code == 0) return std::string("{\"exit_code\":0}");
        return Failure("exit code " + std::to_string(code), false);
    }
    if (WIFSIGNALED(status)) {
        return Failure("killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
                           signal_name(WTERMSIG(status)) + ")",
                       false);
    }
    return Failure("command ended abnormally", false);
}

}  // namespace

bool exec_allowed(const std::vector<std::string>& allow, std::string_view command) {
    if (command.empty() || command.find('\0') != std::string_view::npos) return false;
    if (command.find('/') != std::string_view::npos && command.front() != '/') return false;
    return std::find(allow.begin(), allow.end(), command) != allow.end();
}

std::string_view exec_params_schema() {
    return R"({
  "type": "object",
  "required": ["command"],
  "properties": {
    "command": {"type": "string", "minLength": 1,
                "description": "a command of the worker's --exec-allow list"},
    "args": {"type": ["array", "null"], "items": {"type": "string"}, "default": []}
  }
})";
}

Handler exec_handler(ExecOptions options) {
    return [options = std::move(options)](JobContext& context) {
        return run_command(context, options);
    };
}

}  // namespace jobcast::worker::jobs
