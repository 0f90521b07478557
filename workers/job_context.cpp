#include "workers/job_context.hpp"

#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <charconv>
#include <cmath>

#include "workers/text.hpp"

namespace jobcast::worker {

struct JobContext::Params {
    boost::json::object object;
};

namespace {

void append_double(std::string& out, double value) {
    char buffer[32];
    const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
    if (ec == std::errc{}) {
        out.append(buffer, end);
    } else {
        out += '0';
    }
}

// Checks that a text is one JSON object, building nothing (no allocation per
// event): the checks of boost::json::parse with its default options (depth
// 32, valid UTF-8 and surrogate escapes, nothing after the value).
struct ObjectCheck {
    using error_code = boost::json::error_code;
    using string_view = boost::json::string_view;
    static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
    static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

    bool started = false;
    bool object = false;  // the top-level value is an object

    bool value() {
        if (!started) started = true;
        return true;
    }
    bool on_document_begin(error_code&) { return true; }
    bool on_document_end(error_code&) { return true; }
    bool on_object_begin(error_code&) {
        if (!started) object = true;
        return value();
    }
    bool on_object_end(std::size_t, error_code&) { return true; }
    bool on_array_begin(error_code&) { return value(); }
    bool on_array_end(std::size_t, error_code&) { return true; }
    bool on_key_part(string_view, std::size_t, error_code&) { return true; }
    bool on_key(string_view, std::size_t, error_code&) { return true; }
    bool on_string_part(string_view, std::size_t, error_code&) { return value(); }
    bool on_string(string_view, std::size_t, error_code&) { return value(); }
    bool on_number_part(string_view, error_code&) { return value(); }
    bool on_int64(std::int64_t, string_view, error_code&) { return value(); }
    bool on_uint64(std::uint64_t, string_view, error_code&) { return value(); }
    bool on_double(double, string_view, error_code&) { return value(); }
    bool on_bool(bool, error_code&) { return value(); }
    bool on_null(error_code&) { return value(); }
    bool on_comment_part(string_view, error_code&) { return true; }
    bool on_comment(string_view, error_code&) { return true; }
};

bool is_json_object(std::string_view text) {
    boost::json::basic_parser<ObjectCheck> parser(boost::json::parse_options{});
    boost::json::error_code ec;
    const auto used = parser.write_some(false, text.data(), text.size(), ec);
    return !ec && used == text.size() && parser.handler().object;
}

[[noreturn]] void wrong_type(std::string_view key, std::string_view expected) {
    throw Failure("param '" + std::string(key) + "' must be " + std::string(expected), false);
}

}  // namespace

JobContext::JobContext(JobSpec spec, JobSink& sink) : spec_(std::move(spec)), sink_(sink) {
    auto params = std::make_unique<Params>();
    boost::system::error_code ec;
    auto value = boost::json::parse(spec_.params, ec);
    // The broker validated the params; anything else is treated as no params.
    if (!ec && value.is_object()) params->object = std::move(value.as_object());
    parsed_ = std::move(params);
    scratch_.reserve(128);
}

JobContext::~JobContext() = default;

bool JobContext::has_param(std::string_view key) const {
    const auto* value = parsed_->object.if_contains(key);
    return value != nullptr && !value->is_null();
}

std::string JobContext::param_string(std::string_view key, std::string_view fallback) const {
    const auto* value = parsed_->object.if_contains(key);
    if (value == nullptr || value->is_null()) return std::string(fallback);
    if (!value->is_string()) wrong_type(key, "a string");
    return std::string(value->get_string());
}

std::int64_t JobContext::param_int(std::string_view key, std::int64_t fallback) const {
    const auto* value = parsed_->object.if_contains(key);
    if (value == nullptr || value->is_null()) return fallback;
    if (value->is_int64()) return value->get_int64();
    if (value->is_uint64()) {
        if (value->get_uint64() > static_cast<std::uint64_t>(INT64_MAX)) {
            wrong_type(key, "an integer in 64-bit range");
        }
        return static_cast<std::int64_t>(value->get_uint64());
    }
    if (value->is_double()) {
        const double d = value->get_double();
        if (std::trunc(d) == d && d >= -9.2e18 && d <= 9.2e18) return static_cast<std::int64_t>(d);
    }
    wrong_type(key, "an integer");
}

double JobContext::param_double(std::string_view key, double fallback) const {
    const auto* value = parsed_->object.if_contains(key);
    if (value == nullptr || value->is_null()) return fallback;
    if (value->is_double()) return value->get_double();
    if (value->is_int64()) return static_cast<double>(value->get_int64());
    if (value->is_uint64()) return static_cast<double>(value->get_uint64());
    wrong_type(key, "a number");
}

bool JobContext::param_bool(std::string_view key, bool fallback) const {
    const auto* value = parsed_->object.if_contains(key);
    if (value == nullptr || value->is_null()) return fallback;
    if (!value->is_bool()) wrong_type(key, "true or false");
    return value->get_bool();
}

std::vector<std::string> JobContext::param_strings(std::string_view key,
                                                   std::vector<std::string> fallback) const {
    const auto* value = parsed_->object.if_contains(key);
    if (value == nullptr || value->is_null()) return fallback;
    if (!value->is_array()) wrong_type(key, "an array of strings");
    std::vector<std::string> out;
    out.reserve(value->get_array().size());
    for (const auto& element : value->get_array()) {
        if (!element.is_string()) wrong_type(key, "an array of strings");
        out.emplace_back(element.get_string());
    }
    return out;
}

void JobContext::token(std::string_view text) {
    scratch_.clear();
    scratch_ += "{\"text\":";
    append_json_string(scratch_, text);
    scratch_ += '}';
    sink_.emit(EventKind::token, scratch_);
}

void JobContext::progress(double fraction, std::string_view stage, std::string_view message) {
    if (!(fraction >= 0.0)) fraction = 0.0;  // also catches NaN
    if (fraction > 1.0) fraction = 1.0;
    scratch_.clear();
    scratch_ += "{\"fraction\":";
    append_double(scratch_, fraction);
    if (!stage.empty()) {
        scratch_ += ",\"stage\":";
        append_json_string(scratch_, stage);
    }
    if (!message.empty()) {
        scratch_ += ",\"message\":";
        append_json_string(scratch_, message);
    }
    scratch_ += '}';
    sink_.emit(EventKind::progress, scratch_);
}

void JobContext::log(std::string_view level, std::string_view message) {
    scratch_.clear();
    scratch_ += "{\"level\":";
    append_json_string(scratch_, level);
    scratch_ += ",\"message\":";
    append_json_string(scratch_, message);
    scratch_ += '}';
    sink_.emit(EventKind::log, scratch_);
}

void JobContext::emit(EventKind kind, std::string_view data_json) {
    if (kind != EventKind::progress && kind != EventKind::token && kind != EventKind::log) {
        throw std::invalid_argument("a worker emits only progress, token and log events");
    }
    if (!is_json_object(data_json)) throw std::invalid_argument("event data must be a JSON object");
    // Boost.JSON's parser rejects invalid UTF-8 (and unpaired surrogate
    // escapes), so text that parsed is safe to send as is.
    scratch_.assign(data_json);
    sink_.emit(kind, scratch_);
}

void JobContext::save_checkpoint(std::string_view bytes) {
    sink_.save_checkpoint(bytes);
}

bool JobContext::wait_cancelled_for(std::chrono::nanoseconds timeout) {
    return wait_cancelled_until(
        std::chrono::steady_clock::now() +
        std::chrono::duration_cast<std::chrono::steady_clock::duration>(timeout));
}

bool JobContext::wait_cancelled_until(std::chrono::steady_clock::time_point deadline) {
    if (cancelled()) return true;
    std::unique_lock lock(cancel_mutex_);
    cancel_cv_.wait_until(lock, deadline, [&] { return cancelled(); });
    return cancelled();
}

void JobContext::request_cancel() {
    {
        std::lock_guard lock(cancel_mutex_);
        cancelled_.store(true, std::memory_order_release);
    }
    cancel_cv_.notify_all();
}

JobOutcome invoke_handler(const Handler& handler, JobContext& context) noexcept {
    try {
        if (!handler) return Failure("no handler for job type '" + context.type() + "'", false);
        return handler(context);
    } catch (const Failure& failure) {
        return failure;
    } catch (const std::exception& e) {
        return Failure(e.what(), true);
    } catch (...) {
        return Failure("handler threw a non-standard exception", true);
    }
}

}  // namespace jobcast::worker
