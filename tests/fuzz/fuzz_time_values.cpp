// libFuzzer target for times and integers from outside, over their whole
// int64 / uint64 / double range (audit C1, C2, C3):
//  - exp, nbf and iat in a correctly signed HS256 token (a fixed test secret,
//    so the claim checks are reached), verified at any clock value and with
//    any maximum lifetime; then exp + leeway and the expiry timer computed
//    from it, as the web layer does; and a token minted for any iat and ttl;
//  - a worker chunk's ts through the protocol decoder, then the latency
//    computed from it;
//  - after, limit and wait through the REST query parsers.
// Each value is checked against the rule of common/time_bounds.hpp; anything
// else (a crash, a sanitizer report, a wrong acceptance) aborts.
//
// Input layout (missing bytes read as zero): byte 0 picks the forms of exp,
// nbf, iat (2 bits each: absent, int64, uint64, double) and the maximum
// lifetime (default, 0, any, 1 s); byte 1 the forms of ts (int64, uint64,
// double, int64 again) and of after, limit, wait (int64, uint64 and double
// text, or the input's tail as raw text); then eleven little-endian 8-byte
// words: exp, nbf, iat, now, max lifetime, ts, after, limit, wait, the minted
// token's iat and ttl. The rest of the input is the raw text.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <msgpack.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "auth/jwt.hpp"
#include "common/time_bounds.hpp"
#include "protocol/codec.hpp"
#include "web/rest/rest_api.hpp"
#include "web/rest/rest_request.hpp"

using namespace jobcast;
namespace tb = jobcast::time_bounds;

namespace {

constexpr std::string_view kSecret = "fuzz-secret-0123456789abcdef-0123";
constexpr std::int64_t kLeeway = 30;

[[noreturn]] void fail(const char* what, std::int64_t a = 0, std::int64_t b = 0) {
    std::fprintf(stderr, "fuzz_time_values: %s (%lld, %lld)\n", what, static_cast<long long>(a),
                 static_cast<long long>(b));
    std::abort();
}

struct Input {
    std::uint8_t forms = 0, forms2 = 0;
    std::array<std::uint64_t, 11> words{};
    std::string_view tail;

    Input(const std::uint8_t* data, std::size_t size) {
        std::size_t at = 0;
        auto byte = [&]() -> std::uint8_t { return at < size ? data[at++] : 0; };
        forms = byte();
        forms2 = byte();
        for (auto& word : words) {
            for (int i = 0; i < 8; ++i)
                word |= static_cast<std::uint64_t>(byte()) << (8 * i);
        }
        tail = std::string_view(reinterpret_cast<const char*>(data) + at, size - at);
    }
};

enum class Form { absent, int64, uint64, real };

// A number as JSON text, and what it is as a unix second: in range (its value),
// out of range (nullopt), or too close to a bound for the text to decide
// (a double whose shortest exact text may be read back one step off).
struct Number {
    std::string text;
    std::optional<std::int64_t> seconds;
    bool undecided = false;
};

Number number(Form form, std::uint64_t word) {
    Number n;
    switch (form) {
        case Form::absent:
            break;
        case Form::int64: {
            auto v = static_cast<std::int64_t>(word);
            n.text = std::to_string(v);
            n.seconds = tb::unix_seconds_from_int(v);
            break;
        }
        case Form::uint64:
            n.text = std::to_string(word);
            n.seconds = tb::unix_seconds_from_uint(word);
            break;
        case Form::real: {
            double d = std::bit_cast<double>(word);
            if (std::isnan(d)) {
                n.text = "NaN";  // no JSON form: the payload is not JSON
            } else if (std::isinf(d)) {
                n.text = d > 0 ? "1e400" : "-1e400";
            } else {
                char buffer[64];
                std::snprintf(buffer, sizeof buffer, "%.17g", d);
                n.text = buffer;
                n.undecided = std::fabs(d) < 1 || std::fabs(d - tb::kMaxUnixSeconds) < 1 ||
                              std::fabs(d) > 9e18;
            }
            n.seconds = tb::unix_seconds_from_double(d);
            break;
        }
    }
    return n;
}

std::string sign(std::string_view signing) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
         reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac, &len);
    return auth::base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

void check_timer(std::int64_t deadline, std::int64_t now_ns) {
    auto left = tb::duration_until(deadline, std::chrono::nanoseconds(now_ns));
    if (left < std::chrono::nanoseconds::zero() ||
        left > std::chrono::seconds(tb::kMaxTimerSeconds)) {
        fail("timer out of [0, 10 years]", deadline, now_ns);
    }
}

void check_claims(const Input& in) {
    const Form forms[3] = {Form(in.forms & 3), Form((in.forms >> 2) & 3),
                           Form((in.forms >> 4) & 3)};
    const char* names[3] = {"exp", "nbf", "iat"};
    Number claims[3];
    std::string payload = R"({"sub":"fuzz")";
    bool out_of_range = false, undecided = false;
    for (int i = 0; i < 3; ++i) {
        claims[i] = number(forms[i], in.words[i]);
        if (forms[i] == Form::absent) continue;
        payload += std::string(",\"") + names[i] + "\":" + claims[i].text;
        out_of_range = out_of_range || !claims[i].seconds;
        undecided = undecided || claims[i].undecided;
    }
    payload += "}";
    const auto now = static_cast<std::int64_t>(in.words[3]);

    auth::JwtConfig config;
    config.hs256_secret = std::string(kSecret);
    config.leeway_seconds = kLeeway;
    switch (in.forms >> 6) {
        case 1:
            config.max_lifetime_seconds = 0;
            break;
        case 2:
            config.max_lifetime_seconds = static_cast<std::int64_t>(in.words[4] >> 1);
            break;
        case 3:
            config.max_lifetime_seconds = 1;
            break;
        default:
            break;
    }
    const auth::JwtVerifier verifier(config);
    const std::string signing =
        auth::base64url_encode(R"({"alg":"HS256"})") + "." + auth::base64url_encode(payload);
    const auto result = verifier.verify(signing + "." + sign(signing), now);

    if (!result.claims) {
        if (result.message.empty()) fail("refusal without a message");
        if (out_of_range && !undecided && result.failure != auth::JwtFailure::malformed) {
            fail("a claim out of range was not refused as malformed",
                 static_cast<std::int64_t>(result.failure));
        }
    } else {
        if (out_of_range && !undecided) fail("accepted a claim out of range");
        const auto exp = result.claims->expires_at;
        if (exp < 0 || exp > tb::kMaxUnixSeconds) fail("expires_at out of range", exp);
        const std::int64_t max = config.max_lifetime_seconds;
        if (forms[0] == Form::absent) {
            if (exp != 0) fail("expires_at without exp", exp);
            if (max > 0) fail("no exp accepted with a maximum lifetime", max);
        } else {
            if (exp <= tb::saturating_sub(now, kLeeway))
                fail("accepted an expired token", exp, now);
            if (max > 0 && tb::saturating_sub(exp, now) > tb::saturating_add(max, kLeeway)) {
                fail("accepted a token beyond the maximum lifetime", exp, now);
            }
        }
        // As SecurityContext::check_token and the expiry timers do.
        const auto valid_until = exp == 0 ? 0 : tb::saturating_add(exp, kLeeway);
        check_timer(valid_until, static_cast<std::int64_t>(in.words[3] * 1'000'003));
    }
    check_timer(static_cast<std::int64_t>(in.words[0]), static_cast<std::int64_t>(in.words[3]));

    // A token minted for any iat and ttl (jobcast token caps the ttl; the library saturates).
    auth::MintOptions mint;
    mint.subject = "fuzz";
    mint.issued_at = static_cast<std::int64_t>(in.words[9]);
    mint.ttl_seconds = static_cast<std::int64_t>(in.words[10]);
    auto minted = verifier.verify(auth::mint_hs256(kSecret, mint), now);
    if (!minted.claims && minted.message.empty()) fail("refusal of a minted token without message");
}

void check_ts(const Input& in) {
    const std::uint64_t word = in.words[5];
    msgpack::sbuffer buffer;
    msgpack::packer<msgpack::sbuffer> pack(buffer);
    pack.pack_map(8);
    auto key = [&](std::string_view name) {
        pack.pack_str(static_cast<std::uint32_t>(name.size()));
        pack.pack_str_body(name.data(), name.size());
    };
    key("v");
    pack.pack_uint64(1);
    key("t");
    key("chunk");
    key("job");
    key("01HZY3J5KX8Q2V7R4M6N0P1S9T");
    key("attempt");
    pack.pack_uint64(1);
    key("wseq");
    pack.pack_uint64(1);
    key("kind");
    key("log");
    key("data");
    pack.pack_map(0);
    key("ts");
    const int form = in.forms2 & 3;
    if (form == 1) {
        pack.pack_uint64(word);
    } else if (form == 2) {
        // A float64 as such: msgpack-c's pack_double would write 1.0 as an integer.
        char bytes[9] = {static_cast<char>(0xcb)};
        for (int i = 0; i < 8; ++i)
            bytes[1 + i] = static_cast<char>(word >> (56 - 8 * i));
        buffer.write(bytes, sizeof bytes);
    } else {
        pack.pack_int64(static_cast<std::int64_t>(word));
    }
    auto decoded = proto::decode_worker_message(std::string_view(buffer.data(), buffer.size()));
    const auto* message = std::get_if<proto::WorkerMessage>(&decoded);
    if (form == 2) {
        if (message) fail("a float ts decoded");
        return;
    }
    if (form == 1 && word > static_cast<std::uint64_t>(INT64_MAX)) {
        if (message) fail("a ts beyond int64 decoded");
        return;
    }
    if (!message) fail("a chunk with an integer ts did not decode");
    const auto* chunk = std::get_if<proto::Chunk>(message);
    if (!chunk) fail("a chunk decoded as another message");
    const auto sent = static_cast<std::int64_t>(word);
    const auto expected = tb::plausible_unix_micros(sent) ? sent : 0;
    if (chunk->ts != expected) fail("ts not range-checked", chunk->ts, sent);
    // The latency of a live delivery, at any clock value.
    const auto now = static_cast<std::int64_t>(in.words[3]);
    if (auto latency = tb::elapsed_since(chunk->ts, now); latency && (*latency < 0)) {
        fail("negative latency", chunk->ts, now);
    }
}

// A query value in the form `form` selects: int64, uint64 or double text, or raw text.
std::string query_value(int form, std::uint64_t word, std::string_view raw) {
    switch (form) {
        case 0:
            return std::to_string(static_cast<std::int64_t>(word));
        case 1:
            return std::to_string(word);
        case 2: {
            char buffer[64];
            std::snprintf(buffer, sizeof buffer, "%.17g", std::bit_cast<double>(word));
            return buffer;
        }
        default:
            return std::string(raw);
    }
}

const web::RestConfig& rest_config() {
    static const web::RestConfig instance;
    return instance;
}

void check_queries(const Input& in) {
    const auto& config = rest_config();
    const int after_form = (in.forms2 >> 2) & 3, limit_form = (in.forms2 >> 4) & 3,
              wait_form = (in.forms2 >> 6) & 3;
    const std::string after = query_value(after_form, in.words[6], in.tail);
    const std::string limit = query_value(limit_form, in.words[7], in.tail);
    const std::string wait = query_value(wait_form, in.words[8], in.tail);

    web::HttpRequest request;
    request.method = "GET";
    request.remote = "127.0.0.1:1";
    request.target = "/v1/jobs/01HZY3J5KX8Q2V7R4M6N0P1S9T/events?after=" + after +
                     "&limit=" + limit + "&wait=" + wait;
    auto parsed = web::parse_rest_request(request, config);
    const auto* call = std::get_if<web::RestCall>(&parsed);
    const auto* events = call ? std::get_if<web::JobEventsCall>(call) : nullptr;
    if (call && !events) fail("an events target routed elsewhere");
    if (!call && std::get<web::HttpResponse>(parsed).status != 400) {
        fail("an events query refused with another status than 400",
             std::get<web::HttpResponse>(parsed).status);
    }
    // Decimal text of a plain uint64 decides the outcome exactly.
    const bool after_ok = after_form == 1 || (after_form == 0 && (in.words[6] >> 63) == 0);
    const auto limit_value = static_cast<std::uint64_t>(in.words[7]);
    const bool limit_ok = (limit_form == 1 || (limit_form == 0 && (limit_value >> 63) == 0)) &&
                          limit_value >= 1 && limit_value <= config.max_events_limit;
    const auto wait_value = static_cast<std::uint64_t>(in.words[8]);
    const bool wait_ok = (wait_form == 1 || (wait_form == 0 && (wait_value >> 63) == 0)) &&
                         wait_value <= static_cast<std::uint64_t>(config.max_wait.count());
    if (events) {
        if (events->limit < 1 || events->limit > config.max_events_limit) {
            fail("events limit out of bounds", static_cast<std::int64_t>(events->limit));
        }
        if (events->wait.count() < 0 || events->wait > config.max_wait) {
            fail("wait out of bounds", events->wait.count());
        }
        if (after_ok && events->after != in.words[6]) fail("after changed");
        // (Raw text before it may hold '#' or its own "&limit=".)
        if (limit_ok && after_form != 3 && events->limit != limit_value) fail("limit changed");
    }
    if (after_form == 0 && (in.words[6] >> 63) && events) fail("a negative after accepted");
    if (after_ok && limit_ok && wait_ok && !events) fail("valid after, limit and wait refused");

    web::HttpRequest list;
    list.method = "GET";
    list.remote = "127.0.0.1:1";
    list.target = "/v1/jobs?limit=" + limit;
    auto listed = web::parse_rest_request(list, config);
    if (const auto* list_call = std::get_if<web::RestCall>(&listed)) {
        const auto* jobs = std::get_if<web::ListJobsCall>(list_call);
        if (!jobs) fail("a list target routed elsewhere");
        if (jobs->limit < 1 || jobs->limit > config.max_list_limit)
            fail("list limit out of bounds");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const Input input(data, size);
    check_claims(input);
    check_ts(input);
    check_queries(input);
    return 0;
}
