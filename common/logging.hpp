// One named spdlog logger per module ("gateway", "store", "web", ...). They
// share the process-wide level and pattern that main() sets.
#pragma once

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "common/log_quote.hpp"

namespace jobcast {

namespace detail {
// The message as the inside of a JSON string literal, for --log-format json:
// quotes, backslashes and control characters escaped, invalid UTF-8 bytes as
// the text \xNN (so the line stays valid JSON).
class JsonEscapedMessage : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        append_log_escaped(dest, std::string_view(msg.payload.data(), msg.payload.size()),
                           LogEscape::json, true);
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<JsonEscapedMessage>();
    }
};

// The message for the text format: control characters, U+2028/U+2029 and
// invalid UTF-8 escaped as log_quote does, so one record is always one line
// whatever a call site printed. Quotes are left alone (log_quote put them).
class TextEscapedMessage : public spdlog::custom_flag_formatter {
  public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        append_log_escaped(dest, std::string_view(msg.payload.data(), msg.payload.size()),
                           LogEscape::text, false);
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<TextEscapedMessage>();
    }
};
}  // namespace detail

inline std::shared_ptr<spdlog::logger> module_logger(const std::string& name) {
    if (auto existing = spdlog::get(name)) return existing;
    try {
        return spdlog::stderr_color_mt(name);
    } catch (const spdlog::spdlog_ex&) {  // another thread registered it first
        return spdlog::get(name);
    }
}

// Sets the level ("trace".."error") and the format ("text": key=value
// lines; "json": one JSON object per line) of every module logger, present
// and future. Throws std::invalid_argument for an unknown level.
inline void configure_logging(const std::string& level, const std::string& format) {
    auto lvl = spdlog::level::from_str(level);
    if (lvl == spdlog::level::off && level != "off") {
        throw std::invalid_argument("unknown log level '" + level + "'");
    }
    spdlog::set_level(lvl);
    if (format == "json") {
        auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc,
                                                                     std::string("\n"));
        formatter->add_flag<detail::JsonEscapedMessage>('*').set_pattern(
            R"({"ts":"%Y-%m-%dT%H:%M:%S.%fZ","level":"%l","logger":"%n","msg":"%*"})");
        spdlog::set_formatter(std::move(formatter));
    } else {
        auto formatter = std::make_unique<spdlog::pattern_formatter>();
        formatter->add_flag<detail::TextEscapedMessage>('*').set_pattern(
            "%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n %*");
        spdlog::set_formatter(std::move(formatter));
    }
}

}  // namespace jobcast
