#include "redis/cluster.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <charconv>
#include <future>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "redis/error.hpp"
#include "redis/loop_impl.hpp"
#include "redis/slot.hpp"

namespace jobcast::redis {

namespace {

// A flat [name, value, name, value, ...] array as CLUSTER SHARDS returns maps in RESP2.
const Reply* field(const Reply& map, std::string_view name) {
    if (!map.is_array()) return nullptr;
    for (std::size_t i = 0; i + 1 < map.elements.size(); i += 2)
        if (map.elements[i].is_text() && map.elements[i].str == name) return &map.elements[i + 1];
    return nullptr;
}

std::optional<std::uint16_t> slot_number(const Reply& value) {
    if (!value.is_integer() || value.integer < 0 || value.integer >= kSlots) return std::nullopt;
    return static_cast<std::uint16_t>(value.integer);
}

std::optional<Endpoint> node_endpoint(const Reply& node) {
    const Reply* port = field(node, "port");
    if (!port || !port->is_integer() || port->integer <= 0 || port->integer > 65535)
        return std::nullopt;
    // "endpoint" is what the node tells clients to use; "?" means unknown.
    const Reply* host = field(node, "endpoint");
    if (!host || !host->is_text() || host->str.empty() || host->str == "?")
        host = field(node, "ip");
    if (!host || !host->is_text() || host->str.empty()) return std::nullopt;
    return Endpoint{host->str, static_cast<std::uint16_t>(port->integer)};
}

std::string_view text_of(const Reply* value) {
    return value && value->is_text() ? std::string_view(value->str) : std::string_view();
}

}  // namespace

std::optional<std::vector<Shard>> parse_cluster_shards(const Reply& reply) {
    if (!reply.is_array()) return std::nullopt;
    std::vector<Shard> shards;
    for (const Reply& entry : reply.elements) {
        const Reply* slots = field(entry, "slots");
        const Reply* nodes = field(entry, "nodes");
        if (!slots || !slots->is_array() || !nodes || !nodes->is_array()) return std::nullopt;
        Shard shard;
        for (std::size_t i = 0; i + 1 < slots->elements.size(); i += 2) {
            auto first = slot_number(slots->elements[i]);
            auto last = slot_number(slots->elements[i + 1]);
            if (!first || !last || *first > *last) return std::nullopt;
            shard.slots.emplace_back(*first, *last);
        }
        // A primary marked failed stays listed until it rejoins; an online one wins.
        bool primary_online = false;
        bool has_primary = false;
        for (const Reply& node : nodes->elements) {
            auto endpoint = node_endpoint(node);
            if (!endpoint) continue;
            bool online = text_of(field(node, "health")) != "failed";
            if (text_of(field(node, "role")) == "master") {
                if (!has_primary || (online && !primary_online)) {
                    shard.primary = *endpoint;
                    primary_online = online;
                }
                has_primary = true;
            } else if (online) {
                shard.replicas.push_back(*endpoint);
            }
        }
        if (has_primary) shards.push_back(std::move(shard));
    }
    return shards;
}

std::optional<std::vector<Shard>> parse_cluster_slots(const Reply& reply) {
    if (!reply.is_array()) return std::nullopt;
    auto endpoint = [](const Reply& node) -> std::optional<Endpoint> {
        if (!node.is_array() || node.elements.size() < 2 || !node.elements[0].is_text() ||
            !node.elements[1].is_integer() || node.elements[1].integer <= 0 ||
            node.elements[1].integer > 65535 || node.elements[0].str.empty())
            return std::nullopt;
        return Endpoint{node.elements[0].str, static_cast<std::uint16_t>(node.elements[1].integer)};
    };
    std::vector<Shard> shards;
    for (const Reply& range : reply.elements) {
        if (!range.is_array() || range.elements.size() < 3) return std::nullopt;
        auto first = slot_number(range.elements[0]);
        auto last = slot_number(range.elements[1]);
        auto primary = endpoint(range.elements[2]);
        if (!first || !last || *first > *last || !primary) return std::nullopt;
        // CLUSTER SLOTS lists each range on its own; ranges of one primary form one shard.
        auto same = std::find_if(shards.begin(), shards.end(),
                                 [&](const Shard& s) { return s.primary == *primary; });
        if (same == shards.end()) {
            same = shards.insert(shards.end(), Shard{{}, *primary, {}});
            for (std::size_t i = 3; i < range.elements.size(); ++i)
                if (auto replica = endpoint(range.elements[i])) same->replicas.push_back(*replica);
        }
        same->slots.emplace_back(*first, *last);
    }
    return shards;
}

std::optional<Redirect> parse_redirect(std::string_view error, const Endpoint& from) {
    Redirect redirect{};
    if (error.starts_with("MOVED ")) {
        redirect.kind = Redirect::Kind::moved;
        error.remove_prefix(6);
    } else if (error.starts_with("ASK ")) {
        redirect.kind = Redirect::Kind::ask;
        error.remove_prefix(4);
    } else {
        return std::nullopt;
    }
    auto space = error.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    std::string_view slot_text = error.substr(0, space);
    auto [end, ec] =
        std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), redirect.slot);
    if (ec != std::errc() || end != slot_text.data() + slot_text.size() || redirect.slot >= kSlots)
        return std::nullopt;
    std::string_view target = error.substr(space + 1);
    if (target.starts_with(':') && target.find(':', 1) == std::string_view::npos) {
        auto port = parse_endpoint(from.host + std::string(target));
        if (!port) return std::nullopt;
        redirect.target = *port;
    } else {
        auto endpoint = parse_endpoint(target);
        if (!endpoint) return std::nullopt;
        redirect.target = *endpoint;
    }
    return redirect;
}

struct Cluster::Impl : std::enable_shared_from_this<Impl> {
    struct Request {
        std::optional<std::uint16_t> slot;  // none: to `node` only
        std::optional<Endpoint> node;
        Command command;
        Completion done;
        int redirects = 0;
        int retries = 0;
        std::optional<Endpoint> ask;
        // What to report when the retries run out.
        std::error_code last_error;
        Reply last_reply;
    };
    using RequestPtr = std::shared_ptr<Request>;

    static constexpr std::uint16_t kNoOwner = 0xffff;

    Impl(Loop& loop, ClusterOptions options)
        : loop(loop), io(io_of(loop)), options(std::move(options)) {}

    Loop& loop;
    asio::io_context& io;
    ClusterOptions options;
    std::vector<std::uint16_t> slot_owner = std::vector<std::uint16_t>(kSlots, kNoOwner);
    std::vector<Endpoint> primaries;  // indexed by slot_owner
    std::vector<Endpoint> replicas;
    std::vector<Shard> shards;  // the last topology applied
    bool has_topology = false;
    std::map<Endpoint, std::shared_ptr<Connection>> connections;
    bool refreshing = false;
    std::vector<std::function<void(std::error_code)>> refresh_waiters;
    std::set<std::shared_ptr<asio::steady_timer>> timers;
    bool closed = false;
    // Written on the loop thread, read by stats() on any.
    std::atomic<std::uint64_t> moved{0}, asked{0}, tryagain{0}, clusterdown{0}, lost{0};

    std::shared_ptr<Connection> connection(const Endpoint& node) {
        auto& slot = connections[node];
        if (!slot || !slot->is_open()) {
            slot = Connection::create(loop, node, options.connection);
            slot->on_close([weak = weak_from_this(), node, raw = slot.get()](std::error_code) {
                auto self = weak.lock();
                if (!self) return;
                auto it = self->connections.find(node);
                if (it != self->connections.end() && it->second.get() == raw)
                    self->connections.erase(it);
            });
        }
        return slot;
    }

    std::optional<Endpoint> owner(std::uint16_t slot) const {
        std::uint16_t index = slot_owner[slot];
        if (index == kNoOwner) return std::nullopt;
        return primaries[index];
    }

    void set_owner(std::uint16_t slot, const Endpoint& node) {
        auto it = std::find(primaries.begin(), primaries.end(), node);
        if (it == primaries.end()) it = primaries.insert(primaries.end(), node);
        slot_owner[slot] = static_cast<std::uint16_t>(it - primaries.begin());
    }

    void finish(const RequestPtr& request, std::error_code ec, Reply reply) {
        Completion done = std::move(request->done);
        if (done) done(ec, std::move(reply));
    }

    void exec(const RequestPtr& request) {
        if (closed) return finish(request, Errc::closed, {});
        std::optional<Endpoint> target = request->node;
        bool asking = false;
        if (!target && request->ask) {
            target = std::exchange(request->ask, std::nullopt);
            asking = true;
        } else if (!target) {
            if (!has_topology) {
                return refresh_topology([self = shared_from_this(), request](std::error_code ec) {
                    if (ec) {
                        self->lost.fetch_add(1, std::memory_order_relaxed);
                        return self->retry_later(request, ec, {}, false);
                    }
                    self->exec(request);
                });
            }
            target = owner(*request->slot);
            if (!target) return retry_later(request, Errc::no_topology, {}, true);
        }
        auto conn = connection(*target);
        if (asking) conn->send({"ASKING"}, nullptr);
        conn->send(request->command, [self = shared_from_this(), request, node = *target](
                                         std::error_code ec, Reply reply) {
            self->on_reply(request, node, ec, std::move(reply));
        });
    }

    void on_reply(const RequestPtr& request, const Endpoint& node, std::error_code ec,
                  Reply reply) {
        if (closed) return finish(request, Errc::closed, {});
        if (request->node) return finish(request, ec, std::move(reply));
        if (ec) {
            lost.fetch_add(1, std::memory_order_relaxed);
            return retry_later(request, ec, {}, true);
        }
        if (!reply.is_error()) return finish(request, {}, std::move(reply));
        std::string_view code = reply.error_code();
        if (code == "MOVED" || code == "ASK") {
            auto redirect = parse_redirect(reply.str, node);
            if (!redirect) return finish(request, {}, std::move(reply));
            if (++request->redirects > options.max_redirects)
                return finish(request, Errc::retries_exhausted, {});
            (redirect->kind == Redirect::Kind::moved ? moved : asked)
                .fetch_add(1, std::memory_order_relaxed);
            if (redirect->kind == Redirect::Kind::moved) {
                set_owner(redirect->slot, redirect->target);
                // More slots probably moved with it; the new owner knows.
                refresh_topology(nullptr, redirect->target);
            } else {
                request->ask = redirect->target;
            }
            return exec(request);
        }
        if (code == "TRYAGAIN" || code == "CLUSTERDOWN") {
            (code == "TRYAGAIN" ? tryagain : clusterdown).fetch_add(1, std::memory_order_relaxed);
            return retry_later(request, {}, std::move(reply), code == "CLUSTERDOWN");
        }
        finish(request, {}, std::move(reply));
    }

    // Resends after a backoff (and a topology refresh if asked), or reports
    // the last outcome when the retries are used up.
    void retry_later(const RequestPtr& request, std::error_code ec, Reply reply, bool refresh) {
        request->last_error = ec;
        request->last_reply = std::move(reply);
        if (++request->retries > options.max_retries) {
            if (request->last_error) return finish(request, request->last_error, {});
            return finish(request, {}, std::move(request->last_reply));
        }
        auto delay = options.first_retry_delay * (1 << std::min(request->retries - 1, 16));
        auto timer = std::make_shared<asio::steady_timer>(
            io, std::min<std::chrono::steady_clock::duration>(delay, options.max_retry_delay));
        timers.insert(timer);
        timer->async_wait(
            [self = shared_from_this(), request, timer, refresh](boost::system::error_code) {
                self->timers.erase(timer);
                if (!refresh || self->closed) return self->exec(request);
                // Resent whatever the refresh gives: a failed one is retried by exec.
                self->refresh_topology([self, request](std::error_code) { self->exec(request); });
            });
    }

    void refresh_topology(std::function<void(std::error_code)> done,
                          std::optional<Endpoint> ask_first = std::nullopt) {
        if (done) refresh_waiters.push_back(std::move(done));
        if (refreshing) return;
        refreshing = true;
        // Then primaries (they know the newest config epoch), replicas, the seeds.
        std::vector<Endpoint> candidates;
        if (ask_first) candidates.push_back(*ask_first);
        for (const auto* list : {&primaries, &replicas, &options.seeds})
            for (const Endpoint& node : *list)
                if (std::find(candidates.begin(), candidates.end(), node) == candidates.end())
                    candidates.push_back(node);
        asio::post(io, [self = shared_from_this(), candidates = std::move(candidates)] {
            auto ask = std::make_shared<TopologyAsk>();
            ask->candidates = std::move(candidates);
            self->ask_next(ask);
        });
    }

    // One refresh's question to its candidates.
    struct TopologyAsk {
        std::vector<Endpoint> candidates;
        std::size_t next = 0;     // the next candidate to ask
        std::size_t waiting = 0;  // asked, not answered yet
        bool done = false;        // refreshed() was called
    };

    // Asks candidates in turn. One that has not answered within
    // options.topology_answer (a stopped node keeps its connection open and
    // says nothing until the reply timeout) is not given up on: the next is
    // asked as well, and the first good answer wins. The refresh fails only
    // once every candidate has failed.
    void ask_next(const std::shared_ptr<TopologyAsk>& ask) {
        if (ask->done) return;
        if (closed) {
            ask->done = true;
            return refreshed(Errc::closed);
        }
        if (ask->next >= ask->candidates.size()) {
            if (ask->waiting == 0) {
                ask->done = true;
                refreshed(Errc::no_topology);
            }
            return;
        }
        ask_topology(ask, ask->candidates[ask->next++], false);
    }

    void ask_topology(const std::shared_ptr<TopologyAsk>& ask, const Endpoint& node,
                      bool slots_command) {
        ++ask->waiting;
        auto moved_on = std::make_shared<bool>(false);  // the next candidate was asked
        auto timer = std::make_shared<asio::steady_timer>(io, options.topology_answer);
        timers.insert(timer);
        timer->async_wait(
            [self = shared_from_this(), ask, moved_on, timer](boost::system::error_code ec) {
                self->timers.erase(timer);
                if (ec || ask->done) return;
                *moved_on = true;
                self->ask_next(ask);
            });
        connection(node)->send({"CLUSTER", slots_command ? "SLOTS" : "SHARDS"},
                               [self = shared_from_this(), ask, node, slots_command, moved_on,
                                timer](std::error_code ec, Reply reply) {
                                   --ask->waiting;
                                   timer->cancel();
                                   if (ask->done) return;
                                   if (!ec && reply.is_error() && !slots_command &&
                                       reply.str.find("nknown subcommand") != std::string::npos)
                                       return self->ask_topology(ask, node, true);
                                   std::optional<std::vector<Shard>> shards;
                                   if (!ec && !reply.is_error())
                                       shards = slots_command ? parse_cluster_slots(reply)
                                                              : parse_cluster_shards(reply);
                                   if (shards && self->apply(*shards)) {
                                       ask->done = true;
                                       return self->refreshed({});
                                   }
                                   // Failed: on to the next candidate, unless it was asked already.
                                   if (!*moved_on || ask->next >= ask->candidates.size())
                                       self->ask_next(ask);
                               });
    }

    // False if the map covers no slot (a node not yet in a cluster).
    bool apply(const std::vector<Shard>& shards) {
        std::vector<std::uint16_t> owners(kSlots, kNoOwner);
        std::vector<Endpoint> new_primaries;
        std::vector<Endpoint> new_replicas;
        bool any = false;
        for (const Shard& shard : shards) {
            new_replicas.insert(new_replicas.end(), shard.replicas.begin(), shard.replicas.end());
            if (shard.slots.empty()) continue;
            auto index = static_cast<std::uint16_t>(new_primaries.size());
            new_primaries.push_back(shard.primary);
            for (auto [first, last] : shard.slots) {
                std::fill(owners.begin() + first, owners.begin() + last + 1, index);
                any = true;
            }
        }
        if (!any) return false;
        slot_owner = std::move(owners);
        this->shards.clear();
        for (const Shard& shard : shards)
            if (!shard.slots.empty()) this->shards.push_back(shard);
        primaries = std::move(new_primaries);
        replicas = std::move(new_replicas);
        has_topology = true;
        return true;
    }

    void refreshed(std::error_code ec) {
        refreshing = false;
        auto waiters = std::move(refresh_waiters);
        refresh_waiters.clear();
        for (auto& done : waiters)
            done(ec);
    }

    void shutdown() {
        closed = true;
        for (const auto& timer : timers)
            timer->cancel();
        auto open = std::move(connections);
        connections.clear();
        for (auto& [node, conn] : open)
            conn->close();
    }
};

Cluster::Cluster(Loop& loop, ClusterOptions options)
    : impl_(std::make_shared<Impl>(loop, std::move(options))) {}

Cluster::~Cluster() {
    if (impl_->loop.in_loop_thread()) {
        impl_->shutdown();
        return;
    }
    std::promise<void> done;
    impl_->loop.post([impl = impl_, &done] {
        impl->shutdown();
        done.set_value();
    });
    done.get_future().wait();
}

std::uint16_t command_slot(const Command& command) {
    // Functions and scripts name their keys after the key count: FCALL name
    // numkeys key... (EVAL script numkeys key...); the first key routes.
    if (command.size() > 3) {
        std::string verb = command[0];
        for (char& c : verb)
            c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if ((verb == "FCALL" || verb == "FCALL_RO" || verb == "EVAL" || verb == "EVALSHA" ||
             verb == "EVAL_RO" || verb == "EVALSHA_RO") &&
            command[2] != "0") {
            return key_slot(command[3]);
        }
    }
    return command.size() > 1 ? key_slot(command[1]) : 0;
}

void Cluster::async_exec(Command command, Completion done) {
    const std::uint16_t slot = command_slot(command);
    async_exec(slot, std::move(command), std::move(done));
}

void Cluster::async_exec(std::uint16_t slot, Command command, Completion done) {
    auto request = std::make_shared<Impl::Request>();
    request->slot = slot;
    request->command = std::move(command);
    request->done = std::move(done);
    impl_->loop.post([impl = impl_, request] { impl->exec(request); });
}

void Cluster::async_exec_at(Endpoint node, Command command, Completion done) {
    auto request = std::make_shared<Impl::Request>();
    request->node = std::move(node);
    request->command = std::move(command);
    request->done = std::move(done);
    impl_->loop.post([impl = impl_, request] { impl->exec(request); });
}

namespace {

template <class Start>
Reply wait_for(Loop& loop, Start start) {
    if (loop.in_loop_thread())
        throw std::logic_error("redis::Cluster: the synchronous facade blocks the loop thread");
    auto promise = std::make_shared<std::promise<Reply>>();
    auto future = promise->get_future();
    start([promise](std::error_code ec, Reply reply) {
        if (ec)
            promise->set_exception(std::make_exception_ptr(std::system_error(ec)));
        else
            promise->set_value(std::move(reply));
    });
    return future.get();
}

}  // namespace

Reply Cluster::exec(Command command) {
    return wait_for(impl_->loop,
                    [&](Completion done) { async_exec(std::move(command), std::move(done)); });
}

Reply Cluster::exec(std::uint16_t slot, Command command) {
    return wait_for(impl_->loop, [&](Completion done) {
        async_exec(slot, std::move(command), std::move(done));
    });
}

Reply Cluster::exec_at(Endpoint node, Command command) {
    return wait_for(impl_->loop, [&](Completion done) {
        async_exec_at(std::move(node), std::move(command), std::move(done));
    });
}

Loop& Cluster::loop() const {
    return impl_->loop;
}

const ClusterOptions& Cluster::options() const {
    return impl_->options;
}

std::optional<Endpoint> Cluster::primary_of(std::uint16_t slot) const {
    return impl_->has_topology ? impl_->owner(slot) : std::nullopt;
}

std::vector<Endpoint> Cluster::primaries() const {
    return impl_->primaries;
}

std::vector<Shard> Cluster::shards() const {
    return impl_->shards;
}

ClusterStats Cluster::stats() const {
    auto load = [](const std::atomic<std::uint64_t>& n) {
        return n.load(std::memory_order_relaxed);
    };
    return {load(impl_->moved), load(impl_->asked), load(impl_->tryagain), load(impl_->clusterdown),
            load(impl_->lost)};
}

void Cluster::refresh_topology(std::function<void(std::error_code)> done,
                               std::optional<Endpoint> ask_first) {
    impl_->refresh_topology(std::move(done), std::move(ask_first));
}

}  // namespace jobcast::redis
