// jobcast: the command line client of a jobcast broker. Everything but
// reading the process's environment and terminal lives in jobcast_cli_core.
#include <sys/ioctl.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "cli/command_line.hpp"
#include "cli/commands.hpp"

namespace cli = jobcast::cli;

int main(int argc, char** argv) {
    const std::vector<std::string> arguments(argv + 1, argv + argc);
    cli::Invocation invocation;
    try {
        invocation = cli::parse_command_line(arguments, cli::process_environment());
    } catch (const cli::UsageError& e) {
        std::cerr << "jobcast: " << e.what() << "\n(see jobcast --help)\n";
        return cli::to_int(cli::ExitCode::usage);
    }

    cli::Console console{std::cout, std::cerr};
    console.terminal = isatty(STDOUT_FILENO) == 1;
    if (winsize size{};
        console.terminal && ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
        console.columns = size.ws_col;
    }
    return cli::to_int(cli::run_command(invocation, console));
}
