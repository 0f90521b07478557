#include "cli/renderer.hpp"

#include <algorithm>
#include <cmath>

namespace jobcast::cli {
namespace {

namespace json = boost::json;

constexpr std::string_view kEraseLine = "\r\033[K";
constexpr int kBarCells = 24;

std::string string_field(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    if (value == nullptr || !value->is_string()) return {};
    return std::string(value->get_string());
}

double number_field(const json::object& object, std::string_view key) {
    const auto* value = object.if_contains(key);
    if (value == nullptr || !value->is_number()) return 0;
    return value->to_number<double>();
}

int percent(double fraction) {
    if (!(fraction > 0)) return 0;  // also NaN
    if (fraction >= 1) return 100;
    // Floor, so that 100% means finished; the epsilon keeps 0.29 from showing 28%.
    return std::clamp(static_cast<int>(std::floor(fraction * 100 + 1e-9)), 0, 99);
}

// A value for a key=value line: quoted when it has spaces or quotes in it.
std::string line_value(std::string_view text) {
    if (!text.empty() && text.find_first_of(" \t\"") == std::string_view::npos) {
        return std::string(text);
    }
    std::string out = "\"";
    for (const char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out + "\"";
}

}  // namespace

Renderer::Renderer(RenderOptions options, std::ostream& out, std::ostream& err)
    : options_(std::move(options)), out_(out), err_(err) {}

void Renderer::render(const StreamEvent& event) {
    if (options_.json) {
        out_ << event_json_line(options_.job, event) << '\n';
        out_.flush();
        return;
    }
    if (event.kind == "token") return token(event.data);
    if (event.kind == "log") return log(event.data);
    if (event.kind == "progress") return progress(event.data);
    if (event.kind == "state") return state(event.data);
    if (event.kind == "error") return error_event(event.data);
    // "result" adds nothing to what the stream already showed; unknown kinds
    // (added after v1) are skipped.
}

void Renderer::notice(std::string_view text) {
    if (!options_.quiet) line_to_err(text);
}

void Renderer::error(std::string_view text) {
    line_to_err(text);
}

void Renderer::finish() {
    progress_.reset();
    clear_bar();
    if (options_.terminal && line_open_) {
        out_ << '\n';
        line_open_ = false;
    }
    out_.flush();
}

void Renderer::token(const json::object& data) {
    const auto text = string_field(data, "text");
    if (text.empty()) return;
    clear_bar();
    out_ << text;
    line_open_ = text.back() != '\n';
    // A pipe is block-buffered: the reader should see each token as it comes.
    out_.flush();
}

void Renderer::log(const json::object& data) {
    const auto message = string_field(data, "message");
    if (string_field(data, "level") == "error") {
        line_to_err(message);
    } else {
        line_to_out(message);
    }
}

void Renderer::progress(const json::object& data) {
    Progress next{number_field(data, "fraction"), string_field(data, "stage"),
                  string_field(data, "message")};
    if (!options_.terminal) {
        line_to_out(progress_line(next.fraction, next.stage));
        return;
    }
    progress_ = std::move(next);
    clear_bar();
    draw_bar();
    out_.flush();
}

void Renderer::state(const json::object& data) {
    const auto line = state_line(data, last_error_);
    if (terminal_outcome(StreamEvent{0, "state", 0, data})) progress_.reset();
    if (!line.empty() && !options_.quiet) line_to_err(line);
}

void Renderer::error_event(const json::object& data) {
    last_error_ = string_field(data, "message");
    line_to_err("error: " + last_error_);
}

void Renderer::line_to_out(std::string_view line) {
    clear_bar();
    if (line_open_) {
        out_ << '\n';  // a line of its own, not glued to streamed text
        line_open_ = false;
    }
    out_ << line << '\n';
    draw_bar();
    out_.flush();
}

void Renderer::line_to_err(std::string_view line) {
    clear_bar();
    if (options_.terminal && line_open_) {
        // Same screen: start the stderr line on a line of its own.
        out_ << '\n';
        line_open_ = false;
    }
    out_.flush();  // what stdout already has comes first on the screen
    err_ << line << '\n';
    err_.flush();
    draw_bar();
    out_.flush();
}

void Renderer::clear_bar() {
    if (!bar_shown_) return;
    out_ << kEraseLine;
    bar_shown_ = false;
}

void Renderer::draw_bar() {
    // Only at the start of a line: streamed text is never overwritten.
    if (!options_.terminal || !progress_ || line_open_ || bar_shown_) return;
    out_ << progress_bar(progress_->fraction, progress_->stage, progress_->message,
                         options_.columns);
    bar_shown_ = true;
}

std::string Renderer::progress_line(double fraction, std::string_view stage) {
    std::string line = "progress " + std::to_string(percent(fraction)) + "%";
    if (!stage.empty()) line += " stage=" + line_value(stage);
    return line;
}

std::string Renderer::progress_bar(double fraction, std::string_view stage,
                                   std::string_view message, int columns) {
    const int pct = percent(fraction);
    const int filled = pct * kBarCells / 100;
    std::string line = "[";
    line.append(static_cast<std::size_t>(filled), '#');
    line.append(static_cast<std::size_t>(kBarCells - filled), '-');
    line += "] ";
    const auto number = std::to_string(pct);
    line.append(3 - std::min<std::size_t>(3, number.size()), ' ');
    line += number;
    line += '%';
    if (!stage.empty()) {
        line += ' ';
        line += stage;
    }
    if (!message.empty()) {
        line += "  ";
        line += message;
    }
    // Wider than the terminal, the line would wrap and "\r" would no longer
    // return to its start. Cut on a character boundary (never inside UTF-8).
    const auto limit = static_cast<std::size_t>(std::max(columns - 1, 10));
    if (line.size() > limit) {
        auto cut = limit;
        while (cut > 0 && (static_cast<unsigned char>(line[cut]) & 0xC0) == 0x80)
            --cut;
        line.resize(cut);
    }
    return line;
}

std::string Renderer::state_line(const json::object& data, std::string_view last_error) {
    const auto state = string_field(data, "state");
    if (state.empty()) return {};
    const auto reason = string_field(data, "reason");
    std::string line = "[" + state;
    if (state == "running") {
        const auto attempt = static_cast<long long>(number_field(data, "attempt"));
        if (attempt > 0) line += " attempt " + std::to_string(attempt);
        const auto worker = string_field(data, "worker");
        if (!worker.empty()) line += " on " + worker;
        // A retry from a checkpoint: the text after that seq comes again.
        const auto resume = static_cast<long long>(number_field(data, "resume_seq"));
        if (resume > 0) line += ", resuming after seq " + std::to_string(resume);
    }
    if (!reason.empty() && reason != last_error) line += ": " + reason;
    return line + "]";
}

}  // namespace jobcast::cli
