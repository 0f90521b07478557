#include "cli/commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <csignal>
#include <cstring>
#include <random>
#include <thread>

#include "auth/jwt.hpp"
#include "cli/json_format.hpp"
#include "cli/params.hpp"
#include "cli/reconnect.hpp"
#include "cli/renderer.hpp"
#include "cli/transport.hpp"
#include "cli/watch.hpp"
#include "common/curve_keys.hpp"

namespace jobcast::cli {
namespace {

namespace json = boost::json;

TransportConfig transport_config(const Invocation& invocation) {
    TransportConfig config;
    config.url = invocation.url;
    config.token = invocation.token;
    config.ca_file = invocation.ca_file;
    return config;
}

std::string job_path(const std::string& job) {
    return "/v1/jobs/" + percent_encode(job);
}

// The server's error message on stderr; 404 is "no such job", anything else
// an HTTP error.
ExitCode report(Console& console, const HttpResponse& response, const std::string& what) {
    console.err << "jobcast: " << what << ": " << http_error_message(response.status, response.body)
                << " (HTTP " << response.status << ")\n";
    return response.status == 404 ? ExitCode::not_found : ExitCode::connection;
}

json::value parse_body(const HttpResponse& response) {
    boost::system::error_code ec;
    auto value = json::parse(response.body, ec);
    if (ec) throw ConnectionError("the server's answer is not JSON: " + ec.message());
    return value;
}

// Ctrl-C while following a job detaches: the CLI goes, the job goes on
// (stopping it is `jobcast cancel`, never a side effect of leaving). The
// handler may only call async-signal-safe functions: the notice is written
// out before the handler is installed, and the handler write()s it and
// _exit()s (the renderer flushes stdout after every event).
char detach_notice[512];
std::size_t detach_notice_size = 0;
// The exit code then: 128 + SIGINT, what a shell reports for a command that
// Ctrl-C ended (documented with the others in --help).
constexpr int kDetachedExit = 128 + SIGINT;

void detach_on_interrupt(int) {
    [[maybe_unused]] const auto written = ::write(STDERR_FILENO, detach_notice, detach_notice_size);
    ::_exit(kDetachedExit);
}

void detach_on_ctrl_c(const std::string& job, const Console& console) {
    // On a terminal, after the "^C" the terminal echoed (and a progress bar).
    const auto notice = std::string(console.terminal ? "\n" : "") + "[detached: " + job +
                        " goes on; jobcast cancel " + job + " stops it, jobcast watch " + job +
                        " follows it again]\n";
    detach_notice_size = std::min(notice.size(), sizeof detach_notice);
    std::memcpy(detach_notice, notice.data(), detach_notice_size);
    struct sigaction action {};
    action.sa_handler = detach_on_interrupt;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGINT, &action, nullptr);
}

ExitCode follow(const Invocation& invocation, const std::string& job, std::uint64_t after,
                const StreamOptions& stream, Console& console) {
    detach_on_ctrl_c(job, console);
    RenderOptions render;
    render.terminal = console.terminal && !stream.json;
    render.json = stream.json;
    render.quiet = stream.quiet;
    render.job = job;
    render.columns = console.columns;
    Renderer renderer(render, console.out, console.err);

    WatchOptions options;
    options.job = job;
    options.after = after;
    options.reconnect.give_up = stream.retry_for;
    options.seed = std::random_device{}();
    auto connector = websocket_connector(transport_config(invocation));
    return watch_job(options, *connector, renderer, steady_watch_clock());
}

ExitCode run(const Invocation& invocation, const SubmitCommand& command, Console& console) {
    json::object body;
    body["type"] = command.type;
    body["params"] = parse_params(command.params);
    if (command.priority) body["priority"] = *command.priority;
    if (command.max_attempts) body["max_attempts"] = *command.max_attempts;
    HttpHeaders headers;
    if (!command.idempotency_key.empty()) {
        headers.emplace_back("Idempotency-Key", command.idempotency_key);
    }
    const auto response = http_request(transport_config(invocation), "POST", "/v1/jobs",
                                       json::serialize(body), headers);
    // 200: an earlier submit with the same Idempotency-Key.
    if (response.status != 201 && response.status != 200) {
        const auto code = report(console, response, "submit failed");
        return code == ExitCode::not_found ? ExitCode::connection : code;
    }
    const auto job = parse_body(response);
    const auto* id = job.is_object() ? job.get_object().if_contains("id") : nullptr;
    if (id == nullptr || !id->is_string()) throw ConnectionError("the server's job has no id");
    const std::string job_id(id->get_string());

    if (!command.follow) {
        if (command.json) {
            console.out << pretty_json(job);
        } else {
            console.out << job_id << '\n';
        }
        return ExitCode::succeeded;
    }
    if (!command.stream.quiet) console.err << "[submitted " << job_id << "]\n" << std::flush;
    return follow(invocation, job_id, 0, command.stream, console);
}

ExitCode run(const Invocation& invocation, const WatchCommand& command, Console& console) {
    return follow(invocation, command.job, command.after, command.stream, console);
}

ExitCode run(const Invocation& invocation, const GetCommand& command, Console& console) {
    const auto response = http_request(transport_config(invocation), "GET", job_path(command.job));
    if (response.status != 200) return report(console, response, "get " + command.job);
    console.out << pretty_json(parse_body(response));
    return ExitCode::succeeded;
}

ExitCode run(const Invocation& invocation, const ListCommand& command, Console& console) {
    const auto query = query_string({{"state", command.state},
                                     {"type", command.type},
                                     {"limit", command.limit ? std::to_string(*command.limit) : ""},
                                     {"cursor", command.cursor}});
    const auto response = http_request(transport_config(invocation), "GET", "/v1/jobs" + query);
    if (response.status != 200) {
        const auto code = report(console, response, "list failed");
        return code == ExitCode::not_found ? ExitCode::connection : code;
    }
    const auto page = parse_body(response);
    if (command.json) {
        console.out << pretty_json(page);
        return ExitCode::succeeded;
    }
    const auto* jobs = page.is_object() ? page.get_object().if_contains("jobs") : nullptr;
    if (jobs == nullptr || !jobs->is_array())
        throw ConnectionError("the server's list has no jobs");
    if (jobs->get_array().empty()) {
        console.err << "no jobs\n";
    } else {
        console.out << job_table(jobs->get_array(), local_time_formatter());
    }
    if (const auto* next = page.get_object().if_contains("next"); next && next->is_string()) {
        console.err << "more: jobcast list --cursor " << next->get_string().c_str() << '\n';
    }
    return ExitCode::succeeded;
}

bool broker_unavailable(int status) {
    return status == 429 || status == 502 || status == 503 || status == 504;
}

// POST /v1/jobs/{id}/cancel; while the broker cannot be reached or answers
// 429/502/503/504 (a restart, a proxy in front of a broker that is down),
// again after a jittered backoff until retry_for has passed: a person who
// asked to stop means it. The first failure is said on stderr.
struct CancelAnswer {
    HttpResponse response;
    bool retried = false;  // an earlier try may have reached the broker
};

CancelAnswer cancel_request(const Invocation& invocation, const CancelCommand& command,
                            Console& console) {
    const auto config = transport_config(invocation);
    const auto target = job_path(command.job) + "/cancel";
    ReconnectPolicy policy({.give_up = command.retry_for}, std::random_device{}());
    const auto started = std::chrono::steady_clock::now();
    CancelAnswer answer;
    for (;;) {
        std::string failure;
        try {
            answer.response = http_request(config, "POST", target);
            if (!broker_unavailable(answer.response.status)) return answer;
            failure = http_error_message(answer.response.status, answer.response.body) + " (HTTP " +
                      std::to_string(answer.response.status) + ")";
        } catch (const ConnectionError& e) {
            answer.response = {};
            failure = e.what();
        }
        const auto delay = policy.next_delay(std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::steady_clock::now() - started));
        if (!delay) {
            if (answer.response.status != 0) return answer;
            throw ConnectionError((answer.retried ? "cancel " + command.job + ": giving up after " +
                                                        seconds_text(command.retry_for) + ": "
                                                  : "cancel " + command.job + ": ") +
                                  failure);
        }
        if (!answer.retried) {
            console.err << "[cannot cancel yet: " << failure << "; retrying for up to "
                        << seconds_text(command.retry_for) << "]\n"
                        << std::flush;
        }
        answer.retried = true;
        std::this_thread::sleep_for(*delay);
    }
}

// The job's state, or "" when it cannot be read.
std::string job_state(const Invocation& invocation, const std::string& job) {
    try {
        const auto response = http_request(transport_config(invocation), "GET", job_path(job));
        if (response.status != 200) return "";
        const auto value = parse_body(response);
        const auto* state = value.is_object() ? value.get_object().if_contains("state") : nullptr;
        return state && state->is_string() ? std::string(state->get_string()) : "";
    } catch (const ConnectionError&) {
        return "";
    }
}

ExitCode run(const Invocation& invocation, const CancelCommand& command, Console& console) {
    const auto [response, retried] = cancel_request(invocation, command, console);
    if (response.status == 202 || response.status == 200) {
        console.out << "cancel requested: " << command.job << '\n';
        return ExitCode::succeeded;
    }
    // A try whose answer was lost may have cancelled it already.
    if (response.status == 409 && retried && job_state(invocation, command.job) == "cancelled") {
        console.out << "cancelled: " << command.job << '\n';
        return ExitCode::succeeded;
    }
    if (response.status == 409) {
        console.err << "jobcast: cannot cancel " << command.job << ": "
                    << http_error_message(response.status, response.body) << '\n';
        return ExitCode::failed;
    }
    return report(console, response, "cancel " + command.job);
}

ExitCode run(const Invocation&, const TokenCommand& command, Console& console) {
    auth::MintOptions options;
    options.subject = command.subject;
    options.tenant = command.tenant;
    options.issuer = command.issuer;
    options.audience = command.audience;
    options.issued_at = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    options.ttl_seconds = command.ttl.count();
    if (options.ttl_seconds == 0) {
        console.err << "jobcast: warning: --ttl 0 mints a token without exp; brokers refuse it "
                       "unless run with --max-token-lifetime 0\n";
    }
    console.out << auth::mint_hs256(command.secret, options) << '\n';
    return ExitCode::succeeded;
}

ExitCode run(const Invocation&, const KeygenCommand& command, Console& console) {
    try {
        auto pair = curve::write_keypair(command.prefix);
        console.out << pair.public_key << '\n';
        console.err << "wrote " << command.prefix << ".key (secret) and " << command.prefix
                    << ".pub (public)\n";
        return ExitCode::succeeded;
    } catch (const std::invalid_argument& e) {
        console.err << "jobcast: keygen: " << e.what() << '\n';
        return ExitCode::usage;
    }
}

ExitCode run(const Invocation&, const ShowText& command, Console& console) {
    console.out << command.text;
    return ExitCode::succeeded;
}

}  // namespace

ExitCode run_command(const Invocation& invocation, Console& console) {
    if (invocation.url.tls && !tls_supported() &&
        !std::holds_alternative<ShowText>(invocation.command)) {
        console.err << "jobcast: this build has no TLS: use an http:// URL, or rebuild with "
                       "cmake -DJOBCAST_CLI_TLS=ON\n";
        return ExitCode::usage;
    }
    try {
        return std::visit([&](const auto& command) { return run(invocation, command, console); },
                          invocation.command);
    } catch (const UsageError& e) {
        console.err << "jobcast: " << e.what() << "\n(see jobcast --help)\n";
        return ExitCode::usage;
    } catch (const ConnectionError& e) {
        console.err << "jobcast: " << e.what() << '\n';
        return ExitCode::connection;
    } catch (const std::exception& e) {
        console.err << "jobcast: " << e.what() << '\n';
        return ExitCode::connection;
    }
}

}  // namespace jobcast::cli
