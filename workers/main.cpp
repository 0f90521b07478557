// jobcast-worker: serves the shipped job types (llm.generate, research, exec)
// for a jobcast broker. Every flag has a JOBCAST_* environment variable; a flag
// on the command line wins over the environment.
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/program_options.hpp>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "common/curve_keys.hpp"
#include "common/logging.hpp"
#include "workers/jobs/jobs.hpp"
#include "workers/log.hpp"
#include "workers/metrics_exporter.hpp"
#include "workers/worker.hpp"

namespace po = boost::program_options;
namespace wk = jobcast::worker;

namespace {

const std::map<std::string, std::string> kEnvironment = {
    {"JOBCAST_BROKER", "broker"},
    {"JOBCAST_TYPES", "types"},
    {"JOBCAST_CAPACITY", "capacity"},
    {"JOBCAST_WORKER_NAME", "name"},
    {"JOBCAST_EXEC_ALLOW", "exec-allow"},
    {"JOBCAST_OPENAI_BASE_URL", "openai-base-url"},
    {"JOBCAST_OPENAI_MODEL", "openai-model"},
    {"JOBCAST_OPENAI_API_KEY", "openai-api-key"},
    {"JOBCAST_MAX_UNACKED_BYTES", "max-unacked-bytes"},
    {"JOBCAST_WORKER_METRICS", "metrics-port"},
    {"JOBCAST_CURVE_SERVER_KEY", "curve-server-key"},
    {"JOBCAST_CURVE_SECRET_KEY_FILE", "curve-secret-key-file"},
    {"JOBCAST_LOG_LEVEL", "log-level"},
    {"JOBCAST_LOG_FORMAT", "log-format"},
};

std::vector<std::string> split_list(const std::string& text) {
    std::vector<std::string> items;
    std::stringstream stream(text);
    std::string item;
    while (std::getline(stream, item, ',')) {
        const auto first = item.find_first_not_of(" \t");
        const auto last = item.find_last_not_of(" \t");
        if (first != std::string::npos) items.push_back(item.substr(first, last - first + 1));
    }
    return items;
}

// Read by the signal handler: a lock-free atomic pointer.
std::atomic<wk::Worker*> g_worker{nullptr};
std::atomic<std::int64_t> g_first_signal_ns{0};

std::int64_t monotonic_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
    return std::int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec;
}

void on_signal(int) {
    // First signal: graceful stop. Another one a second later: the operator
    // insists. (Supervisors such as timeout(1) often signal the process and its
    // group at once; those duplicates must not turn a graceful stop into a kill.)
    std::int64_t expected = 0;
    const auto now = monotonic_ns();
    if (!g_first_signal_ns.compare_exchange_strong(expected, now)) {
        if (now - expected > 1'000'000'000) _exit(130);
        return;
    }
    if (auto* worker = g_worker.load()) worker->stop();
}

}  // namespace

int main(int argc, char** argv) {
    po::options_description options(
        "jobcast-worker: runs jobs for a jobcast broker.\n"
        "Each option can also be set with the environment variable in brackets;\n"
        "the command line wins. Options");
    // clang-format off
    options.add_options()
        ("help,h", "print this help and exit")
        ("version", "print the version and exit")
        ("broker", po::value<std::string>()->default_value("tcp://127.0.0.1:5555"),
         "broker ZeroMQ endpoint, or a comma-separated list of them (cluster mode: each "
         "reconnect fails over to the next) [JOBCAST_BROKER]")
        ("types", po::value<std::string>()->default_value("llm.generate,research"),
         "comma-separated job types to serve: llm.generate, research, exec [JOBCAST_TYPES]")
        ("capacity", po::value<int>()->default_value(4),
         "jobs run at the same time [JOBCAST_CAPACITY]")
        ("name", po::value<std::string>()->default_value(""),
         "worker name shown in job state (default: hostname-pid) [JOBCAST_WORKER_NAME]")
        ("exec-allow", po::value<std::string>()->default_value(""),
         "comma-separated commands the exec type may run: bare names (looked up in PATH) or "
         "absolute paths, matched exactly; empty refuses every exec job [JOBCAST_EXEC_ALLOW]")
        ("openai-base-url", po::value<std::string>()->default_value("https://api.openai.com"),
         "OpenAI-compatible endpoint for llm.generate with backend \"openai\" "
         "[JOBCAST_OPENAI_BASE_URL]")
        ("openai-model", po::value<std::string>()->default_value("gpt-4o-mini"),
         "model name sent to that endpoint (params.model overrides) [JOBCAST_OPENAI_MODEL]")
        ("openai-api-key", po::value<std::string>()->default_value(""),
         "bearer token for that endpoint [JOBCAST_OPENAI_API_KEY]")
        ("max-unacked-bytes", po::value<std::size_t>()->default_value(std::size_t{8} << 20),
         "output waiting for broker acks before handlers block [JOBCAST_MAX_UNACKED_BYTES]")
        ("metrics-port", po::value<std::string>()->default_value(""),
         "serve Prometheus metrics at /metrics on PORT (loopback) or HOST:PORT; empty: off "
         "[JOBCAST_WORKER_METRICS]")
        ("curve-server-key", po::value<std::string>()->default_value(""),
         "the broker's CURVE public key (Z85) or its .pub file; turns on CURVE "
         "[JOBCAST_CURVE_SERVER_KEY]")
        ("curve-secret-key-file", po::value<std::string>()->default_value(""),
         "this worker's CURVE secret key file (jobcast keygen); its public key must be in the "
         "broker's --curve-allow [JOBCAST_CURVE_SECRET_KEY_FILE]")
        ("log-level", po::value<std::string>()->default_value("info"),
         "trace, debug, info, warn, error [JOBCAST_LOG_LEVEL]")
        ("log-format", po::value<std::string>()->default_value("text"),
         "text or json [JOBCAST_LOG_FORMAT]");
    // clang-format on

    po::variables_map vm;
    try {
        po::store(po::parse_command_line(argc, argv, options), vm);
        po::store(po::parse_environment(options,
                                        [](const std::string& variable) -> std::string {
                                            const auto it = kEnvironment.find(variable);
                                            return it == kEnvironment.end() ? "" : it->second;
                                        }),
                  vm);
        po::notify(vm);
    } catch (const po::error& e) {
        std::cerr << "jobcast-worker: " << e.what() << "\n(see --help)\n";
        return 2;
    }
    if (vm.count("help")) {
        std::cout << options << "\n";
        return 0;
    }
    if (vm.count("version")) {
        std::cout << "jobcast-worker " << JOBCAST_VERSION << "\n";
        return 0;
    }

    try {
        jobcast::configure_logging(vm["log-level"].as<std::string>(),
                                   vm["log-format"].as<std::string>());
    } catch (const std::exception& e) {
        std::cerr << "jobcast-worker: " << e.what() << "\n";
        return 2;
    }
    const auto log = wk::worker_logger();

    wk::WorkerConfig config;
    config.brokers = split_list(vm["broker"].as<std::string>());
    if (config.brokers.empty()) {
        std::cerr << "jobcast-worker: --broker is empty\n";
        return 2;
    }
    config.name = vm["name"].as<std::string>();
    config.capacity = vm["capacity"].as<int>();
    config.max_unacked_bytes = vm["max-unacked-bytes"].as<std::size_t>();
    config.types = split_list(vm["types"].as<std::string>());
    const auto& server_key = vm["curve-server-key"].as<std::string>();
    const auto& secret_file = vm["curve-secret-key-file"].as<std::string>();
    if (server_key.empty() != secret_file.empty()) {
        std::cerr << "jobcast-worker: CURVE needs both --curve-server-key and "
                     "--curve-secret-key-file\n";
        return 2;
    }
    if (!server_key.empty()) {
        try {
            config.curve_server_key = jobcast::curve::key_or_file(server_key);
            config.curve_secret_key = jobcast::curve::read_key(secret_file);
            config.curve_public_key = jobcast::curve::public_key_of(config.curve_secret_key);
        } catch (const std::exception& e) {
            std::cerr << "jobcast-worker: " << e.what() << "\n";
            return 2;
        }
    }

    const std::set<std::string> known = {std::string(wk::jobs::kLlmGenerate),
                                         std::string(wk::jobs::kResearch),
                                         std::string(wk::jobs::kExec)};
    if (config.types.empty()) {
        std::cerr << "jobcast-worker: --types is empty\n";
        return 2;
    }
    for (const auto& type : config.types) {
        if (!known.contains(type)) {
            std::cerr << "jobcast-worker: unknown job type '" << type
                      << "' in --types (known: llm.generate, research, exec)\n";
            return 2;
        }
    }

    wk::jobs::LlmOptions llm;
    llm.openai.base_url = vm["openai-base-url"].as<std::string>();
    llm.openai.model = vm["openai-model"].as<std::string>();
    llm.openai.api_key = vm["openai-api-key"].as<std::string>();
    wk::jobs::ExecOptions exec;
    exec.allow = split_list(vm["exec-allow"].as<std::string>());
    for (const auto& entry : exec.allow) {
        if (entry.find('/') != std::string::npos && entry.front() != '/') {
            std::cerr << "jobcast-worker: --exec-allow entry '" << entry
                      << "' must be a bare command name or an absolute path\n";
            return 2;
        }
    }

    try {
        wk::Worker worker(config);
        for (const auto& type : config.types) {
            if (type == wk::jobs::kLlmGenerate) {
                worker.handle(type, wk::jobs::llm_handler(llm),
                              std::string(wk::jobs::llm_params_schema()));
            }
            if (type == wk::jobs::kResearch) {
                worker.handle(type, wk::jobs::research_handler(),
                              std::string(wk::jobs::research_params_schema()));
            }
            if (type == wk::jobs::kExec) {
                worker.handle(type, wk::jobs::exec_handler(exec),
                              std::string(wk::jobs::exec_params_schema()));
            }
        }
        if (std::find(config.types.begin(), config.types.end(), wk::jobs::kExec) !=
            config.types.end()) {
            if (exec.allow.empty()) {
                log->warn("exec type served with an empty --exec-allow: every exec job will fail");
            } else {
                log->info("exec allow-list commands={}", vm["exec-allow"].as<std::string>());
            }
        }

        std::unique_ptr<wk::MetricsExporter> metrics;
        if (const auto& listen = vm["metrics-port"].as<std::string>(); !listen.empty()) {
            metrics = std::make_unique<wk::MetricsExporter>(worker, listen);
            log->info("metrics listening port={}", metrics->port());
        }

        g_worker.store(&worker);
        struct sigaction action {};
        action.sa_handler = on_signal;
        sigemptyset(&action.sa_mask);
        sigaction(SIGINT, &action, nullptr);
        sigaction(SIGTERM, &action, nullptr);
        signal(SIGPIPE, SIG_IGN);

        worker.run();
        g_worker.store(nullptr);
    } catch (const std::exception& e) {
        g_worker.store(nullptr);
        log->error("fatal: {}", e.what());
        std::cerr << "jobcast-worker: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
