#include "web/http/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ssl/context.hpp>
#include <ctime>
#include <fstream>
#include <stdexcept>

namespace jobcast::web {

namespace ssl = boost::asio::ssl;

namespace {

// TLS 1.2 suites with forward secrecy and AEAD only (Mozilla's "intermediate"
// list without DHE); TLS 1.3 keeps OpenSSL's defaults, all of them modern.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

void require_readable(const std::string& path, const char* flag) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error(std::string(flag) + ": cannot read '" + path + "'");
}

}  // namespace

struct TlsServer::Loaded {
    std::shared_ptr<ssl::context> context;
    std::int64_t not_after = 0;
    std::string subject;
};

TlsServer::TlsServer(TlsConfig config) : config_(std::move(config)) {
    if (config_.min_version != "1.2" && config_.min_version != "1.3") {
        throw std::runtime_error("--tls-min-version must be 1.2 or 1.3, not '" +
                                 config_.min_version + "'");
    }
    if (config_.key_file.empty()) throw std::runtime_error("--tls-cert needs --tls-key");
    loaded_ = load(config_);
}

TlsServer::~TlsServer() = default;

void TlsServer::reload() {
    auto fresh = load(config_);
    std::lock_guard lock(mutex_);
    loaded_ = std::move(fresh);
}

std::shared_ptr<ssl::context> TlsServer::context() const {
    std::lock_guard lock(mutex_);
    return loaded_->context;
}

std::int64_t TlsServer::not_after() const {
    std::lock_guard lock(mutex_);
    return loaded_->not_after;
}

std::string TlsServer::subject() const {
    std::lock_guard lock(mutex_);
    return loaded_->subject;
}

std::shared_ptr<const TlsServer::Loaded> TlsServer::load(const TlsConfig& config) {
    require_readable(config.cert_file, "--tls-cert");
    require_readable(config.key_file, "--tls-key");

    auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
    context->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                         ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
    SSL_CTX* native = context->native_handle();
    SSL_CTX_set_min_proto_version(native,
                                  config.min_version == "1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    // Resumption by session tickets only: no server-side cache whose size
    // follows the handshake history rather than the open connections.
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
        throw std::runtime_error("TLS: OpenSSL refused the cipher list");
    }

    boost::system::error_code ec;
    context->use_certificate_chain_file(config.cert_file, ec);
    if (ec) {
        throw std::runtime_error("--tls-cert: '" + config.cert_file +
                                 "' is not a PEM certificate chain (" + ec.message() + ")");
    }
    context->use_private_key_file(config.key_file, ssl::context::pem, ec);
    if (ec &&
        ERR_GET_REASON(static_cast<unsigned long>(ec.value())) != X509_R_KEY_VALUES_MISMATCH) {
        throw std::runtime_error("--tls-key: '" + config.key_file +
                                 "' is not an unencrypted PEM private key (" + ec.message() + ")");
    }
    if (ec || SSL_CTX_check_private_key(native) != 1) {
        throw std::runtime_error("--tls-key: '" + config.key_file +
                                 "' does not match the certificate in '" + config.cert_file + "'");
    }

    auto loaded = std::make_shared<TlsServer::Loaded>();
    loaded->context = std::move(context);
    if (X509* cert = SSL_CTX_get0_certificate(native)) {
        std::tm tm{};
        if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) loaded->not_after = timegm(&tm);
        char name[512];
        if (X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof name)) {
            loaded->subject = name;
        }
    }
    return loaded;
}

}  // namespace jobcast::web
