// libFuzzer target for bearer tokens: JwtVerifier::verify on arbitrary bytes
// must refuse or accept cleanly (never crash, leak or throw), accept only
// tokens that carry the right HMAC, and base64url must round-trip.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/jwt.hpp"

using namespace jobcast::auth;

namespace {

constexpr std::string_view kSecret = "fuzz-secret-0123456789abcdef-0123";

[[noreturn]] void fail(const char* what, std::string_view text) {
    std::fprintf(stderr, "fuzz_jwt: %s: %.*s\n", what, static_cast<int>(text.size()), text.data());
    std::abort();
}

const JwtVerifier& verifier() {
    static const JwtVerifier instance([] {
        JwtConfig config;
        config.hs256_secret = std::string(kSecret);
        config.issuer = "fuzz";
        return config;
    }());
    return instance;
}

std::string sign(std::string_view signing) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
         reinterpret_cast<const unsigned char*>(signing.data()), signing.size(), mac, &len);
    return base64url_encode(std::string_view(reinterpret_cast<const char*>(mac), len));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view input(reinterpret_cast<const char*>(data), size);

    auto result = verifier().verify(input, 1'800'000'000);
    if (result.claims) {
        // Only a token whose signature is the HMAC of its first two parts can
        // pass: re-sign what was accepted and compare.
        auto dot = input.rfind('.');
        if (input.substr(dot + 1) != sign(input.substr(0, dot))) fail("accepted a forgery", input);
        if (result.claims->subject.empty()) fail("accepted an empty subject", input);
    } else if (result.message.empty()) {
        fail("refusal without a message", input);
    }

    // The input as the claims of a correctly signed token: exercises the claim
    // checks behind the signature (types, exp/nbf, iss, sub, tenant).
    std::string signing = base64url_encode(R"({"alg":"HS256"})") + "." + base64url_encode(input);
    auto claims = verifier().verify(signing + "." + sign(signing), 1'800'000'000);
    if (claims.claims && claims.claims->subject.empty()) fail("empty subject", input);

    auto encoded = base64url_encode(input);
    auto decoded = base64url_decode(encoded);
    if (!decoded || *decoded != input) fail("base64url does not round-trip", input);
    (void)base64url_decode(input);
    return 0;
}
