#include "broker/worker_sessions.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace jobcast::broker {

namespace {

constexpr std::size_t kNonceBytes = 16;
constexpr std::size_t kNonceHex = kNonceBytes * 2;
constexpr std::size_t kMacHex = 64;  // SHA-256

std::string hex(const unsigned char* bytes, std::size_t size) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    out.reserve(size * 2);
    for (std::size_t i = 0; i < size; ++i) {
        out.push_back(digits[bytes[i] >> 4]);
        out.push_back(digits[bytes[i] & 15]);
    }
    return out;
}

bool same_secret(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

WorkerSessions::WorkerSessions(std::string secret, std::size_t max_names)
    : secret_(std::move(secret)), max_names_(max_names) {}

std::string WorkerSessions::mac(std::string_view key, std::string_view name,
                                std::string_view nonce) const {
    std::string input;
    input.reserve(key.size() + name.size() + nonce.size() + 2);
    input.append(key).push_back('\0');
    input.append(name).push_back('\0');
    input.append(nonce);
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
              reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, &length)) {
        throw std::runtime_error("HMAC-SHA256 failed");
    }
    return hex(out, length);
}

bool WorkerSessions::valid(std::string_view presented, std::string_view key,
                           const std::string& name) const {
    if (presented.size() != kNonceHex + kMacHex) return false;
    if (auto it = current_.find(name); it != current_.end()) {
        return same_secret(presented, it->second);
    }
    auto nonce = presented.substr(0, kNonceHex);
    return same_secret(presented.substr(kNonceHex), mac(key, name, nonce));
}

std::string WorkerSessions::welcome(std::string_view presented, bool presented_valid,
                                    std::string_view key, const std::string& name,
                                    const std::function<bool(const std::string&)>& held) {
    std::string session;
    if (presented_valid) {
        session = std::string(presented);
    } else {
        unsigned char nonce[kNonceBytes];
        if (RAND_bytes(nonce, sizeof nonce) != 1) throw std::runtime_error("RAND_bytes failed");
        std::string nonce_hex = hex(nonce, sizeof nonce);
        session = nonce_hex + mac(key, name, nonce_hex);
    }
    if (current_.size() >= max_names_ && !current_.count(name)) {
        for (auto it = current_.begin(); it != current_.end();)
            it = held(it->first) ? std::next(it) : current_.erase(it);
    }
    current_[name] = session;
    return session;
}

}  // namespace jobcast::broker
