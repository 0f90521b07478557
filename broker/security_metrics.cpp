#include "broker/security_metrics.hpp"

#include "common/metric_family.hpp"

namespace jobcast::broker {

namespace {

template <std::size_t N>
prometheus::MetricFamily counter_family(std::string name, std::string help, const char* label,
                                        const std::array<std::string_view, N>& values,
                                        const std::array<std::atomic<std::uint64_t>, N>& counts) {
    auto family =
        metrics::family(std::move(name), std::move(help), prometheus::MetricType::Counter);
    for (std::size_t i = 0; i < N; ++i) {
        family.metric.push_back(
            metrics::sample(static_cast<double>(counts[i].load(std::memory_order_relaxed)),
                            prometheus::MetricType::Counter, {{label, std::string(values[i])}}));
    }
    return family;
}

}  // namespace

void add_security_families(std::vector<prometheus::MetricFamily>& out,
                           const web::SecurityStats& stats) {
    out.push_back(counter_family("jobcast_auth_failures_total",
                                 "Requests, WebSocket ops and streams refused for their token",
                                 "reason", web::kAuthFailureReasons, stats.auth_failures));
    out.push_back(counter_family("jobcast_limit_hits_total",
                                 "Requests, messages and connections refused by a limit", "limit",
                                 web::kLimitNames, stats.limit_hits));
    out.push_back(counter_family("jobcast_requests_refused_total",
                                 "Requests refused for their Host or Origin header", "reason",
                                 web::kRefusalReasons, stats.refused_requests));
    out.push_back(counter_family("jobcast_tls_handshake_failures_total",
                                 "Connections to the TLS port that did not complete a handshake",
                                 "reason", web::kTlsFailureReasons, stats.tls_failures));
    if (auto expiry = stats.tls_certificate_expiry.load(std::memory_order_relaxed); expiry > 0) {
        out.push_back(metrics::single("jobcast_tls_certificate_expiry_timestamp_seconds",
                                      "notAfter of the certificate the HTTP port serves",
                                      prometheus::MetricType::Gauge, static_cast<double>(expiry)));
    }
}

}  // namespace jobcast::broker
