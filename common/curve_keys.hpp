// ZeroMQ CURVE key files, shared by the broker, the worker and `jobcast keygen`.
// A key file holds one Z85-encoded key (40 characters) on a line; lines
// starting with '#' are comments. `NAME.key` holds a secret key (mode 0600),
// `NAME.pub` the matching public key, which may be shared.
#pragma once

#include <zmq.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace jobcast::curve {

inline constexpr std::size_t kZ85KeyLength = 40;

// True for 40 characters of the Z85 alphabet that decode to 32 bytes.
inline bool is_z85_key(const std::string& text) {
    if (text.size() != kZ85KeyLength) return false;
    std::array<std::uint8_t, 32> bytes{};
    return zmq_z85_decode(bytes.data(), text.c_str()) != nullptr;
}

// The keys in a key file, in order (comments and blank lines skipped).
// Throws std::invalid_argument naming the file and the problem.
inline std::vector<std::string> read_keys(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::invalid_argument("cannot read CURVE key file '" + path + "'");
    std::vector<std::string> keys;
    std::string line;
    while (std::getline(in, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
            line.pop_back();
        auto start = line.find_first_not_of(' ');
        if (start == std::string::npos || line[start] == '#') continue;
        line = line.substr(start);
        if (!is_z85_key(line)) {
            throw std::invalid_argument("'" + path + "': not a Z85 CURVE key (40 characters): '" +
                                        line.substr(0, 48) + "'");
        }
        keys.push_back(line);
    }
    if (keys.empty()) throw std::invalid_argument("'" + path + "' holds no CURVE key");
    return keys;
}

inline std::string read_key(const std::string& path) {
    return read_keys(path).front();
}

// A Z85 key given inline, or the first key of the file it names.
inline std::string key_or_file(const std::string& value) {
    return is_z85_key(value) ? value : read_key(value);
}

inline std::string public_key_of(const std::string& secret) {
    std::array<char, kZ85KeyLength + 1> out{};
    if (zmq_curve_public(out.data(), secret.c_str()) != 0) {
        throw std::invalid_argument("not a CURVE secret key (is CURVE built into libzmq?)");
    }
    return std::string(out.data(), kZ85KeyLength);
}

// Every key allowed by `path`: a directory's *.pub files, or one file with a
// key per line.
inline std::vector<std::string> read_allow_list(const std::string& path) {
    namespace fs = std::filesystem;
    if (!fs::is_directory(path)) return read_keys(path);
    std::vector<std::string> keys;
    for (const auto& entry : fs::directory_iterator(path)) {
        if (entry.is_regular_file() && entry.path().extension() == ".pub") {
            for (auto& key : read_keys(entry.path().string()))
                keys.push_back(key);
        }
    }
    if (keys.empty()) throw std::invalid_argument("'" + path + "' holds no *.pub CURVE keys");
    return keys;
}

struct KeyPair {
    std::string public_key;
    std::string secret_key;
};

inline KeyPair generate() {
    std::array<char, kZ85KeyLength + 1> pub{}, sec{};
    if (zmq_curve_keypair(pub.data(), sec.data()) != 0) {
        throw std::runtime_error("zmq_curve_keypair failed: libzmq has no CURVE support");
    }
    return {std::string(pub.data(), kZ85KeyLength), std::string(sec.data(), kZ85KeyLength)};
}

// Writes PREFIX.key (0600) and PREFIX.pub; refuses to overwrite either.
inline KeyPair write_keypair(const std::string& prefix) {
    namespace fs = std::filesystem;
    const std::string secret_path = prefix + ".key", public_path = prefix + ".pub";
    for (const auto& p : {secret_path, public_path}) {
        if (fs::exists(p)) throw std::invalid_argument("'" + p + "' exists; not overwriting it");
    }
    auto pair = generate();
    {
        std::ofstream out(secret_path);
        if (!out) throw std::invalid_argument("cannot write '" + secret_path + "'");
        fs::permissions(secret_path, fs::perms::owner_read | fs::perms::owner_write,
                        fs::perm_options::replace);
        out << "# jobcast CURVE secret key: keep it private\n" << pair.secret_key << "\n";
    }
    std::ofstream out(public_path);
    if (!out) throw std::invalid_argument("cannot write '" + public_path + "'");
    out << "# jobcast CURVE public key\n" << pair.public_key << "\n";
    return pair;
}

}  // namespace jobcast::curve
