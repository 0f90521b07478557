// Runs a parsed `jobcast` command against the broker.
#pragma once

#include <ostream>

#include "cli/command_line.hpp"
#include "cli/errors.hpp"

namespace jobcast::cli {

struct Console {
    std::ostream& out;
    std::ostream& err;
    bool terminal = false;  // stdout is a terminal (progress bar, tidy lines)
    int columns = 80;       // its width
};

// Never throws: every failure is printed on `console.err` and becomes its exit code.
ExitCode run_command(const Invocation& invocation, Console& console);

}  // namespace jobcast::cli
