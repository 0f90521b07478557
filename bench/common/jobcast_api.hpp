// The broker's REST API as the WebSocket benches use it (jobs, /metrics).
#pragma once

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <string>

#include "bench/common/metrics.hpp"

namespace jobcast::bench {

using tcp = boost::asio::ip::tcp;

// One Boost.Beast HTTP/1.1 connection per request.
class JobcastApi {
  public:
    JobcastApi(const std::string& host, int port)
        : ep_(boost::asio::ip::make_address(host), static_cast<unsigned short>(port)) {}

    const tcp::endpoint& endpoint() const { return ep_; }
    // POST /v1/jobs {"type":TYPE,"params":PARAMS}; the new job's id.
    std::string submit(const std::string& type, const std::string& params) const;
    // GET /v1/jobs/ID: the job's JSON.
    std::string job(const std::string& id) const;
    void cancel(const std::string& id) const;
    Metrics metrics() const;
    double metric(const std::string& series) const { return bench::metric(metrics(), series); }

  private:
    tcp::endpoint ep_;
};

}  // namespace jobcast::bench
