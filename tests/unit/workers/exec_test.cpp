#include <signal.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <thread>

#include "workers/jobs/jobs.hpp"
#include "workers/testing.hpp"

using namespace jobcast::worker;
using jobcast::EventKind;

namespace {

struct Line {
    std::string level, message, stream;
};

std::vector<Line> output_lines(const RecordingSink& sink) {
    std::vector<Line> out;
    for (const auto& data : sink.events(EventKind::log)) {
        const auto o = boost::json::parse(data).as_object();
        if (!o.contains("stream")) continue;  // the "started" line
        out.push_back({std::string(o.at("level").as_string()),
                       std::string(o.at("message").as_string()),
                       std::string(o.at("stream").as_string())});
    }
    return out;
}

std::string params(const std::string& command, const std::vector<std::string>& args) {
    boost::json::object o;
    o["command"] = command;
    boost::json::array a;
    for (const auto& arg : args)
        a.emplace_back(arg);
    o["args"] = a;
    return boost::json::serialize(o);
}

JobOutcome run_exec(RecordingSink& sink, const std::vector<std::string>& allow,
                    const std::string& command, const std::vector<std::string>& args) {
    JobContext context(JobSpec{"j", 1, "exec", params(command, args), ""}, sink);
    return invoke_handler(jobs::exec_handler({allow}), context);
}

// The pid from the handler's "started <command> pid=N" log event.
pid_t started_pid(const RecordingSink& sink) {
    for (const auto& data : sink.events(EventKind::log)) {
        const std::string message(boost::json::parse(data).at("message").as_string());
        const auto at = message.find("pid=");
        if (message.starts_with("started ") && at != std::string::npos) {
            return static_cast<pid_t>(std::stol(message.substr(at + 4)));
        }
    }
    return -1;
}

bool group_gone(pid_t group) {
    return ::kill(-group, 0) != 0 && errno == ESRCH;
}

}  // namespace

TEST_CASE("exec_allowed matches exact names and absolute paths only") {
    const std::vector<std::string> allow = {"echo", "/usr/bin/env"};
    CHECK(jobs::exec_allowed(allow, "echo"));
    CHECK(jobs::exec_allowed(allow, "/usr/bin/env"));
    CHECK_FALSE(jobs::exec_allowed(allow, "/bin/echo"));
    CHECK_FALSE(jobs::exec_allowed(allow, "env"));
    CHECK_FALSE(jobs::exec_allowed(allow, "./echo"));
    CHECK_FALSE(jobs::exec_allowed(allow, "sh"));
    CHECK_FALSE(jobs::exec_allowed(allow, ""));
    CHECK_FALSE(jobs::exec_allowed({}, "echo"));
}

TEST_CASE("exec refuses everything without an allow-list, and commands not on it") {
    RecordingSink sink;
    auto outcome = run_exec(sink, {}, "echo", {"hi"});
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK_FALSE(std::get<Failure>(outcome).retryable());
    CHECK(sink.records().empty());

    outcome = run_exec(sink, {"echo"}, "sh", {"-c", "echo pwned"});
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK(std::string(std::get<Failure>(outcome).what()).find("not allowed") != std::string::npos);
    CHECK(sink.records().empty());
}

TEST_CASE("exec streams stdout and stderr lines and succeeds on exit code 0") {
    RecordingSink sink;
    auto outcome =
        run_exec(sink, {"sh"}, "sh", {"-c", "echo out1; echo err1 >&2; echo out2; printf 'tail'"});
    REQUIRE(std::holds_alternative<std::string>(outcome));
    CHECK(boost::json::parse(std::get<std::string>(outcome)).at("exit_code").to_number<int>() == 0);
    std::vector<std::string> stdout_lines, stderr_lines;
    for (const auto& line : output_lines(sink)) {
        if (line.stream == "stdout") {
            CHECK(line.level == "info");
            stdout_lines.push_back(line.message);
        } else {
            CHECK(line.stream == "stderr");
            CHECK(line.level == "error");
            stderr_lines.push_back(line.message);
        }
    }
    CHECK(stdout_lines == std::vector<std::string>{"out1", "out2", "tail"});
    CHECK(stderr_lines == std::vector<std::string>{"err1"});
}

TEST_CASE("exec reports a non-zero exit code as a non-retryable failure") {
    RecordingSink sink;
    auto outcome = run_exec(sink, {"sh"}, "sh", {"-c", "echo bye; exit 3"});
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK(std::string(std::get<Failure>(outcome).what()) == "exit code 3");
    CHECK_FALSE(std::get<Failure>(outcome).retryable());

    outcome = run_exec(sink, {"sh"}, "sh", {"-c", "kill -9 $$"});
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK(std::string(std::get<Failure>(outcome).what()).find("signal 9") != std::string::npos);
}

TEST_CASE("exec passes arguments without a shell and sanitizes invalid UTF-8") {
    RecordingSink sink;
    // printf turns \377 into the byte 0xFF: not UTF-8.
    auto outcome = run_exec(sink, {"printf"}, "printf",
                            {"%s|%s|%s\\nbad \\377 byte\\n", "$HOME", "; echo injected", "`id`"});
    REQUIRE(std::holds_alternative<std::string>(outcome));
    const auto lines = output_lines(sink);
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].message == "$HOME|; echo injected|`id`");
    CHECK(lines[1].message == "bad \xEF\xBF\xBD byte");
}

TEST_CASE("exec does not hand the worker's secrets to the command") {
    ::setenv("JOBCAST_OPENAI_API_KEY", "sk-very-secret", 1);
    RecordingSink sink;
    auto outcome = run_exec(sink, {"env"}, "env", {});
    ::unsetenv("JOBCAST_OPENAI_API_KEY");
    REQUIRE(std::holds_alternative<std::string>(outcome));
    for (const auto& line : output_lines(sink))
        CHECK(line.message.find("secret") == std::string::npos);
}

TEST_CASE("exec of a missing program fails without retry") {
    RecordingSink sink;
    auto outcome = run_exec(sink, {"/nonexistent/program"}, "/nonexistent/program", {});
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK_FALSE(std::get<Failure>(outcome).retryable());
}

TEST_CASE("exec cancel kills the whole process group") {
    RecordingSink sink;
    JobContext context(
        JobSpec{"j", 1, "exec", params("sh", {"-c", "sleep 100 & echo ready; sleep 100"}), ""},
        sink);
    JobOutcome outcome;
    std::thread runner([&] { outcome = invoke_handler(jobs::exec_handler({{"sh"}}), context); });
    const bool ready = sink.wait_until(
        [](const auto& records) {
            for (const auto& r : records) {
                if (r.data.find("\"ready\"") != std::string::npos) return true;
            }
            return false;
        },
        std::chrono::seconds{10});
    const pid_t group = started_pid(sink);
    CHECK(ready);
    REQUIRE(group > 0);
    CHECK_FALSE(group_gone(group));  // both sleeps are running
    const auto started = std::chrono::steady_clock::now();
    context.request_cancel();
    runner.join();
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds{5});
    REQUIRE(std::holds_alternative<Failure>(outcome));
    CHECK(std::string(std::get<Failure>(outcome).what()) == "cancelled");
    CHECK(group_gone(group));  // no survivor, not even the background sleep
}

TEST_CASE("exec does not leave background children of a finished command behind") {
    RecordingSink sink;
    const auto started = std::chrono::steady_clock::now();
    auto outcome = run_exec(sink, {"sh"}, "sh", {"-c", "sleep 100 & echo done"});
    REQUIRE(std::holds_alternative<std::string>(outcome));
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds{5});
    const pid_t group = started_pid(sink);
    REQUIRE(group > 0);
    CHECK(group_gone(group));
}
