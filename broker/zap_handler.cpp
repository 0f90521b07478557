#include "broker/zap_handler.hpp"

#include <array>
#include <zmq_addon.hpp>

#include "common/log_quote.hpp"
#include "common/logging.hpp"
#include "common/thread_name.hpp"

namespace jobcast::broker {

namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr std::size_t kMaxRefusedKeysLogged = 1000;

std::string z85(const zmq::message_t& key) {
    std::array<char, 41> out{};
    if (key.size() != 32 || !zmq_z85_encode(out.data(), key.data<std::uint8_t>(), 32)) return {};
    return std::string(out.data(), 40);
}

}  // namespace

ZapHandler::ZapHandler(zmq::context_t& context, std::unordered_set<std::string> allowed)
    : context_(context), allowed_(std::move(allowed)) {}

ZapHandler::~ZapHandler() {
    stop();
}

void ZapHandler::start() {
    socket_ = zmq::socket_t(context_, zmq::socket_type::rep);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.bind(kZapEndpoint);
    running_ = true;
    thread_ = std::thread([this] {
        name_this_thread("jc-zap");
        loop();
    });
}

void ZapHandler::stop() {
    if (!running_.exchange(false)) return;
    if (thread_.joinable()) thread_.join();
    socket_.close();
}

void ZapHandler::loop() {
    auto log = module_logger("gateway");
    std::vector<zmq::pollitem_t> items = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
    while (running_) {
        try {
            // Short polls so stop() is noticed; ZAP requests are rare (one per handshake).
            if (zmq::poll(items, std::chrono::milliseconds(100)) == 0) continue;
            std::vector<zmq::message_t> request;
            if (!zmq::recv_multipart(socket_, std::back_inserter(request),
                                     zmq::recv_flags::dontwait))
                continue;
            answer(request);
        } catch (const zmq::error_t& e) {
            if (e.num() == ETERM) return;
            log->error("zap handler error={}", log_quote(e.what()));
        }
    }
}

bool ZapHandler::answer(std::vector<zmq::message_t>& request) {
    // version, request id, domain, address, identity, mechanism, credentials...
    // On success the user id is the worker's public key (Z85): the gateway
    // reads it from every message ("User-Id") and binds worker names to it.
    auto reply = [&](const char* code, const char* text, std::string_view user_id = {}) {
        std::array<zmq::const_buffer, 6> frames = {
            zmq::str_buffer("1.0"),
            zmq::buffer(request.size() > 1 ? request[1].data() : nullptr,
                        request.size() > 1 ? request[1].size() : 0),
            zmq::buffer(code, 3),
            zmq::buffer(text, std::strlen(text)),
            zmq::buffer(user_id.data(), user_id.size()),
            zmq::str_buffer("")};
        zmq::send_multipart(socket_, frames);
        return code[0] == '2';
    };
    if (request.size() < 6 || request[0].to_string_view() != "1.0") {
        return reply("400", "malformed ZAP request");
    }
    const auto address = request[3].to_string();
    const auto mechanism = request[5].to_string_view();
    std::string key = mechanism == "CURVE" && request.size() >= 7 ? z85(request[6]) : "";
    if (!key.empty() && allowed_.count(key)) {
        module_logger("gateway")->debug("worker key accepted address={} key={}", address, key);
        return reply("200", "OK", key);
    }
    refused_.fetch_add(1, std::memory_order_relaxed);
    // Workers retry every few seconds: warn once per key, then debug.
    bool first = refused_keys_.size() < kMaxRefusedKeysLogged && refused_keys_.insert(key).second;
    module_logger("audit")->log(first ? spdlog::level::warn : spdlog::level::debug,
                                "event=worker_refused mechanism={} address={} key={}", mechanism,
                                address, key.empty() ? "none" : key);
    return reply("400", "worker key not allowed");
}

}  // namespace jobcast::broker
