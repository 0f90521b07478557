#include "auth/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "mint_options.hpp"

using namespace jobcast::auth;

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef-test";
constexpr std::int64_t kNow = 1'800'000'000;

std::string b64(std::string_view s) {
    return base64url_encode(s);
}

std::string hs256(std::string_view secret, const std::string& header, const std::string& payload) {
    std::string input = b64(header) + "." + b64(payload);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    return input + "." + b64(std::string_view(reinterpret_cast<char*>(mac), len));
}

struct TempFile {
    std::filesystem::path path;
    explicit TempFile(const std::string& text) {
        static int n = 0;
        path = std::filesystem::temp_directory_path() /
               ("jobcast_jwt_test_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
        std::ofstream(path) << text;
    }
    ~TempFile() { std::filesystem::remove(path); }
};

struct KeyPair {
    EVP_PKEY* pkey;
    explicit KeyPair(bool ec) {
        pkey = ec ? EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")
                  : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
        REQUIRE(pkey);
    }
    ~KeyPair() { EVP_PKEY_free(pkey); }
    std::string public_pem() const {
        BIO* bio = BIO_new(BIO_s_mem());
        PEM_write_bio_PUBKEY(bio, pkey);
        char* data = nullptr;
        long len = BIO_get_mem_data(bio, &data);
        std::string out(data, static_cast<std::size_t>(len));
        BIO_free(bio);
        return out;
    }
    // Big-endian bytes of a key parameter; `width` > 0 pads with leading
    // zeros (JWK EC coordinates are fixed-size: one key in 128 has a shorter x or y).
    std::string bn_param(const char* name, int width = 0) const {
        BIGNUM* bn = nullptr;
        REQUIRE(EVP_PKEY_get_bn_param(pkey, name, &bn));
        std::string out(static_cast<std::size_t>(width > 0 ? width : BN_num_bytes(bn)), '\0');
        BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()),
                     static_cast<int>(out.size()));
        BN_free(bn);
        return out;
    }
    std::string sign(const std::string& header, const std::string& payload, bool ec) const {
        std::string input = b64(header) + "." + b64(payload);
        EVP_MD_CTX* ctx = EVP_MD_CTX_new();
        REQUIRE(EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, pkey) == 1);
        std::size_t len = 0;
        REQUIRE(EVP_DigestSign(ctx, nullptr, &len,
                               reinterpret_cast<const unsigned char*>(input.data()),
                               input.size()) == 1);
        std::string sig(len, '\0');
        REQUIRE(EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                               reinterpret_cast<const unsigned char*>(input.data()),
                               input.size()) == 1);
        sig.resize(len);
        EVP_MD_CTX_free(ctx);
        if (ec) {  // DER -> r||s
            auto* p = reinterpret_cast<const unsigned char*>(sig.data());
            ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size()));
            std::string raw(64, '\0');
            BN_bn2binpad(ECDSA_SIG_get0_r(s), reinterpret_cast<unsigned char*>(raw.data()), 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(s), reinterpret_cast<unsigned char*>(raw.data()) + 32,
                         32);
            ECDSA_SIG_free(s);
            sig = raw;
        }
        return input + "." + b64(sig);
    }
};

// max_lifetime 0: for tests about something else that use tokens without exp.
JwtVerifier hs_verifier(std::int64_t max_lifetime = JwtConfig{}.max_lifetime_seconds) {
    JwtConfig c;
    c.hs256_secret = kSecret;
    c.max_lifetime_seconds = max_lifetime;
    return JwtVerifier(c);
}

}  // namespace

TEST_CASE("an HS256 token minted for a subject verifies and names its owner") {
    auto v = hs_verifier();
    auto token = mint_hs256(kSecret, mint_options("alice", "", "", "", kNow, 600));
    auto r = v.verify(token, kNow);
    REQUIRE(r.claims);
    CHECK(r.claims->owner() == "alice");
    CHECK(r.claims->expires_at == kNow + 600);

    auto scoped =
        v.verify(mint_hs256(kSecret, mint_options("alice", "acme", "", "", kNow, 600)), kNow);
    REQUIRE(scoped.claims);
    CHECK(scoped.claims->owner() == "acme/alice");
}

TEST_CASE("expiry and not-before are enforced with the configured leeway") {
    auto v = hs_verifier();
    auto token =
        mint_hs256(kSecret, mint_options("alice", "", "", "", kNow - 100, 60));  // exp = now - 40
    CHECK(v.verify(token, kNow).failure == JwtFailure::expired);
    CHECK(v.verify(token, kNow - 15).claims);  // within 30 s of leeway

    auto nbf = hs256(kSecret, R"({"alg":"HS256"})",
                     R"({"sub":"bob","nbf":)" + std::to_string(kNow + 100) + R"(,"exp":)" +
                         std::to_string(kNow + 600) + "}");
    CHECK(v.verify(nbf, kNow).failure == JwtFailure::not_yet_valid);
    CHECK(v.verify(nbf, kNow + 80).claims);
}

TEST_CASE("a token signed with another secret or altered after signing is refused") {
    auto v = hs_verifier();
    auto other = mint_hs256("another-secret-another-secret-xx",
                            mint_options("alice", "", "", "", kNow, 600));
    CHECK(v.verify(other, kNow).failure == JwtFailure::signature);

    auto token = mint_hs256(kSecret, mint_options("alice", "", "", "", kNow, 600));
    auto dot1 = token.find('.'), dot2 = token.rfind('.');
    auto forged =
        token.substr(0, dot1 + 1) + b64(R"({"sub":"mallory","iat":0})") + token.substr(dot2);
    CHECK(v.verify(forged, kNow).failure == JwtFailure::signature);
}

TEST_CASE("alg none and unknown algorithms are refused whatever the signature") {
    auto v = hs_verifier();
    auto none = b64(R"({"alg":"none","typ":"JWT"})") + "." + b64(R"({"sub":"alice"})") + ".";
    auto r = v.verify(none, kNow);
    CHECK_FALSE(r.claims);
    CHECK(r.failure == JwtFailure::algorithm);
    auto none_upper = b64(R"({"alg":"NONE"})") + "." + b64(R"({"sub":"alice"})") + ".";
    CHECK(v.verify(none_upper, kNow).failure == JwtFailure::algorithm);
    auto hs512 = hs256(kSecret, R"({"alg":"HS512"})", R"({"sub":"alice"})");
    CHECK(v.verify(hs512, kNow).failure == JwtFailure::algorithm);
    // An RS256 token when only a secret is configured: algorithm, not a key lookup.
    auto rs = hs256(kSecret, R"({"alg":"RS256"})", R"({"sub":"alice"})");
    CHECK(v.verify(rs, kNow).failure == JwtFailure::algorithm);
}

TEST_CASE("RS256 and ES256 verify with PEM public keys, and the public key is no HMAC secret") {
    KeyPair rsa(false), ec(true);
    TempFile pem(rsa.public_pem() + ec.public_pem());
    JwtConfig c;
    c.public_key_file = pem.path.string();
    JwtVerifier v(c);
    CHECK(v.algorithms() == std::vector<std::string>{"RS256", "ES256"});

    std::string claims = R"({"sub":"alice","exp":)" + std::to_string(kNow + 60) + "}";
    auto rs = v.verify(rsa.sign(R"({"alg":"RS256"})", claims, false), kNow);
    REQUIRE(rs.claims);
    CHECK(rs.claims->owner() == "alice");
    auto es = v.verify(ec.sign(R"({"alg":"ES256"})", claims, true), kNow);
    REQUIRE(es.claims);

    // Algorithm confusion: HS256 "signed" with the public key's PEM text.
    auto confused = hs256(rsa.public_pem(), R"({"alg":"HS256"})", claims);
    CHECK(v.verify(confused, kNow).failure == JwtFailure::algorithm);
    // An ES256 signature presented as RS256 (and the reverse) does not verify.
    auto es_token = ec.sign(R"({"alg":"ES256"})", claims, true);
    auto relabelled = b64(R"({"alg":"RS256"})") + es_token.substr(es_token.find('.'));
    CHECK(v.verify(relabelled, kNow).failure == JwtFailure::signature);
}

TEST_CASE("keys load from a JWKS file and kid selects among them") {
    KeyPair rsa(false), ec(true);
    std::string jwks = R"({"keys":[{"kty":"RSA","kid":"r1","use":"sig","n":")" +
                       b64(rsa.bn_param(OSSL_PKEY_PARAM_RSA_N)) + R"(","e":")" +
                       b64(rsa.bn_param(OSSL_PKEY_PARAM_RSA_E)) + R"("},)" +
                       R"({"kty":"EC","kid":"e1","crv":"P-256","x":")" +
                       b64(ec.bn_param(OSSL_PKEY_PARAM_EC_PUB_X, 32)) + R"(","y":")" +
                       b64(ec.bn_param(OSSL_PKEY_PARAM_EC_PUB_Y, 32)) + R"("}]})";
    TempFile file(jwks);
    JwtConfig c;
    c.public_key_file = file.path.string();
    c.max_lifetime_seconds = 0;  // tokens without exp
    JwtVerifier v(c);
    std::string claims = R"({"sub":"carol"})";
    CHECK(v.verify(rsa.sign(R"({"alg":"RS256","kid":"r1"})", claims, false), kNow).claims);
    CHECK(v.verify(ec.sign(R"({"alg":"ES256","kid":"e1"})", claims, true), kNow).claims);
    CHECK(v.verify(rsa.sign(R"({"alg":"RS256","kid":"nope"})", claims, false), kNow).failure ==
          JwtFailure::algorithm);
}

TEST_CASE("unusable key files are refused at start with a clear message") {
    JwtConfig c;
    c.public_key_file = "/nonexistent/key.pem";
    CHECK_THROWS_WITH(JwtVerifier(c), Catch::Contains("cannot read"));
    TempFile garbage("not a key");
    c.public_key_file = garbage.path.string();
    CHECK_THROWS_WITH(JwtVerifier(c), Catch::Contains("no PEM public key"));
    TempFile empty_jwks(R"({"keys":[]})");
    c.public_key_file = empty_jwks.path.string();
    CHECK_THROWS_WITH(JwtVerifier(c), Catch::Contains("non-empty"));
    JwtConfig short_secret;
    short_secret.hs256_secret = "short";
    CHECK_THROWS_WITH(JwtVerifier(short_secret), Catch::Contains("at least 32 bytes"));
}

TEST_CASE("issuer and audience are checked when configured") {
    JwtConfig c;
    c.hs256_secret = kSecret;
    c.issuer = "https://idp.example";
    c.audience = "jobcast";
    JwtVerifier v(c);
    CHECK(v.verify(mint_hs256(kSecret,
                              mint_options("a", "", "https://idp.example", "jobcast", kNow, 60)),
                   kNow)
              .claims);
    CHECK(v.verify(mint_hs256(kSecret, mint_options("a", "", "https://evil", "jobcast", kNow, 60)),
                   kNow)
              .failure == JwtFailure::issuer);
    CHECK(v.verify(
               mint_hs256(kSecret, mint_options("a", "", "https://idp.example", "other", kNow, 60)),
               kNow)
              .failure == JwtFailure::audience);
    auto list = hs256(kSecret, R"({"alg":"HS256"})",
                      R"({"sub":"a","iss":"https://idp.example","aud":["x","jobcast"],"exp":)" +
                          std::to_string(kNow + 60) + "}");
    CHECK(v.verify(list, kNow).claims);
}

TEST_CASE(
    "duplicate claim and header names: the lexically last one counts (RFC 7519 4, RFC 7515 4)") {
    auto v = hs_verifier();
    // The signer saw the same bytes; what matters is that every reader takes
    // the same member, the last, as the RFCs allow instead of refusing.
    auto r = v.verify(
        hs256(kSecret, R"({"alg":"HS256"})",
              R"({"sub":"alice","sub":"mallory","exp":)" + std::to_string(kNow + 600) + "}"),
        kNow);
    REQUIRE(r.claims);
    CHECK(r.claims->owner() == "mallory");
    auto expired = v.verify(
        hs256(kSecret, R"({"alg":"HS256"})", R"({"sub":"a","exp":1900000000,"exp":1700000000})"),
        kNow);
    CHECK(expired.failure == JwtFailure::expired);
    // alg:none smuggled in as a second "alg" is still alg:none.
    CHECK(v.verify(hs256(kSecret, R"({"alg":"HS256","alg":"none"})", R"({"sub":"a"})"), kNow)
              .failure == JwtFailure::algorithm);
}

TEST_CASE("claims of the wrong type or shape are refused") {
    auto v = hs_verifier(0);
    auto check = [&](const std::string& payload, JwtFailure expected) {
        CAPTURE(payload);
        CHECK(v.verify(hs256(kSecret, R"({"alg":"HS256"})", payload), kNow).failure == expected);
    };
    check(R"({"sub":""})", JwtFailure::subject);
    check(R"({"sub":42})", JwtFailure::subject);
    check(R"({})", JwtFailure::subject);
    check(R"({"sub":"a\nb"})", JwtFailure::subject);
    check(R"({"sub":")" + std::string(300, 'x') + R"("})", JwtFailure::subject);
    check(R"({"sub":"a","tenant":"x/y"})", JwtFailure::subject);
    check(R"({"sub":"a","exp":"soon"})", JwtFailure::malformed);
    check(R"({"sub":"a","exp":1e400})", JwtFailure::malformed);
    check(R"([1,2])", JwtFailure::malformed);
    CHECK(v.verify(hs256(kSecret, R"({"alg":"HS256","crit":["x"]})", R"({"sub":"a"})"), kNow)
              .failure == JwtFailure::malformed);
}

TEST_CASE("garbage is refused as malformed without throwing") {
    auto v = hs_verifier();
    for (std::string token :
         std::vector<std::string>{"", "a", "a.b", "a.b.c.d", "...", "@@.@@.@@", "e30.e30.",
                                  std::string(kMaxTokenBytes + 1, 'a')}) {
        CAPTURE(token);
        auto r = v.verify(token, kNow);
        CHECK_FALSE(r.claims);
    }
    CHECK(v.verify("", kNow).failure == JwtFailure::missing);
}

TEST_CASE("base64url round-trips and rejects non-canonical text") {
    for (std::string s : std::vector<std::string>{"", "f", "fo", "foo", "foob", "fooba", "foobar",
                                                  "\xff\xfe\x00"}) {
        CHECK(base64url_decode(base64url_encode(s)) == s);
    }
    CHECK(base64url_encode("\xfb\xff") == "-_8");
    CHECK_FALSE(base64url_decode("Zg=="));  // padding
    CHECK_FALSE(base64url_decode("Z"));     // impossible length
    CHECK_FALSE(base64url_decode("Zh"));    // non-zero leftover bits
    CHECK_FALSE(base64url_decode("a+b/"));  // standard alphabet
}

// Audit C1/C2: a claim far in the future overflowed the broker's time arithmetic.
TEST_CASE("exp, nbf and iat before 1970, after year 9999 or not numbers are refused as malformed") {
    auto v = hs_verifier(0);
    for (std::string claim : {"exp", "nbf", "iat"}) {
        for (std::string value :
             {"-1", "253402300800", "9223372036854775807", "9223372036854775808",
              "18446744073709551615", "-9223372036854775808", "1e300", "-1e300", "253402300799.5",
              "-0.5", "true", "null", R"("1800000000")", "[1800000000]"}) {
            CAPTURE(claim, value);
            auto r = v.verify(hs256(kSecret, R"({"alg":"HS256"})",
                                    R"({"sub":"alice",")" + claim + R"(":)" + value + "}"),
                              kNow);
            CHECK_FALSE(r.claims);
            CHECK(r.failure == JwtFailure::malformed);
            CHECK(r.message == claim + " must be a number of seconds between 0 and " +
                                   "253402300799 (year 9999)");
        }
    }
    // The edges themselves are dates: the last second of year 9999, and 1970.
    auto last = v.verify(
        hs256(kSecret, R"({"alg":"HS256"})", R"({"sub":"a","exp":253402300799,"iat":0,"nbf":0})"),
        kNow);
    REQUIRE(last.claims);
    CHECK(last.claims->expires_at == 253'402'300'799);
    auto fraction = v.verify(hs256(kSecret, R"({"alg":"HS256"})",
                                   R"({"sub":"a","exp":)" + std::to_string(kNow + 60) + ".75}"),
                             kNow);
    REQUIRE(fraction.claims);
    CHECK(fraction.claims->expires_at == kNow + 60);
    CHECK(v.verify(hs256(kSecret, R"({"alg":"HS256"})", R"({"sub":"a","exp":0})"), kNow).failure ==
          JwtFailure::expired);
}

TEST_CASE(
    "the 'never' sentinel exp 9999999999 is a date: too long by default, valid without a "
    "maximum lifetime") {
    std::string never = hs256(kSecret, R"({"alg":"HS256"})", R"({"sub":"a","exp":9999999999})");
    auto r = hs_verifier().verify(never, kNow);
    CHECK(r.failure == JwtFailure::lifetime);
    auto unlimited = hs_verifier(0).verify(never, kNow);
    REQUIRE(unlimited.claims);
    CHECK(unlimited.claims->expires_at == 9'999'999'999);
}

TEST_CASE("verify is defined for any clock value") {
    auto v = hs_verifier();
    auto token = hs256(kSecret, R"({"alg":"HS256"})",
                       R"({"sub":"a","nbf":0,"exp":)" + std::to_string(kNow + 60) + "}");
    CHECK(v.verify(token, INT64_MAX).failure == JwtFailure::expired);
    CHECK(v.verify(token, INT64_MIN).failure == JwtFailure::not_yet_valid);
    // Without nbf, the time left from a clock far before 1970 exceeds any lifetime.
    auto no_nbf = hs256(kSecret, R"({"alg":"HS256"})", R"({"sub":"a","exp":253402300799,"iat":0})");
    CHECK(v.verify(no_nbf, INT64_MIN).failure == JwtFailure::lifetime);
    CHECK(hs_verifier(0).verify(no_nbf, INT64_MIN).claims);
    CHECK(hs_verifier(0).verify(no_nbf, INT64_MAX).failure == JwtFailure::expired);
}

// Audit L3: tokens without exp were valid forever and nothing capped a lifetime.
TEST_CASE("a maximum lifetime refuses tokens without exp and tokens that live too long") {
    constexpr std::int64_t kDay = 86'400;
    auto v = hs_verifier();  // the default: 30 days
    CHECK(JwtConfig{}.max_lifetime_seconds == 30 * kDay);
    CHECK(to_string(JwtFailure::lifetime) == "lifetime");

    auto no_exp = v.verify(hs256(kSecret, R"({"alg":"HS256"})", R"({"sub":"alice"})"), kNow);
    CHECK(no_exp.failure == JwtFailure::lifetime);
    CHECK(no_exp.message ==
          "token has no exp; this broker requires one (--max-token-lifetime 30d)");
    CHECK(v.verify(mint_hs256(kSecret, mint_options("alice", "", "", "", kNow, 0)), kNow).failure ==
          JwtFailure::lifetime);

    // As issued: exp - iat.
    CHECK(v.verify(mint_hs256(kSecret, mint_options("alice", "", "", "", kNow, 30 * kDay)), kNow)
              .claims);
    auto longer =
        v.verify(mint_hs256(kSecret, mint_options("alice", "", "", "", kNow, 30 * kDay + 1)), kNow);
    CHECK(longer.failure == JwtFailure::lifetime);
    CHECK(longer.message == "token lifetime exceeds the broker's --max-token-lifetime (30d)");
    // Issued long ago for long, even with little left.
    CHECK(v.verify(mint_hs256(kSecret,
                              mint_options("alice", "", "", "", kNow - 40 * kDay, 40 * kDay + 60)),
                   kNow)
              .failure == JwtFailure::lifetime);

    // Without iat: what is left, beyond the 30 s of leeway.
    auto left = [&](std::int64_t seconds) {
        return v.verify(hs256(kSecret, R"({"alg":"HS256"})",
                              R"({"sub":"a","exp":)" + std::to_string(kNow + seconds) + "}"),
                        kNow);
    };
    CHECK(left(30 * kDay + 30).claims);
    CHECK(left(30 * kDay + 31).failure == JwtFailure::lifetime);

    // Another maximum is named in the message; 0 turns the check off.
    JwtConfig hour;
    hour.hs256_secret = kSecret;
    hour.max_lifetime_seconds = 3600;
    CHECK(JwtVerifier(hour)
              .verify(mint_hs256(kSecret, mint_options("a", "", "", "", kNow, 7200)), kNow)
              .message == "token lifetime exceeds the broker's --max-token-lifetime (1h)");
    auto unlimited = hs_verifier(0);
    CHECK(
        unlimited.verify(mint_hs256(kSecret, mint_options("a", "", "", "", kNow, 0)), kNow).claims);
    CHECK(unlimited
              .verify(mint_hs256(kSecret, mint_options("a", "", "", "", kNow, 3650 * kDay)), kNow)
              .claims);

    JwtConfig negative;
    negative.hs256_secret = kSecret;
    negative.max_lifetime_seconds = -1;
    CHECK_THROWS_WITH(JwtVerifier(negative), Catch::Contains("--max-token-lifetime"));
}

TEST_CASE("minting saturates instead of overflowing exp") {
    auto token = mint_hs256(kSecret, mint_options("a", "", "", "", INT64_MAX - 5, 3600));
    auto payload =
        base64url_decode(token.substr(token.find('.') + 1, token.rfind('.') - token.find('.') - 1));
    REQUIRE(payload);
    CHECK(payload->find(R"("exp":9223372036854775807)") != std::string::npos);
    CHECK(hs_verifier(0).verify(token, kNow).failure == JwtFailure::malformed);
}

// Audit H2: the tenant-less sub "acme/alice" was the same owner as tenant acme's alice.
TEST_CASE("owners are injective: no two (tenant, sub) pairs share one") {
    auto owner = [](std::string tenant, std::string sub) {
        JwtClaims c;
        c.tenant = std::move(tenant);
        c.subject = std::move(sub);
        return c.owner();
    };
    CHECK(owner("", "alice") == "alice");
    CHECK(owner("acme", "alice") == "acme/alice");
    CHECK(owner("", "acme/alice") == "acme%2Falice");
    CHECK(owner("", "100%") == "100%25");

    // Tenants never hold '/' (the verifier refuses it); everything else goes.
    const std::vector<std::string> tenants = {"",    "acme", "acme%2Falice", "%",
                                              "%2F", "a%25", "alice",        "anonymous"};
    const std::vector<std::string> subs = {"alice", "acme/alice", "acme%2Falice", "acme%252Falice",
                                           "%",     "/",          "%2F",          "%25",
                                           "a/b/c", "alice/",     "/alice",       "%2f",
                                           "2F",    "acme",       "anonymous",    "acme%2Falice/x"};
    std::map<std::string, std::pair<std::string, std::string>> seen;
    for (const auto& tenant : tenants) {
        for (const auto& sub : subs) {
            auto [it, fresh] = seen.try_emplace(owner(tenant, sub), tenant, sub);
            CAPTURE(tenant, sub, it->first, it->second.first, it->second.second);
            CHECK(fresh);
        }
    }

    // Through the verifier, as the broker sees it.
    auto v = hs_verifier();
    auto slash =
        v.verify(mint_hs256(kSecret, mint_options("acme/alice", "", "", "", kNow, 600)), kNow);
    REQUIRE(slash.claims);
    auto scoped =
        v.verify(mint_hs256(kSecret, mint_options("alice", "acme", "", "", kNow, 600)), kNow);
    REQUIRE(scoped.claims);
    CHECK(slash.claims->owner() != scoped.claims->owner());
    CHECK(slash.claims->owner() == "acme%2Falice");
}
