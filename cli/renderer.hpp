// How `jobcast watch` shows a job's events. The job's own output goes to
// stdout (streamed text exactly as the worker produced it, log lines), what the
// CLI says about the job and the connection goes to stderr, so that
// `jobcast watch ID > out.txt` captures the output and nothing else.
//
//   token     the text as is, no newline added
//   log       a line on stdout (level "error": on stderr)
//   progress  on a terminal: one bar line redrawn in place;
//             otherwise a line "progress 50% stage=gather"
//   state     "[running attempt 1 on worker-x]" on stderr
//   result    nothing (the tokens or logs already showed it)
//   error     "error: <message>" on stderr
//
// With `json`, every event is one JSON line on stdout instead. Writes only to
// the streams it is given: no terminal detection, no clock.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "cli/frames.hpp"

namespace jobcast::cli {

struct RenderOptions {
    bool terminal = false;  // stdout is a terminal: draw a progress bar, tidy half lines
    bool json = false;      // one JSON line per event on stdout
    bool quiet = false;     // no state lines or connection notices on stderr
    std::string job;        // the job id, for JSON lines
    int columns = 80;       // terminal width: the bar line is cut to fit
};

class Renderer {
  public:
    Renderer(RenderOptions options, std::ostream& out, std::ostream& err);

    void render(const StreamEvent& event);
    // A line about the connection ("[connection lost ...]"); dropped when quiet.
    void notice(std::string_view text);
    // A line about a failure; shown even when quiet.
    void error(std::string_view text);
    // Once, at the end: removes the bar and ends a half-written line on a terminal.
    void finish();

    // "progress 50% stage=gather" (no newline), the line shown off a terminal.
    static std::string progress_line(double fraction, std::string_view stage);
    // "[#####-----]  50% gather  finished gather", cut to `columns` - 1 characters.
    static std::string progress_bar(double fraction, std::string_view stage,
                                    std::string_view message, int columns);
    // "[running attempt 1 on worker-x]"; "" for a state event without a state.
    static std::string state_line(const boost::json::object& data,
                                  std::string_view last_error = {});

  private:
    struct Progress {
        double fraction = 0;
        std::string stage;
        std::string message;
    };

    void token(const boost::json::object& data);
    void log(const boost::json::object& data);
    void progress(const boost::json::object& data);
    void state(const boost::json::object& data);
    void error_event(const boost::json::object& data);

    void line_to_out(std::string_view line);
    void line_to_err(std::string_view line);
    void clear_bar();
    void draw_bar();

    RenderOptions options_;
    std::ostream& out_;
    std::ostream& err_;
    bool line_open_ = false;  // stdout ends in the middle of a line (streamed text)
    bool bar_shown_ = false;  // the bar is the last, unterminated line on stdout
    std::optional<Progress> progress_;
    std::string last_error_;  // so "[failed: X]" does not repeat "error: X"
};

}  // namespace jobcast::cli
