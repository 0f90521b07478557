#include "broker/broker.hpp"

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <stop_token>
#include <thread>

#include "broker/gateway.hpp"
#include "broker/metrics.hpp"
#include "broker/security_config.hpp"
#include "cluster/cluster_feeder.hpp"
#include "cluster/engine_health.hpp"
#include "cluster/live_publisher.hpp"
#include "cluster/redis_live_feed.hpp"
#include "cluster/redis_store.hpp"
#include "cluster/redis_stream_log.hpp"
#include "cluster/redis_token_revocations.hpp"
#include "common/clock.hpp"
#include "common/logging.hpp"
#include "live/hub.hpp"
#include "persistence/job_commands.hpp"
#include "persistence/token_revocations.hpp"
#include "persistence/written_seqs.hpp"
#include "protocol/json.hpp"
#include "protocol/schema_registry.hpp"
#include "redis/cluster.hpp"
#include "redis/loop.hpp"
#include "web/http/blocking_pool.hpp"
#include "web/http/http_server.hpp"
#include "web/http/static_assets.hpp"
#include "web/http/tls.hpp"
#include "web/rest/rest_api.hpp"
#include "web/security/security.hpp"
#include "web/stream/stream_session.hpp"
#include "web/streams/durable_streams.hpp"

namespace jobcast::broker {

namespace {

// Descriptors kept free below the limit once the HTTP port is full: worker
// connections, SQLite's temporary files, ZeroMQ reconnects, and the sockets
// that answer refused connections (web caps those at 16).
constexpr std::size_t kFdReserve = 64;
// Whatever the limits, the HTTP port may hold this many connections.
constexpr std::size_t kMinConnections = 16;

std::size_t open_descriptors() {
    std::error_code ec;
    std::size_t n = 0;
    for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
        ++n;
    }
    return ec || n == 0 ? kFdReserve : n;
}

// Raises the soft RLIMIT_NOFILE to the hard limit, and returns the cap on
// open HTTP connections: `requested` (0: as many as fit), never more than
// the descriptors left under the limit after those in use and a reserve.
std::size_t connection_cap(std::size_t requested, spdlog::logger& log) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
        log.warn("event=fd_limit error=\"getrlimit failed\"");
        return requested;
    }
    const rlim_t was = limit.rlim_cur;
    if (limit.rlim_cur < limit.rlim_max) {
        rlimit raised = limit;
        raised.rlim_cur = limit.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
    }
    const std::size_t soft = limit.rlim_cur == RLIM_INFINITY
                                 ? std::size_t{1} << 20
                                 : static_cast<std::size_t>(limit.rlim_cur);
    const std::size_t in_use = open_descriptors();
    const std::size_t spare = in_use + kFdReserve;
    const std::size_t fits = soft > spare + kMinConnections ? soft - spare : kMinConnections;
    const std::size_t cap = requested == 0 ? fits : std::min(requested, fits);
    log.info(
        "event=fd_limit soft={} hard={} soft_at_start={} in_use={} max_connections={}", soft,
        limit.rlim_max == RLIM_INFINITY ? std::string("unlimited") : std::to_string(limit.rlim_max),
        static_cast<std::size_t>(was), in_use, cap);
    if (requested > fits) {
        log.warn(
            "event=max_connections_lowered requested={} max_connections={} reason=\"the file "
            "descriptor limit leaves room for no more\"",
            requested, cap);
    }
    if (fits == kMinConnections) {
        log.warn("event=fd_limit_low soft={} reason=\"raise ulimit -n\"", soft);
    }
    return cap;
}

bool is_path(const web::HttpRequest& request, std::string_view path) {
    const std::string_view target = request.target;
    return target == path || (target.starts_with(path) && target[path.size()] == '?');
}

std::string host_name() {
    char name[256] = {};
    return ::gethostname(name, sizeof name - 1) == 0 ? std::string(name) : std::string("broker");
}

// The gateway's ClusterLink on the cluster feeder.
class FeederLink final : public ClusterLink {
  public:
    explicit FeederLink(cluster::ClusterFeeder& feeder) : feeder_(feeder) {}
    void want(std::map<std::string, std::size_t> free_slots) override {
        feeder_.want(std::move(free_slots));
    }
    void renew(Inflight held, std::function<void(Renewal)> done) override {
        feeder_.renew(std::move(held), [done = std::move(done)](cluster::Renewal r) {
            done(Renewal{std::move(r.lost), std::move(r.cancel)});
        });
    }
    void claim(const std::string& worker, Inflight inflight,
               std::function<void(Inflight)> done) override {
        feeder_.claim(worker, std::move(inflight), std::move(done));
    }
    void not_queued(std::vector<QueuedJob> jobs,
                    std::function<void(std::vector<std::string>)> done) override {
        std::vector<cluster::QueuedRef> refs;
        refs.reserve(jobs.size());
        for (auto& job : jobs)
            refs.emplace_back(std::move(job.job), std::move(job.type));
        feeder_.not_queued(std::move(refs), std::move(done));
    }

  private:
    cluster::ClusterFeeder& feeder_;
};

// This process among the cluster's brokers: host, pid and a random part.
std::string broker_id() {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    std::random_device random;
    char suffix[9];
    std::snprintf(suffix, sizeof suffix, "%08x", random());
    return std::string(host) + "-" + std::to_string(::getpid()) + "-" + suffix;
}

}  // namespace

class Broker::Impl {
  public:
    explicit Impl(BrokerConfig config)
        : config_(std::move(config)), log_(module_logger("broker")) {}

    // The HTTP server serves from the start: /healthz, /metrics and a
    // /readyz that says why the broker is not ready yet. With SQLite the rest
    // follows at once. In cluster mode it follows once the engine answers and
    // its library checks out: until then a thread keeps trying with backoff,
    // and start() returns as soon as HTTP serves.
    void start() {
        // The commit listener runs on the writer (engine) thread after COMMIT
        // (and, in cluster mode, after the replicas have it): only then are
        // acks sent and events shown (durable before visible).
        auto on_commit = [this](store::CommittedBatch& batch) {
            if (auto* g = gateway_.load(std::memory_order_acquire)) g->on_commit(batch);
            if (!batch.committed) return;  // only the lease outcomes of a failed batch
            metrics_.on_commit(batch);
            if (publisher_) publisher_->publish(batch);  // other brokers' subscribers
            if (auto* hub = live_hub_.load(std::memory_order_acquire))
                hub->publish(std::move(batch.events));
        };
        if (!config_.cluster) {
            feed_ = std::make_unique<live::LocalFeed>();  // one node: every commit is local
            make_hub();
            store_ = store::Store::open(config_.store, on_commit);
        }

        pool_ = std::make_unique<web::BlockingPool>(4);
        // After the store opened its descriptors, those left bound the HTTP
        // connections: over the cap a client gets a clear 503, and the broker
        // never runs out of descriptors for its own work.
        config_.security.limits.max_connections =
            connection_cap(config_.security.limits.max_connections, *log_);
        security_ = std::make_shared<web::SecurityContext>(config_.security);

        web::HttpConfig http;
        http.listen = config_.http;
        http.io_threads = static_cast<std::size_t>(config_.http_threads);
        http.body_limit = config_.max_body_bytes;
        http.read_timeout = config_.read_timeout;
        http.security = security_;
        if (config_.tls.enabled()) {
            tls_ = std::make_shared<web::TlsServer>(config_.tls);
            http.tls = tls_;
            note_certificate();
        }
        http_ = std::make_unique<web::HttpServer>(
            http,
            [this](web::HttpRequest request, web::Reply reply) {
                route(std::move(request), reply);
            },
            [security = security_](web::HttpRequest& request) {
                return security->authenticate(request);
            });
        metrics_.watch_security(&security_->stats);
        metrics_.watch_http([this] {
            std::vector<std::tuple<std::string, int, std::uint64_t>> out;
            for (auto& c : http_->request_counts())
                out.emplace_back(c.route, c.code, c.count);
            return out;
        });
        http_->start();

        if (!config_.cluster) return serve();
        watch_cluster();
        log_->info("event=waiting_for_engine http={} seeds={}", http_->bound_endpoint(),
                   seeds(*config_.cluster));
        opener_ =
            std::jthread([this, on_commit](std::stop_token stop) { open_engine(stop, on_commit); });
    }

    // Everything that needs the store: the gateway, streaming, REST.
    void serve() {
        commands_ = std::make_unique<store::StoreCommands>(*store_);
        config_.gateway.schemas = schemas_;
        gateway_owner_ =
            std::make_unique<Gateway>(config_.gateway, *store_, Clock::system(), link_.get());
        gateway_owner_->start();
        gateway_.store(gateway_owner_.get(), std::memory_order_release);
        if (feeder_) feeder_->start();
        if (security_->auth_enabled()) use_job_tokens();
        streaming_ = std::make_shared<web::StreamingContext>(web::StreamingContext{
            *hub_, store_->jobs(), store_->events(), *commands_,
            [this](std::function<void()> task) { return pool_->post(std::move(task)); },
            config_.streaming, stream_stats_, security_});

        web::RestConfig rest;
        rest.ready = [this] { return not_ready_reason().empty(); };
        rest.max_page_bytes = config_.streaming.replay_page_bytes;
        rest.hub = hub_.get();
        rest.schedule = [this](std::chrono::milliseconds delay, std::function<void()> task) {
            http_->schedule(delay, std::move(task));
        };
        rest.security = security_;
        rest.schemas = schemas_;
        rest.stream_stats = &stream_stats_;
        rest_ = std::make_unique<web::RestApi>(
            store_->jobs(), store_->events(), *commands_, rest,
            [this](std::function<void()> task) { return pool_->post(std::move(task)); });
        durable_ = std::make_unique<web::streams::DurableStreams>(
            stream_log_ ? stream_log_.get() : store_->streams(), *rest_, *hub_,
            config_.durable_streams,
            [this](std::function<void()> task) { return pool_->post(std::move(task)); },
            rest.schedule, security_);
        http_->serve_streams(streaming_, durable_.get());
        metrics_.watch_durable_streams(&durable_->stats());

        metrics_.watch_gateway(&gateway_owner_->stats());
        metrics_.watch_streams(&stream_stats_, [this] { return hub_->subscriptions(); });
        metrics_.watch_params_refusals([this] { return schemas_->refusals(); });
        metrics_.watch_job_counts([this] { return store_->jobs().count_by_state(); });

        serving_.store(rest_.get(), std::memory_order_release);
        ready_ = true;
        log_->info(
            "listening http={} zmq={} db={} auth={} tls={}", http_->bound_endpoint(),
            gateway_owner_->endpoint(),
            config_.cluster ? "redis-cluster://" + seeds(*config_.cluster) : config_.store.path,
            auth_description(), tls_ ? "TLSv" + config_.tls.min_version + "+" : std::string("off"));
    }

    // Job tokens, with revocations that outlive a restart: in SQLite, or in
    // cluster mode on the Redis Cluster, where those taken on any broker hold
    // (and close streams) on every broker: each one is published as it is
    // stored, and the set is reloaded should a message be missed.
    void use_job_tokens() {
        if (!config_.cluster) {
            security_->use_job_tokens(make_job_tokens(
                config_.security, store_->worker_session_key(),
                store::open_token_revocations(config_.store.path, config_.store.busy_timeout)));
            return;
        }
        cluster::RedisRevocationsConfig stored;
        stored.wait_replicas = config_.cluster->wait_replicas;
        stored.wait_timeout = config_.cluster->wait_timeout;
        auto tokens =
            make_job_tokens(config_.security, store_->worker_session_key(),
                            std::make_unique<cluster::RedisTokenRevocations>(*redis_, stored));
        revocations_ = std::make_unique<cluster::RevocationFollower>(
            *redis_, [weak = std::weak_ptr<web::JobTokens>(tokens)](
                         std::vector<store::TokenRevocation> revocations) {
                if (auto tokens = weak.lock())
                    tokens->apply(revocations, Clock::system().unix_ms());
            });
        security_->use_job_tokens(std::move(tokens));
    }

    // The I/O threads: what needs nothing but the broker itself is answered
    // here, the rest by REST once it serves (503 until then).
    void route(web::HttpRequest request, const web::Reply& reply) {
        if (is_path(request, "/metrics")) return serve_metrics(request, reply);
        if (auto asset = web::static_asset(request.method, request.target))
            return reply(std::move(*asset));
        const bool get = request.method == "GET" || request.method == "HEAD";
        if (get && is_path(request, "/readyz")) {
            if (auto reason = not_ready_reason(); !reason.empty()) {
                std::string body = R"({"status":"not_ready","reason":)";
                json::append_quoted(body, reason);
                return reply({503, "application/json", body + "}", {}});
            }
        }
        if (auto* rest = serving_.load(std::memory_order_acquire)) {
            // durable_ is set before serving_ (release): seen with it.
            if (web::streams::is_stream_target(request.target))
                return durable_->handle(std::move(request), reply);
            return rest->handle(std::move(request), reply);
        }
        if (get && is_path(request, "/healthz"))
            return reply({200, "application/json", R"({"status":"ok"})", {}});
        reply({503,
               "application/json",
               json::error_body("not_ready", "the broker is starting: " + not_ready_reason()),
               {{"Retry-After", "1"}}});
    }

    // Empty when ready; otherwise why not.
    std::string not_ready_reason() const {
        if (stopped_) return "stopping";
        if (!ready_) {
            std::lock_guard lock(engine_mutex_);
            return engine_error_.empty() ? "opening the store"
                                         : "the engine is unreachable: " + engine_error_;
        }
        if (health_) {
            const cluster::EngineHealthStatus status = health_->status();
            if (status.checked && !status.reachable)
                return "the engine is unreachable: " + status.reason;
        }
        return {};
    }

    // The opener thread (cluster mode): opens the engine until it answers,
    // then serves. A library of another version, or any other error a person
    // must fix, ends the start: main() sees failure() and exits.
    void open_engine(std::stop_token stop, const store::Store::CommitListener& on_commit) {
        constexpr std::chrono::milliseconds kMaxDelay{5000};
        std::chrono::milliseconds delay{200};
        std::mutex mutex;
        std::condition_variable_any stopped;
        for (int attempt = 1; !stop.stop_requested(); ++attempt) {
            try {
                open_cluster(on_commit, stop);
                serve();
                return;
            } catch (const cluster::EngineUnreachable& error) {
                drop_engine();
                if (stop.stop_requested()) return;
                {
                    std::lock_guard lock(engine_mutex_);
                    engine_error_ = error.what();
                }
                log_->warn(
                    "event=engine_unreachable seeds={} attempt={} error=\"{}\" "
                    "next_attempt_ms={}",
                    seeds(*config_.cluster), attempt, error.what(), delay.count());
                std::unique_lock lock(mutex);
                stopped.wait_for(lock, stop, delay, [] { return false; });
                delay = std::min(kMaxDelay, delay * 2);
            } catch (const std::exception& error) {
                drop_engine();
                log_->critical("event=start_failed error=\"{}\"", error.what());
                std::lock_guard lock(engine_mutex_);
                failure_ = error.what();
                return;
            }
        }
    }

    // Cluster mode: the jobcast_cluster_* figures, read at scrape time;
    // nothing of the engine until the broker serves.
    void watch_cluster() {
        metrics_.watch_cluster([this] {
            ClusterFigures figures;
            if (!ready_) return figures;
            const cluster::EngineHealthStatus health = health_->status();
            const cluster::RedisStoreStats engine = engine_->stats();
            // As /readyz: the store just opened through the engine, so it is
            // up until a health check says otherwise (the first one may still
            // be under way).
            figures.engine_up = !health.checked || health.reachable;
            figures.wait_timeouts = engine.wait_timeouts;
            for (const cluster::ShardHealth& shard : health.shards) {
                const bool waits = std::find(engine.degraded.begin(), engine.degraded.end(),
                                             shard.primary) != engine.degraded.end();
                figures.shards.push_back(
                    {shard.slots, shard.primary.str(), shard.degraded || waits});
            }
            // The store's rounds and reads, and the live fan-out's own client.
            redis::ClusterStats retries = engine.retries;
            const redis::ClusterStats live = redis_->stats();
            figures.retries = {{"moved", retries.moved + live.moved},
                               {"ask", retries.ask + live.ask},
                               {"tryagain", retries.tryagain + live.tryagain},
                               {"clusterdown", retries.clusterdown + live.clusterdown},
                               {"connection", retries.connection + live.connection},
                               {"refused", engine.retries_refused}};
            const live::HubStats hub = hub_->stats();
            figures.remote_events = hub.remote_events;
            figures.hub_gap_fills = hub.gap_fills;
            figures.feed_gap_fills =
                dynamic_cast<cluster::RedisLiveFeed&>(*feed_).stats().gap_fills;
            const cluster::LivePublisherStats published = publisher_->stats();
            figures.publishes = published.publishes;
            figures.publish_failures = published.failures;
            const cluster::FeederStats hints = feeder_->stats();
            figures.hints = {{"ready", published.ready_hints, hints.ready_hints},
                             {"cancel", published.cancel_hints, hints.cancel_hints}};
            figures.brokers = health.brokers;
            figures.queued_ops = engine.queued_ops;
            return figures;
        });
    }

    void make_hub() {
        hub_ = std::make_unique<live::Hub>(
            *feed_, [this](const std::string& job, std::uint64_t after, std::uint64_t before) {
                return live::fill_from(store_->events())(job, after, before);
            });
        live_hub_.store(hub_.get(), std::memory_order_release);
    }

    // Cluster mode (CLUSTER.md): the Redis store; a second connection set for
    // the live fan-out between brokers (this broker's commits published to the
    // jobs' live channels, the channels of jobs watched here subscribed); the
    // store is shared, so nothing is reloaded from it at start.
    void open_cluster(store::Store::CommitListener on_commit, std::stop_token stop) {
        const cluster::RedisStoreConfig& engine = *config_.cluster;
        partitions_ = std::make_unique<cluster::Partitions>(engine.partitions);
        redis_loop_ = std::make_unique<redis::Loop>();
        redis::ClusterOptions options;
        options.seeds = engine.seeds;
        options.connection.connect_timeout = engine.connect_timeout;
        redis_ = std::make_unique<redis::Cluster>(*redis_loop_, options);
        publisher_ = std::make_unique<cluster::LivePublisher>(*redis_, *partitions_);
        auto deliver = [this](std::vector<store::JobEvents> events) {
            if (auto* hub = live_hub_.load(std::memory_order_acquire))
                hub->publish_remote(std::move(events));
        };
        auto redis_store = cluster::open_redis_store(engine, std::move(on_commit), Clock::system(),
                                                     stop, [this](const std::string& error) {
                                                         std::lock_guard lock(engine_mutex_);
                                                         engine_error_ = error;
                                                     });
        engine_ = redis_store.get();
        store_ = std::move(redis_store);
        // Created streams (/v1/streams/), on the live fan-out's connections.
        cluster::RedisStreamLogConfig streams;
        streams.wait_replicas = engine.wait_replicas;
        streams.wait_timeout = engine.wait_timeout;
        streams.retention = engine.retention;
        stream_log_ = std::make_unique<cluster::RedisStreamLog>(*redis_, *partitions_, streams);
        {
            std::lock_guard lock(engine_mutex_);
            engine_error_.clear();  // it answers: what is left is opening the rest
        }
        // The Redis store knows how far each job's log is written.
        feed_ = std::make_unique<cluster::RedisLiveFeed>(
            *redis_, *partitions_, store_->events(),
            dynamic_cast<store::WrittenSeqs&>(store_->jobs()), deliver, deliver);
        make_hub();
        health_ = std::make_unique<cluster::EngineHealth>(
            *redis_, host_name() + ':' + http_->bound_endpoint(), engine.wait_replicas);
        config_.gateway.reload_unfinished = false;
        config_.gateway.cluster = true;
        // Any broker dispatches any job, keeps its leases, takes over those of
        // a broker that died (CLUSTER.md §5.6).
        cluster::FeederConfig feeding;
        feeding.broker = broker_id();
        feeding.lease_timeout = config_.gateway.lease_timeout();
        feeding.writes_paused = [health = health_.get()](std::uint16_t slot) {
            return health->status().writes_paused(slot);
        };
        feeder_ = std::make_unique<cluster::ClusterFeeder>(
            *redis_, *partitions_, *store_, feeding,
            [this](std::vector<cluster::ReservedJob> jobs) {
                auto* gateway = gateway_.load(std::memory_order_acquire);
                if (!gateway) return;
                std::vector<QueuedJob> queued;
                for (auto& job : jobs)
                    queued.push_back({std::move(job.job), std::move(job.type), job.priority});
                gateway->offer(std::move(queued));
            },
            [this](std::vector<std::string> jobs) {
                if (auto* gateway = gateway_.load(std::memory_order_acquire))
                    gateway->cancel_requested(std::move(jobs));
            });
        link_ = std::make_unique<FeederLink>(*feeder_);
        log_->info("event=cluster_mode seeds={} partitions={} retention_ms={} broker={}",
                   seeds(engine), engine.partitions, engine.retention.count(), feeding.broker);
    }

    // What a failed open left: the next attempt starts afresh.
    void drop_engine() {
        link_.reset();
        feeder_.reset();
        health_.reset();
        live_hub_.store(nullptr, std::memory_order_release);
        hub_.reset();
        feed_.reset();
        engine_ = nullptr;
        store_.reset();
        stream_log_.reset();
        publisher_.reset();
        redis_.reset();
        redis_loop_.reset();
        partitions_.reset();
    }

    static std::string seeds(const cluster::RedisStoreConfig& engine) {
        return cluster::seed_list(engine.seeds);
    }

    void reload_tls() {
        if (!tls_) {
            log_->info("event=tls_reload result=skipped reason=\"TLS is off\"");
            return;
        }
        try {
            tls_->reload();
            note_certificate();
        } catch (const std::exception& e) {
            log_->error("event=tls_reload result=failed error=\"{}\" kept=\"{}\"", e.what(),
                        tls_->subject());
        }
    }

    // Logs the certificate now served, sets the expiry gauge, and warns when
    // it is close to (or past) its end.
    void note_certificate() {
        const auto expiry = tls_->not_after();
        security_->stats.tls_certificate_expiry.store(expiry, std::memory_order_relaxed);
        const auto now = Clock::system().unix_ms() / 1000;
        const auto days = (expiry - now) / 86400;
        log_->info("event=tls_certificate subject=\"{}\" not_after={} days_left={}",
                   tls_->subject(), expiry, days);
        if (expiry <= now) {
            log_->error("event=tls_certificate_expired subject=\"{}\"", tls_->subject());
        } else if (days < 14) {
            log_->warn("event=tls_certificate_expiring subject=\"{}\" days_left={}",
                       tls_->subject(), days);
        }
    }

    std::string auth_description() const {
        if (!security_->auth_enabled()) return "off";
        std::string out = "jwt";
        for (const auto& alg : security_->algorithms())
            out += (out == "jwt" ? ":" : ",") + alg;
        return out;
    }

    void serve_metrics(const web::HttpRequest& request, web::Reply reply) {
        if (request.method != "GET") {
            reply({405,
                   "application/json",
                   R"({"error":{"code":"method_not_allowed","message":"use GET"}})",
                   {{"Allow", "GET"}}});
            return;
        }
        // Scraping reads job counts from SQLite: off the I/O threads.
        auto shared = std::make_shared<web::Reply>(std::move(reply));
        if (!pool_->post([this, shared] {
                (*shared)({200, "text/plain; version=0.0.4", metrics_.scrape(), {}});
            })) {
            (*shared)({503,
                       "application/json",
                       R"({"error":{"code":"busy","message":"try again"}})",
                       {}});
        }
    }

    void stop() {
        if (stopped_.exchange(true)) return;
        log_->info("event=stopping");
        if (opener_.joinable()) {  // an open still trying gives up; one done has served
            opener_.request_stop();
            opener_.join();
        }
        ready_ = false;
        if (rest_) rest_->release_long_polls();
        if (durable_) durable_->release_waits();
        if (http_) http_->stop();  // WebSocket clients get 1012: reconnect and resume
        if (pool_) pool_->stop();
        if (feeder_) feeder_->stop();  // no more jobs, renewals or claims for the gateway
        revocations_.reset();
        if (gateway_owner_) gateway_owner_->stop();
        // No subscriber is left: the feed (cluster mode) stops handing batches
        // over and reading the store, then the hub stops, then the store
        // commits what is queued (its last batches reach no one).
        health_.reset();
        if (auto* feed = dynamic_cast<cluster::RedisLiveFeed*>(feed_.get())) feed->stop();
        live_hub_.store(nullptr, std::memory_order_release);
        if (hub_) hub_->stop();
        if (store_) store_->close();
        gateway_.store(nullptr);
        log_->info("event=stopped");
    }

    BrokerConfig config_;
    std::shared_ptr<spdlog::logger> log_;
    Metrics metrics_;
    web::StreamStats stream_stats_;
    // Outlives the feed and the hub below, which read it (stop() closes it first).
    std::unique_ptr<store::Store> store_;
    // Cluster mode only: the connections of the live fan-out between brokers.
    std::unique_ptr<cluster::Partitions> partitions_;
    std::unique_ptr<redis::Loop> redis_loop_;
    std::unique_ptr<redis::Cluster> redis_;
    std::unique_ptr<cluster::LivePublisher> publisher_;
    std::unique_ptr<cluster::RedisStreamLog> stream_log_;  // created streams (/v1/streams/)
    cluster::RedisStore* engine_ = nullptr;                // store_, as the Redis store
    std::unique_ptr<cluster::EngineHealth> health_;
    std::unique_ptr<cluster::ClusterFeeder> feeder_;
    std::unique_ptr<FeederLink> link_;
    std::unique_ptr<cluster::RevocationFollower> revocations_;  // other brokers' revocations
    std::unique_ptr<live::LiveFeed> feed_;
    std::unique_ptr<live::Hub> hub_;
    // hub_, for the store's and the feed's threads: set once it exists,
    // cleared when it stops.
    std::atomic<live::Hub*> live_hub_{nullptr};
    std::unique_ptr<store::StoreCommands> commands_;  // web writes through these
    // Announced by workers (gateway), checked at submit (REST).
    std::shared_ptr<proto::SchemaRegistry> schemas_ = std::make_shared<proto::SchemaRegistry>();
    std::shared_ptr<web::SecurityContext> security_;
    std::shared_ptr<web::TlsServer> tls_;  // null: plain HTTP
    std::shared_ptr<web::StreamingContext> streaming_;
    std::unique_ptr<Gateway> gateway_owner_;
    std::atomic<Gateway*> gateway_{nullptr};
    std::unique_ptr<web::BlockingPool> pool_;
    std::unique_ptr<web::RestApi> rest_;
    std::atomic<web::RestApi*> serving_{nullptr};  // rest_, for the I/O threads, once it serves
    std::unique_ptr<web::streams::DurableStreams> durable_;
    std::unique_ptr<web::HttpServer> http_;
    std::atomic<bool> ready_{false};
    std::atomic<bool> stopped_{false};
    // Cluster mode: the open that waits for the engine, and why it waits
    // (or why it gave up).
    mutable std::mutex engine_mutex_;
    std::string engine_error_;
    std::string failure_;
    std::jthread opener_;

    std::optional<std::string> failure() const {
        std::lock_guard lock(engine_mutex_);
        if (failure_.empty()) return std::nullopt;
        return failure_;
    }
};

Broker::Broker(BrokerConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}
Broker::~Broker() {
    impl_->stop();
}
void Broker::start() {
    impl_->start();
}
void Broker::stop() {
    impl_->stop();
}
void Broker::reload_tls() {
    impl_->reload_tls();
}
std::string Broker::http_endpoint() const {
    return impl_->http_->bound_endpoint();
}
std::optional<std::string> Broker::failure() const {
    return impl_->failure();
}
std::string Broker::zmq_endpoint() const {
    return impl_->gateway_owner_->endpoint();
}

}  // namespace jobcast::broker
