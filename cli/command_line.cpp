#include "cli/command_line.hpp"

#include <boost/program_options.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cli/errors.hpp"

namespace jobcast::cli {
namespace {

namespace po = boost::program_options;

constexpr const char* kOverview =
    "usage: jobcast [--url URL] [--token TOKEN] [--cacert FILE] COMMAND [ARGS...]\n"
    "\n"
    "Submit jobs to a jobcast broker and follow their output live.\n"
    "\n"
    "commands:\n"
    "  submit TYPE [key=value...] [--follow]   submit a job; prints its id, or with\n"
    "                                          --follow streams it like watch\n"
    "  watch ID [--after N]                    stream a job's output until it ends;\n"
    "                                          reconnects by itself if the connection drops\n"
    "  get ID                                  print a job as JSON\n"
    "  list [--state S] [--type T] [--limit N] list your jobs\n"
    "  cancel ID                               ask a job to stop\n"
    "  token --sub NAME --secret S [--ttl 1h]  mint a development HS256 token\n"
    "  keygen NAME                             write a CURVE keypair NAME.key, NAME.pub\n"
    "  help [COMMAND]                          this text, or a command's options\n"
    "\n"
    "Params: each key=value becomes a field of the job's params. A value that is\n"
    "valid JSON (50, true, null, [\"a\"], {\"k\":1}, \"quoted\") is that JSON value;\n"
    "anything else is a string:\n"
    "  jobcast submit llm.generate prompt=\"hello world\" max_tokens=50 --follow\n"
    "  jobcast submit exec command=sh args='[\"-c\",\"echo hi\"]'\n"
    "\n"
    "Exit codes: 0 success (watch: the job succeeded), 1 the job failed or the\n"
    "server refused the action, 2 usage error, 3 the job was cancelled,\n"
    "4 connection or HTTP error, 5 no such job, 130 Ctrl-C detached from a job\n"
    "(it goes on running: jobcast cancel ID stops it).\n";

po::options_description global_options() {
    po::options_description options("global options");
    // clang-format off
    options.add_options()
        ("url", po::value<std::string>(),
         "broker URL (default http://127.0.0.1:8080, or https://HOST:PORT) [JOBCAST_URL]")
        ("cacert", po::value<std::string>(),
         "https: trust this PEM CA or self-signed certificate instead of the system's "
         "[JOBCAST_CACERT]")
        ("token", po::value<std::string>(),
         "bearer token (JWT) for a broker with auth on [JOBCAST_TOKEN]")
        ("help,h", "show help (for a command: jobcast COMMAND --help)")
        ("version", "print the version");
    // clang-format on
    return options;
}

void add_stream_options(po::options_description& options) {
    // clang-format off
    options.add_options()
        ("json", po::bool_switch(), "print each event as one JSON line instead of rendering it")
        ("quiet,q", po::bool_switch(), "no state lines or connection notices on stderr")
        ("retry-for", po::value<std::string>()->default_value("60s"),
         "keep reconnecting for this long without a working connection (60s, 500ms, 2m; "
         "0 = never reconnect)");
    // clang-format on
}

StreamOptions stream_options(const po::variables_map& vm) {
    StreamOptions out;
    out.json = vm["json"].as<bool>();
    out.quiet = vm["quiet"].as<bool>();
    out.retry_for = parse_duration(vm["retry-for"].as<std::string>());
    return out;
}

struct CommandSpec {
    std::string usage;                // first lines of the command's help
    po::options_description visible;  // documented options
    po::options_description hidden;   // the positional arguments
    po::positional_options_description positional;
};

CommandSpec command_spec(const std::string& name) {
    CommandSpec spec{{}, po::options_description("options"), {}, {}};
    auto& o = spec.visible;
    // clang-format off
    if (name == "submit") {
        spec.usage =
            "usage: jobcast submit TYPE [key=value...] [options]\n\n"
            "Submits a job of TYPE (llm.generate, research, exec, ...) and prints its id.\n"
            "With --follow, streams it instead and exits with the job's outcome.\n";
        o.add_options()
            ("follow,f", po::bool_switch(), "stream the job's output until it ends (as watch)")
            ("priority", po::value<int>(), "higher runs first")
            ("max-attempts", po::value<int>(), "attempts before the job fails")
            ("idempotency-key", po::value<std::string>(),
             "submitting again with the same key returns the same job");
        add_stream_options(o);
        spec.hidden.add_options()
            ("type", po::value<std::string>())
            ("params", po::value<std::vector<std::string>>());
        spec.positional.add("type", 1).add("params", -1);
    } else if (name == "watch") {
        spec.usage =
            "usage: jobcast watch ID [--after N] [options]\n\n"
            "Streams the job's output until it ends; the exit code is its outcome\n"
            "(0 succeeded, 1 failed, 3 cancelled). Output (tokens, log lines) goes to\n"
            "stdout, state lines to stderr; a terminal shows a progress bar. If the\n"
            "connection drops, it reconnects and continues where it was. Ctrl-C only\n"
            "detaches (exit 130): the job goes on; jobcast cancel ID stops it.\n";
        o.add_options()
            ("after", po::value<std::uint64_t>()->default_value(0),
             "show only events after this seq (resume where you left off)");
        add_stream_options(o);
        spec.hidden.add_options()("job", po::value<std::string>());
        spec.positional.add("job", 1);
    } else if (name == "get") {
        spec.usage = "usage: jobcast get ID\n\nPrints the job as JSON.\n";
        spec.hidden.add_options()("job", po::value<std::string>());
        spec.positional.add("job", 1);
    } else if (name == "list") {
        spec.usage = "usage: jobcast list [options]\n\nLists your jobs, newest first.\n";
        o.add_options()
            ("state", po::value<std::string>(), "only jobs in this state "
             "(queued, running, succeeded, failed, cancelled)")
            ("type", po::value<std::string>(), "only jobs of this type")
            ("limit", po::value<int>(), "at most this many jobs")
            ("cursor", po::value<std::string>(), "the next page (printed after a full page)")
            ("json", po::bool_switch(), "print the server's JSON instead of a table");
    } else if (name == "cancel") {
        spec.usage =
            "usage: jobcast cancel ID [--retry-for 60s]\n\n"
            "Asks the job to stop; its worker stops it and its output so far stays\n"
            "readable. While the broker cannot be reached or answers 429/502/503/504\n"
            "(a restart), it tries again until --retry-for has passed. Exits 0 when\n"
            "the request is accepted, 1 when the job already finished, 5 when there\n"
            "is no such job. (Ctrl-C on watch only detaches.)\n";
        o.add_options()
            ("retry-for", po::value<std::string>()->default_value("60s"),
             "keep trying this long while the broker cannot be reached (60s, 500ms, 2m; "
             "0 = once)");
        spec.hidden.add_options()("job", po::value<std::string>());
        spec.positional.add("job", 1);
    } else if (name == "token") {
        spec.usage =
            "usage: jobcast token --sub NAME (--secret S | --secret-file F) [options]\n\n"
            "Prints an HS256 JWT for a broker started with the same --jwt-secret, for\n"
            "development and tests (production tokens come from your identity provider):\n"
            "  export JOBCAST_TOKEN=$(jobcast token --sub alice --secret \"$SECRET\")\n";
        o.add_options()
            ("sub", po::value<std::string>(), "the subject: the owner of the jobs")
            ("secret", po::value<std::string>(), "the broker's --jwt-secret [JOBCAST_JWT_SECRET]")
            ("secret-file", po::value<std::string>(), "read the secret from this file")
            ("tenant", po::value<std::string>(), "tenant claim (owner becomes TENANT/SUB)")
            ("issuer", po::value<std::string>(), "iss claim")
            ("audience", po::value<std::string>(), "aud claim")
            ("ttl", po::value<std::string>()->default_value("1h"),
             "lifetime (90s, 30m, 12h, 7d; at most 3650d; 0: never expires, which brokers "
             "refuse unless run with --max-token-lifetime 0)");
    } else if (name == "keygen") {
        spec.usage =
            "usage: jobcast keygen NAME\n\n"
            "Writes a ZeroMQ CURVE keypair: NAME.key (secret, mode 0600) and NAME.pub (public),\n"
            "and prints the public key. The broker takes its NAME.key with\n"
            "--curve-secret-key-file and the workers' .pub files with --curve-allow; a worker\n"
            "takes its NAME.key with --curve-secret-key-file and the broker's .pub with\n"
            "--curve-server-key. Existing files are never overwritten.\n";
        spec.hidden.add_options()("prefix", po::value<std::string>());
        spec.positional.add("prefix", 1);
    } else {
        throw UsageError("unknown command '" + name + "'");
    }
    o.add_options()("help,h", "show this help");
    // clang-format on
    return spec;
}

std::string command_help(const std::string& name) {
    const auto spec = command_spec(name);
    std::ostringstream out;
    out << spec.usage << '\n' << spec.visible;
    return out.str();
}

std::string required_job(const po::variables_map& vm, const std::string& command) {
    if (!vm.count("job") || vm["job"].as<std::string>().empty()) {
        throw UsageError(command + ": missing the job ID");
    }
    return vm["job"].as<std::string>();
}

std::chrono::seconds parse_ttl(const std::string& text) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
        ++digits;
    const auto unit = text.substr(digits);
    const std::int64_t scale = unit.empty() || unit == "s" ? 1
                               : unit == "m"               ? 60
                               : unit == "h"               ? 3600
                               : unit == "d"               ? 86400
                                                           : 0;
    if (digits == 0 || digits > 9 || scale == 0) {
        throw UsageError("token: invalid --ttl '" + text + "' (examples: 90s, 30m, 12h, 7d, 0)");
    }
    // At most 9 digits times a day fits an int64 many times over.
    const std::int64_t seconds = std::stoll(text.substr(0, digits)) * scale;
    if (seconds > kMaxTokenTtl.count()) {
        throw UsageError("token: --ttl '" + text +
                         "' is longer than the maximum of 3650d (10 years)");
    }
    return std::chrono::seconds(seconds);
}

TokenCommand token_command(const po::variables_map& vm, const Environment& env) {
    TokenCommand c;
    if (!vm.count("sub") || vm["sub"].as<std::string>().empty()) {
        throw UsageError("token: missing --sub NAME");
    }
    c.subject = vm["sub"].as<std::string>();
    if (vm.count("secret") && vm.count("secret-file")) {
        throw UsageError("token: give --secret or --secret-file, not both");
    }
    if (vm.count("secret")) {
        c.secret = vm["secret"].as<std::string>();
    } else if (vm.count("secret-file")) {
        std::ifstream in(vm["secret-file"].as<std::string>(), std::ios::binary);
        if (!in) throw UsageError("token: cannot read " + vm["secret-file"].as<std::string>());
        std::ostringstream text;
        text << in.rdbuf();
        c.secret = text.str();
        while (!c.secret.empty() && (c.secret.back() == '\n' || c.secret.back() == '\r'))
            c.secret.pop_back();
    } else if (auto from_env = env("JOBCAST_JWT_SECRET")) {
        c.secret = *from_env;
    }
    if (c.secret.empty()) {
        throw UsageError("token: missing --secret (or --secret-file, or JOBCAST_JWT_SECRET)");
    }
    if (vm.count("tenant")) c.tenant = vm["tenant"].as<std::string>();
    if (vm.count("issuer")) c.issuer = vm["issuer"].as<std::string>();
    if (vm.count("audience")) c.audience = vm["audience"].as<std::string>();
    c.ttl = parse_ttl(vm["ttl"].as<std::string>());
    return c;
}

Command parse_command(const std::string& name, const std::vector<std::string>& arguments,
                      const Environment& env) {
    auto spec = command_spec(name);
    po::options_description all;
    all.add(spec.visible).add(spec.hidden);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(arguments).options(all).positional(spec.positional).run(),
                  vm);
        po::notify(vm);
    } catch (const po::too_many_positional_options_error&) {
        throw UsageError(name + ": too many arguments");
    } catch (const po::error& e) {
        throw UsageError(name + ": " + e.what());
    }
    if (vm.count("help")) return ShowText{command_help(name)};

    if (name == "submit") {
        SubmitCommand c;
        if (!vm.count("type")) throw UsageError("submit: missing the job TYPE");
        c.type = vm["type"].as<std::string>();
        if (vm.count("params")) c.params = vm["params"].as<std::vector<std::string>>();
        if (vm.count("priority")) c.priority = vm["priority"].as<int>();
        if (vm.count("max-attempts")) c.max_attempts = vm["max-attempts"].as<int>();
        if (vm.count("idempotency-key"))
            c.idempotency_key = vm["idempotency-key"].as<std::string>();
        c.follow = vm["follow"].as<bool>();
        c.stream = stream_options(vm);
        c.json = c.stream.json;
        return c;
    }
    if (name == "watch") {
        return WatchCommand{required_job(vm, name), vm["after"].as<std::uint64_t>(),
                            stream_options(vm)};
    }
    if (name == "get") return GetCommand{required_job(vm, name)};
    if (name == "cancel") {
        return CancelCommand{required_job(vm, name),
                             parse_duration(vm["retry-for"].as<std::string>())};
    }
    if (name == "token") return token_command(vm, env);
    if (name == "keygen") {
        if (!vm.count("prefix") || vm["prefix"].as<std::string>().empty()) {
            throw UsageError("keygen: missing NAME (writes NAME.key and NAME.pub)");
        }
        return KeygenCommand{vm["prefix"].as<std::string>()};
    }
    ListCommand c;
    if (vm.count("state")) c.state = vm["state"].as<std::string>();
    if (vm.count("type")) c.type = vm["type"].as<std::string>();
    if (vm.count("limit")) {
        c.limit = vm["limit"].as<int>();
        if (*c.limit < 1) throw UsageError("list: --limit must be at least 1");
    }
    if (vm.count("cursor")) c.cursor = vm["cursor"].as<std::string>();
    c.json = vm["json"].as<bool>();
    return c;
}

}  // namespace

Environment process_environment() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* value = std::getenv(name.c_str());
        if (value == nullptr) return std::nullopt;
        return std::string(value);
    };
}

std::chrono::milliseconds parse_duration(const std::string& text) {
    std::size_t digits = 0;
    while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9')
        ++digits;
    const auto unit = text.substr(digits);
    if (digits == 0 || digits > 9 ||
        !(unit.empty() || unit == "s" || unit == "ms" || unit == "m")) {
        throw UsageError("invalid duration '" + text + "' (examples: 60, 90s, 500ms, 2m)");
    }
    const std::chrono::milliseconds::rep number = std::stoll(text.substr(0, digits));
    if (unit == "ms") return std::chrono::milliseconds{number};
    if (unit == "m") return std::chrono::minutes{number};
    return std::chrono::seconds{number};
}

std::string general_help() {
    std::ostringstream out;
    out << kOverview << "\n" << global_options();
    return out.str();
}

Invocation parse_command_line(const std::vector<std::string>& arguments, const Environment& env) {
    // First pass: the global options wherever they are; the command name is the
    // first positional and everything else is left for the command's parser.
    auto global = global_options();
    po::options_description all;
    all.add(global);
    all.add_options()("command", po::value<std::string>())("arguments",
                                                           po::value<std::vector<std::string>>());
    po::positional_options_description positional;
    positional.add("command", 1).add("arguments", -1);

    po::variables_map vm;
    po::parsed_options parsed(nullptr);
    try {
        parsed = po::command_line_parser(arguments)
                     .options(all)
                     .positional(positional)
                     .allow_unregistered()
                     .run();
        po::store(parsed, vm);
        po::notify(vm);
    } catch (const po::error& e) {
        throw UsageError(e.what());
    }

    Invocation invocation;
    const std::string command = vm.count("command") ? vm["command"].as<std::string>() : "";
    // The command's own arguments, in their order: unknown options (and the
    // values after them, which this pass took for positionals) and positionals.
    std::vector<std::string> rest;
    for (const auto& option : parsed.options) {
        if (option.string_key == "command") continue;
        if (option.unregistered || option.string_key == "arguments") {
            rest.insert(rest.end(), option.original_tokens.begin(), option.original_tokens.end());
        }
    }

    if (vm.count("version")) {
        invocation.command = ShowText{"jobcast " JOBCAST_VERSION "\n"};
    } else if (command == "help") {
        invocation.command = ShowText{rest.empty() ? general_help() : command_help(rest.front())};
    } else if (command.empty()) {
        if (!vm.count("help")) throw UsageError("missing COMMAND");
        invocation.command = ShowText{general_help()};
    } else if (vm.count("help")) {
        invocation.command = ShowText{command_help(command)};
    } else {
        invocation.command = parse_command(command, rest, env);
    }

    std::string url(kDefaultUrl);
    if (vm.count("url")) {
        url = vm["url"].as<std::string>();
    } else if (auto from_env = env("JOBCAST_URL"); from_env && !from_env->empty()) {
        url = *from_env;
    }
    const auto parsed_url = parse_server_url(url);
    if (!parsed_url) {
        throw UsageError("invalid URL '" + url + "' (expected http://HOST:PORT or https://...)");
    }
    invocation.url = *parsed_url;
    if (vm.count("token")) {
        invocation.token = vm["token"].as<std::string>();
    } else if (auto from_env = env("JOBCAST_TOKEN")) {
        invocation.token = *from_env;
    }
    if (vm.count("cacert")) {
        invocation.ca_file = vm["cacert"].as<std::string>();
    } else if (auto from_env = env("JOBCAST_CACERT"); from_env && !from_env->empty()) {
        invocation.ca_file = *from_env;
    }
    return invocation;
}

}  // namespace jobcast::cli
