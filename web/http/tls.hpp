// Native TLS for the HTTP port (HTTPS, wss:// and SSE over TLS): the server's
// certificate, key and protocol floor, loaded into an OpenSSL context that new
// connections take. reload() re-reads the files (SIGHUP, after a certificate
// renewal) without touching connections already open. Asio stays in tls.cpp;
// the sessions get the context through flex_stream.hpp.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace boost::asio::ssl {
class context;
}

namespace jobcast::web {

struct TlsConfig {
    std::string cert_file;            // PEM: the certificate, then any intermediates
    std::string key_file;             // PEM, unencrypted
    std::string min_version = "1.2";  // "1.2" or "1.3"
    bool enabled() const { return !cert_file.empty(); }
};

class TlsServer {
  public:
    // Loads the certificate and key; throws std::runtime_error saying which
    // file is wrong and why.
    explicit TlsServer(TlsConfig config);
    ~TlsServer();
    TlsServer(const TlsServer&) = delete;
    TlsServer& operator=(const TlsServer&) = delete;

    // Re-reads both files. On failure the current context stays and the
    // error is thrown.
    void reload();

    // The context new connections use.
    std::shared_ptr<boost::asio::ssl::context> context() const;
    // The certificate's notAfter (unix seconds) and subject, for the log and
    // the expiry gauge.
    std::int64_t not_after() const;
    std::string subject() const;
    const TlsConfig& config() const { return config_; }

  private:
    struct Loaded;
    static std::shared_ptr<const Loaded> load(const TlsConfig& config);

    const TlsConfig config_;
    mutable std::mutex mutex_;
    std::shared_ptr<const Loaded> loaded_;
};

}  // namespace jobcast::web
