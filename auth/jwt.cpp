#include "auth/jwt.hpp"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/time_bounds.hpp"

namespace jobcast::auth {

namespace bj = boost::json;

namespace {

constexpr std::size_t kMaxSubjectBytes = 256;
constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

enum class KeyKind { hmac, rsa, ec };

struct PkeyFree {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

const char* algorithm_of(KeyKind kind) {
    switch (kind) {
        case KeyKind::hmac:
            return "HS256";
        case KeyKind::rsa:
            return "RS256";
        case KeyKind::ec:
            return "ES256";
    }
    return "?";
}

std::optional<KeyKind> kind_of_algorithm(std::string_view alg) {
    if (alg == "HS256") return KeyKind::hmac;
    if (alg == "RS256") return KeyKind::rsa;
    if (alg == "ES256") return KeyKind::ec;
    return std::nullopt;
}

bool has_control_chars(std::string_view text) {
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7f) return true;
    }
    return false;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::invalid_argument("cannot read key file '" + path + "'");
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::optional<bj::object> parse_object(std::string_view text) {
    bj::error_code ec;
    bj::parse_options options;
    options.max_depth = 16;
    auto value = bj::parse(text, ec, {}, options);
    if (ec || !value.is_object()) return std::nullopt;
    return std::move(value.as_object());
}

const bj::string* string_member(const bj::object& object, std::string_view name) {
    auto it = object.find(name);
    if (it == object.end() || !it->value().is_string()) return nullptr;
    return &it->value().get_string();
}

}  // namespace

struct JwtVerifier::Key {
    KeyKind kind = KeyKind::hmac;
    std::string kid;
    std::string secret;  // hmac
    PkeyPtr pkey;        // rsa, ec
};

namespace {

using Key = JwtVerifier::Key;

// RSA keys of at least 2048 bits; EC keys on P-256 only (ES256).
std::unique_ptr<Key> key_from_pkey(PkeyPtr pkey, std::string kid, const std::string& where) {
    auto key = std::make_unique<Key>();
    key->kid = std::move(kid);
    if (EVP_PKEY_is_a(pkey.get(), "RSA")) {
        if (EVP_PKEY_get_bits(pkey.get()) < 2048) {
            throw std::invalid_argument(where + ": RSA keys must have at least 2048 bits");
        }
        key->kind = KeyKind::rsa;
    } else if (EVP_PKEY_is_a(pkey.get(), "EC")) {
        std::array<char, 64> group{};
        std::size_t len = 0;
        if (!EVP_PKEY_get_utf8_string_param(pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME, group.data(),
                                            group.size(), &len) ||
            std::string_view(group.data(), len) != "prime256v1") {
            throw std::invalid_argument(where + ": EC keys must be on P-256 (ES256)");
        }
        key->kind = KeyKind::ec;
    } else {
        throw std::invalid_argument(where + ": only RSA and P-256 EC public keys are supported");
    }
    key->pkey = std::move(pkey);
    return key;
}

std::vector<std::unique_ptr<Key>> keys_from_pem(const std::string& text, const std::string& path) {
    std::vector<std::unique_ptr<Key>> keys;
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), &BIO_free);
    while (EVP_PKEY* raw = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr)) {
        keys.push_back(key_from_pkey(PkeyPtr(raw), "", path));
    }
    if (keys.empty()) {
        throw std::invalid_argument("'" + path +
                                    "' holds no PEM public key (-----BEGIN PUBLIC KEY-----)");
    }
    return keys;
}

struct BnFree {
    void operator()(BIGNUM* b) const { BN_free(b); }
};

PkeyPtr pkey_from_params(const char* type, OSSL_PARAM_BLD* build, const std::string& where) {
    std::unique_ptr<OSSL_PARAM, decltype(&OSSL_PARAM_free)> params(OSSL_PARAM_BLD_to_param(build),
                                                                   &OSSL_PARAM_free);
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr), &EVP_PKEY_CTX_free);
    EVP_PKEY* raw = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) <= 0 ||
        EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) <= 0) {
        throw std::invalid_argument(where + ": not a valid public key");
    }
    return PkeyPtr(raw);
}

std::string jwk_bytes(const bj::object& jwk, std::string_view name, const std::string& where) {
    const auto* text = string_member(jwk, name);
    std::optional<std::string> bytes;
    if (text) bytes = base64url_decode(*text);
    if (!bytes || bytes->empty()) {
        throw std::invalid_argument(where + ": member '" + std::string(name) +
                                    "' must be base64url");
    }
    return *bytes;
}

std::unique_ptr<Key> key_from_jwk(const bj::object& jwk, const std::string& where) {
    const auto* kty = string_member(jwk, "kty");
    std::string kid;
    if (const auto* k = string_member(jwk, "kid")) kid = std::string(*k);
    std::unique_ptr<OSSL_PARAM_BLD, decltype(&OSSL_PARAM_BLD_free)> build(OSSL_PARAM_BLD_new(),
                                                                          &OSSL_PARAM_BLD_free);
    if (kty && *kty == "RSA") {
        auto n = jwk_bytes(jwk, "n", where), e = jwk_bytes(jwk, "e", where);
        std::unique_ptr<BIGNUM, BnFree> bn_n(BN_bin2bn(
            reinterpret_cast<const unsigned char*>(n.data()), static_cast<int>(n.size()), nullptr));
        std::unique_ptr<BIGNUM, BnFree> bn_e(BN_bin2bn(
            reinterpret_cast<const unsigned char*>(e.data()), static_cast<int>(e.size()), nullptr));
        OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get());
        OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get());
        return key_from_pkey(pkey_from_params("RSA", build.get(), where), kid, where);
    }
    if (kty && *kty == "EC") {
        const auto* crv = string_member(jwk, "crv");
        if (!crv || *crv != "P-256") throw std::invalid_argument(where + ": EC keys must be P-256");
        auto x = jwk_bytes(jwk, "x", where), y = jwk_bytes(jwk, "y", where);
        if (x.size() != 32 || y.size() != 32) {
            throw std::invalid_argument(where + ": P-256 coordinates are 32 bytes");
        }
        std::string point = "\x04" + x + y;
        static const char group[] = "prime256v1";
        OSSL_PARAM_BLD_push_utf8_string(build.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
        OSSL_PARAM_BLD_push_octet_string(build.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size());
        return key_from_pkey(pkey_from_params("EC", build.get(), where), kid, where);
    }
    throw std::invalid_argument(where + ": kty must be RSA or EC");
}

std::vector<std::unique_ptr<Key>> keys_from_jwks(const std::string& text, const std::string& path) {
    auto doc = parse_object(text);
    if (!doc) throw std::invalid_argument("'" + path + "' is not a JSON object (JWKS)");
    auto it = doc->find("keys");
    if (it == doc->end() || !it->value().is_array() || it->value().as_array().empty()) {
        throw std::invalid_argument("'" + path + "': a JWKS needs a non-empty \"keys\" array");
    }
    std::vector<std::unique_ptr<Key>> keys;
    std::size_t index = 0;
    for (const auto& entry : it->value().as_array()) {
        std::string where = "'" + path + "' keys[" + std::to_string(index++) + "]";
        if (!entry.is_object()) throw std::invalid_argument(where + ": not an object");
        const auto& jwk = entry.as_object();
        // Keys meant for encryption only are not signing keys.
        if (const auto* use = string_member(jwk, "use"); use && *use != "sig") continue;
        keys.push_back(key_from_jwk(jwk, where));
    }
    if (keys.empty()) throw std::invalid_argument("'" + path + "' holds no signing key");
    return keys;
}

bool verify_hmac(const Key& key, std::string_view input, std::string_view signature) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
              reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(),
              &len)) {
        return false;
    }
    return signature.size() == len && CRYPTO_memcmp(mac.data(), signature.data(), len) == 0;
}

// JWS ES256 signatures are r||s, 32 bytes each; OpenSSL verifies DER.
std::optional<std::string> ecdsa_der(std::string_view raw) {
    if (raw.size() != 64) return std::nullopt;
    ECDSA_SIG* sig = ECDSA_SIG_new();
    if (!sig) return std::nullopt;
    auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
    BIGNUM* r = BN_bin2bn(bytes, 32, nullptr);
    BIGNUM* s = BN_bin2bn(bytes + 32, 32, nullptr);
    if (!r || !s || !ECDSA_SIG_set0(sig, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return std::nullopt;
    }
    unsigned char* der = nullptr;
    int len = i2d_ECDSA_SIG(sig, &der);
    ECDSA_SIG_free(sig);
    if (len <= 0) return std::nullopt;
    std::string out(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
    OPENSSL_free(der);
    return out;
}

bool verify_pkey(const Key& key, std::string_view input, std::string_view signature) {
    std::string der;
    if (key.kind == KeyKind::ec) {
        auto converted = ecdsa_der(signature);
        if (!converted) return false;
        der = std::move(*converted);
        signature = der;
    }
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!ctx ||
        EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key.pkey.get()) != 1) {
        return false;
    }
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                            input.size()) == 1;
}

JwtResult refuse(JwtFailure failure, std::string message) {
    return JwtResult{std::nullopt, failure, std::move(message)};
}

// A NumericDate claim (exp, nbf, iat): absent (true, out unset), a unix second
// in [0, year 9999] (true, out set), or anything else: another type, a negative
// or later time, NaN (false).
bool numeric_claim(const bj::object& claims, std::string_view name,
                   std::optional<std::int64_t>& out) {
    auto it = claims.find(name);
    if (it == claims.end()) return true;
    const auto& v = it->value();
    if (v.is_int64()) {
        out = time_bounds::unix_seconds_from_int(v.get_int64());
    } else if (v.is_uint64()) {
        out = time_bounds::unix_seconds_from_uint(v.get_uint64());
    } else if (v.is_double()) {
        out = time_bounds::unix_seconds_from_double(v.get_double());
    }
    return out.has_value();
}

// "30d", "12h", "90m", "45s": a lifetime as the broker's flag would write it.
std::string format_seconds(std::int64_t seconds) {
    if (seconds > 0 && seconds % 86'400 == 0) return std::to_string(seconds / 86'400) + "d";
    if (seconds > 0 && seconds % 3'600 == 0) return std::to_string(seconds / 3'600) + "h";
    if (seconds > 0 && seconds % 60 == 0) return std::to_string(seconds / 60) + "m";
    return std::to_string(seconds) + "s";
}

bool valid_name(std::string_view text) {
    return !text.empty() && text.size() <= kMaxSubjectBytes && !has_control_chars(text);
}

// The claims of a per-job token (JobGrant): job, cancel (optional), jti, sid,
// sid_ms. nullopt when one is missing or has the wrong type or range.
std::optional<JobGrant> job_grant(const bj::object& claims) {
    JobGrant grant;
    const auto* job = string_member(claims, "job");
    const auto* jti = string_member(claims, "jti");
    const auto* sid = string_member(claims, "sid");
    if (!job || !jti || !sid || !valid_name(*job) || !valid_name(*jti) || !valid_name(*sid)) {
        return std::nullopt;
    }
    grant.job = std::string(*job);
    grant.token_id = std::string(*jti);
    grant.session_id = std::string(*sid);
    if (auto it = claims.find("cancel"); it != claims.end()) {
        if (!it->value().is_bool()) return std::nullopt;
        grant.cancel = it->value().get_bool();
    }
    auto it = claims.find("sid_ms");
    if (it == claims.end()) return std::nullopt;
    const auto& started = it->value();
    constexpr std::int64_t kMaxMs = time_bounds::kMaxUnixSeconds * 1000;
    if (started.is_int64() && started.get_int64() >= 0 && started.get_int64() <= kMaxMs) {
        grant.session_started_ms = started.get_int64();
    } else if (started.is_uint64() && started.get_uint64() <= static_cast<std::uint64_t>(kMaxMs)) {
        grant.session_started_ms = static_cast<std::int64_t>(started.get_uint64());
    } else {
        return std::nullopt;
    }
    return grant;
}

}  // namespace

std::string_view to_string(JwtFailure failure) {
    switch (failure) {
        case JwtFailure::missing:
            return "missing";
        case JwtFailure::malformed:
            return "malformed";
        case JwtFailure::algorithm:
            return "algorithm";
        case JwtFailure::signature:
            return "signature";
        case JwtFailure::expired:
            return "expired";
        case JwtFailure::not_yet_valid:
            return "not_yet_valid";
        case JwtFailure::issuer:
            return "issuer";
        case JwtFailure::audience:
            return "audience";
        case JwtFailure::subject:
            return "subject";
        case JwtFailure::lifetime:
            return "lifetime";
    }
    return "unknown";
}

std::string JwtClaims::owner() const {
    // Tenant-less owners have no '/', tenant owners split at their first '/'
    // (a tenant has none), and the escaped sub decodes to one sub only.
    std::string out;
    out.reserve(tenant.size() + 1 + subject.size());
    if (!tenant.empty()) out.append(tenant).push_back('/');
    for (char ch : subject) {
        if (ch == '%')
            out += "%25";
        else if (ch == '/')
            out += "%2F";
        else
            out.push_back(ch);
    }
    return out;
}

JwtVerifier::JwtVerifier(const JwtConfig& config) : config_(config) {
    if (!config.hs256_secret.empty()) {
        // RFC 7518 3.2: an HS256 key shorter than the hash is guessable.
        if (config.hs256_secret.size() < 32) {
            throw std::invalid_argument("--jwt-secret must be at least 32 bytes (HS256)");
        }
        auto key = std::make_unique<Key>();
        key->kind = KeyKind::hmac;
        key->secret = config.hs256_secret;
        keys_.push_back(std::move(key));
    }
    if (!config.public_key_file.empty()) {
        auto text = read_file(config.public_key_file);
        auto first = text.find_first_not_of(" \t\r\n");
        auto loaded = first != std::string::npos && text[first] == '{'
                          ? keys_from_jwks(text, config.public_key_file)
                          : keys_from_pem(text, config.public_key_file);
        for (auto& key : loaded)
            keys_.push_back(std::move(key));
    }
    if (config.leeway_seconds < 0 || config.leeway_seconds > 3600) {
        throw std::invalid_argument("--jwt-leeway must be between 0 and 3600 seconds");
    }
    if (config.max_lifetime_seconds < 0) {
        throw std::invalid_argument("--max-token-lifetime must not be negative");
    }
}

JwtVerifier::~JwtVerifier() = default;

std::vector<std::string> JwtVerifier::algorithms() const {
    std::vector<std::string> out;
    for (const auto& key : keys_) {
        std::string alg = algorithm_of(key->kind);
        if (std::find(out.begin(), out.end(), alg) == out.end()) out.push_back(alg);
    }
    return out;
}

JwtResult JwtVerifier::verify(std::string_view token, std::int64_t now) const {
    if (token.empty()) return refuse(JwtFailure::missing, "no token");
    if (token.size() > kMaxTokenBytes) return refuse(JwtFailure::malformed, "token too long");
    auto dot1 = token.find('.');
    auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
        return refuse(JwtFailure::malformed, "a JWT has three dot-separated parts");
    }
    auto header_text = base64url_decode(token.substr(0, dot1));
    auto payload_text = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
    auto signature = base64url_decode(token.substr(dot2 + 1));
    if (!header_text || !payload_text || !signature) {
        return refuse(JwtFailure::malformed, "token parts must be base64url");
    }
    auto header = parse_object(*header_text);
    if (!header) return refuse(JwtFailure::malformed, "token header is not a JSON object");
    const auto* alg = string_member(*header, "alg");
    if (!alg) return refuse(JwtFailure::malformed, "token header has no alg");
    // Extensions we do not understand must not be ignored (RFC 7515 4.1.11).
    if (header->contains("crit")) return refuse(JwtFailure::malformed, "crit is not supported");
    auto kind = kind_of_algorithm(*alg);
    if (!kind) {
        return refuse(JwtFailure::algorithm, "algorithm '" +
                                                 std::string(std::string_view(*alg).substr(0, 16)) +
                                                 "' is not accepted");
    }
    std::string_view kid;
    if (const auto* k = string_member(*header, "kid")) kid = *k;

    const std::string_view signed_part = token.substr(0, dot2);
    bool any_key = false, verified = false;
    for (const auto& key : keys_) {
        if (key->kind != *kind) continue;
        if (!kid.empty() && !key->kid.empty() && key->kid != kid) continue;
        any_key = true;
        verified = key->kind == KeyKind::hmac ? verify_hmac(*key, signed_part, *signature)
                                              : verify_pkey(*key, signed_part, *signature);
        if (verified) break;
    }
    if (!any_key) {
        return refuse(JwtFailure::algorithm,
                      "algorithm " + std::string(*alg) + " is not accepted by this broker");
    }
    if (!verified) return refuse(JwtFailure::signature, "signature does not verify");

    // Only a token with a valid signature gets its claims looked at.
    auto claims = parse_object(*payload_text);
    if (!claims) return refuse(JwtFailure::malformed, "token payload is not a JSON object");
    std::optional<std::int64_t> exp, nbf, iat;
    const std::array<std::pair<std::string_view, std::optional<std::int64_t>*>, 3> dates = {
        {{"exp", &exp}, {"nbf", &nbf}, {"iat", &iat}}};
    for (auto [name, value] : dates) {
        if (!numeric_claim(*claims, name, *value)) {
            return refuse(JwtFailure::malformed,
                          std::string(name) + " must be a number of seconds between 0 and " +
                              std::to_string(time_bounds::kMaxUnixSeconds) + " (year 9999)");
        }
    }
    // Every claim is at most year 9999 from here on; `now` is the caller's, so
    // the sums with the leeway saturate rather than trust it.
    const std::int64_t leeway = config_.leeway_seconds;
    if (exp && *exp <= time_bounds::saturating_sub(now, leeway))
        return refuse(JwtFailure::expired, "token expired");
    if (nbf && *nbf > time_bounds::saturating_add(now, leeway)) {
        return refuse(JwtFailure::not_yet_valid, "token not valid yet");
    }
    if (const std::int64_t max = config_.max_lifetime_seconds; max > 0) {
        if (!exp) {
            return refuse(JwtFailure::lifetime,
                          "token has no exp; this broker requires one (--max-token-lifetime " +
                              format_seconds(max) + ")");
        }
        // Left to live, beyond the clock skew allowed; and as issued.
        bool too_long =
            time_bounds::saturating_sub(*exp, now) > time_bounds::saturating_add(max, leeway) ||
            (iat && *exp - *iat > max);
        if (too_long) {
            return refuse(JwtFailure::lifetime,
                          "token lifetime exceeds the broker's --max-token-lifetime (" +
                              format_seconds(max) + ")");
        }
    }
    if (!config_.issuer.empty()) {
        const auto* iss = string_member(*claims, "iss");
        if (!iss || *iss != config_.issuer) return refuse(JwtFailure::issuer, "wrong issuer");
    }
    if (!config_.audience.empty()) {
        bool match = false;
        if (auto it = claims->find("aud"); it != claims->end()) {
            if (it->value().is_string()) {
                match = it->value().get_string() == config_.audience;
            } else if (it->value().is_array()) {
                for (const auto& a : it->value().get_array())
                    match = match || (a.is_string() && a.get_string() == config_.audience);
            }
        }
        if (!match) return refuse(JwtFailure::audience, "wrong audience");
    }
    JwtClaims out;
    const auto* sub = string_member(*claims, "sub");
    if (!sub || !valid_name(*sub)) {
        return refuse(JwtFailure::subject, "sub must be a non-empty string of at most 256 bytes");
    }
    out.subject = std::string(*sub);
    if (auto it = claims->find("tenant"); it != claims->end()) {
        const auto* tenant = it->value().if_string();
        // No '/' in a tenant, so "tenant/sub" owners of different tenants never collide.
        if (!tenant || !valid_name(*tenant) || tenant->find('/') != bj::string::npos) {
            return refuse(JwtFailure::subject, "tenant must be a non-empty string without '/'");
        }
        out.tenant = std::string(*tenant);
    }
    if (claims->contains("job")) {
        out.grant = job_grant(*claims);
        if (!out.grant) {
            return refuse(JwtFailure::malformed,
                          "a job token needs job, jti, sid and sid_ms claims (and cancel a bool)");
        }
    }
    out.expires_at = exp.value_or(0);
    return JwtResult{std::move(out), JwtFailure::missing, {}};
}

std::string mint_hs256(std::string_view secret, const MintOptions& options) {
    bj::object claims;
    claims["sub"] = options.subject;
    if (!options.tenant.empty()) claims["tenant"] = options.tenant;
    if (!options.issuer.empty()) claims["iss"] = options.issuer;
    if (!options.audience.empty()) claims["aud"] = options.audience;
    claims["iat"] = options.issued_at;
    if (options.ttl_seconds > 0) {
        claims["exp"] = time_bounds::saturating_add(options.issued_at, options.ttl_seconds);
    }
    if (const auto& grant = options.grant) {
        claims["job"] = grant->job;
        if (grant->cancel) claims["cancel"] = true;
        claims["jti"] = grant->token_id;
        claims["sid"] = grant->session_id;
        claims["sid_ms"] = grant->session_started_ms;
    }
    bj::object header{{"alg", "HS256"}, {"typ", "JWT"}};
    if (!options.key_id.empty()) header["kid"] = options.key_id;
    std::string input =
        base64url_encode(bj::serialize(header)) + "." + base64url_encode(bj::serialize(claims));
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac.data(), &len);
    return input + "." +
           base64url_encode(std::string_view(reinterpret_cast<const char*>(mac.data()), len));
}

std::string key_id(std::string_view token) {
    if (token.size() > kMaxTokenBytes) return {};
    auto header_text = base64url_decode(token.substr(0, token.find('.')));
    if (!header_text) return {};
    auto header = parse_object(*header_text);
    if (!header) return {};
    const auto* kid = string_member(*header, "kid");
    return kid ? std::string(*kid) : std::string();
}

std::string derive_key(std::string_view secret, std::string_view label) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(label.data()), label.size(), mac.data(), &len);
    return std::string(reinterpret_cast<const char*>(mac.data()), len);
}

std::string base64url_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char ch : bytes) {
        acc = (acc << 8) | static_cast<unsigned char>(ch);
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out.push_back(kAlphabet[(acc >> bits) & 63]);
        }
    }
    if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
    return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
    if (text.size() % 4 == 1) return std::nullopt;
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char ch : text) {
        int value;
        if (ch >= 'A' && ch <= 'Z')
            value = ch - 'A';
        else if (ch >= 'a' && ch <= 'z')
            value = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9')
            value = ch - '0' + 52;
        else if (ch == '-')
            value = 62;
        else if (ch == '_')
            value = 63;
        else
            return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(value);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((acc >> bits) & 0xff));
        }
    }
    // Leftover bits must be zero: one encoding per byte string.
    if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;
    return out;
}

}  // namespace jobcast::auth
