// What a `jobcast` command ends with: its exit codes, documented in --help and
// relied on by scripts, and the exceptions that carry a failure up to main().
#pragma once

#include <stdexcept>
#include <string>

namespace jobcast::cli {

enum class ExitCode : int {
    succeeded = 0,   // the command worked; for watch: the job succeeded
    failed = 1,      // the job failed, or the server refused the action (409)
    usage = 2,       // bad command line
    cancelled = 3,   // the watched job was cancelled
    connection = 4,  // network or HTTP error, or gave up reconnecting
    not_found = 5,   // no such job (or not the caller's)
};

inline int to_int(ExitCode code) {
    return static_cast<int>(code);
}

// A bad command line: main() prints the message and a hint, and exits 2.
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The server could not be reached or the connection broke (refused, reset,
// timeout, TLS). Worth retrying.
struct ConnectionError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The server answered the WebSocket upgrade with an HTTP error instead of 101.
struct HandshakeRejected : ConnectionError {
    HandshakeRejected(int status, const std::string& message)
        : ConnectionError(message), status(status) {}
    int status;
};

}  // namespace jobcast::cli
