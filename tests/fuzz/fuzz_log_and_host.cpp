// libFuzzer target for what a client or a peer puts in a log line or a Host
// header: log_quote, the web module's target redaction, and the Host checks
// that keep DNS-rebinding pages out of an open broker. Arbitrary bytes must
// never crash them, a quoted value must stay one field on one line, a redacted
// target must not carry the token it was given, and only loopback names pass
// an allow-list that lists nothing.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/log_quote.hpp"
#include "web/http/log.hpp"
#include "web/security/host_check.hpp"

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
    std::fprintf(stderr, "fuzz_log_and_host: %s: %.*s\n", what, static_cast<int>(text.size()),
                 text.data());
    std::abort();
}

// One field of one line: quoted, no control character, no unescaped quote inside.
void check_quoted(std::string_view quoted) {
    if (quoted.size() < 2 || quoted.front() != '"' || quoted.back() != '"')
        fail("not quoted", quoted);
    for (std::size_t i = 1; i + 1 < quoted.size(); ++i) {
        auto c = static_cast<unsigned char>(quoted[i]);
        if (c < 0x20 || c == 0x7f) fail("control character", quoted);
        if (c == '\\') {
            ++i;  // the escaped character
            continue;
        }
        if (c == '"') fail("unescaped quote", quoted);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    check_quoted(jobcast::log_quote(input));
    check_quoted(jobcast::web::log_target(input));

    // A token put after access_token= never survives redaction (unless the
    // input around it spells the token out itself).
    const std::string token = "SECRETTOKEN" + std::to_string(size);
    const std::string target = "/v1/ws?" + std::string(input) + "&access_token=" + token;
    if (input.find(token) == std::string_view::npos &&
        jobcast::web::redact_target(target).find(token) != std::string::npos)
        fail("token not redacted", target);

    // The Host checks: no allowed names, bound to loopback.
    static const jobcast::web::HostAllowList allow = [] {
        jobcast::web::HostAllowList list;
        list.add_bound_address("127.0.0.1");
        return list;
    }();
    const bool allowed = allow.allows(input);
    auto host = jobcast::web::host_part(input);
    if (allowed && (!host || !jobcast::web::is_loopback_host(*host))) {
        fail("a non-loopback Host was allowed", input);
    }
    if (host) {
        (void)jobcast::web::is_ip_literal(*host);
        if (jobcast::web::is_loopback_literal(*host) && !jobcast::web::is_ip_literal(*host))
            fail("a loopback literal that is not an IP literal", *host);
    }
    return 0;
}
