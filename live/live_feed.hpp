// Where the hub's committed event batches come from, besides the local
// commit stream (Hub::publish). The hub tells its feed which jobs and owners
// have subscribers here; a feed that brings batches from elsewhere (another
// broker over a shared engine, see CLUSTER.md §5.5) hands each one to
// Hub::publish_remote, where it is deduplicated by seq and its gaps are
// filled from the store.
//
// The hub calls these under its subscription lock, in subscription order:
// they must not block and must not call back into the hub's subscribe side.
#pragma once

#include <cstdint>
#include <string>

namespace jobcast::live {

class LiveFeed {
  public:
    virtual ~LiveFeed() = default;
    // `job` got its first subscriber here, who holds or reads from the store
    // every event up to `last_seq`: bring its batches after that.
    virtual void watch(const std::string& job, std::uint64_t last_seq) = 0;
    // `job` lost its last subscriber here.
    virtual void unwatch(const std::string& job) = 0;
    // The first / last subscriber of the state changes of `owner`'s jobs.
    virtual void watch_owner(const std::string& owner) = 0;
    virtual void unwatch_owner(const std::string& owner) = 0;
};

// One broker on its own store: every commit is local and reaches the hub
// through Hub::publish, so there is nothing to watch.
class LocalFeed final : public LiveFeed {
  public:
    void watch(const std::string&, std::uint64_t) override {}
    void unwatch(const std::string&) override {}
    void watch_owner(const std::string&) override {}
    void unwatch_owner(const std::string&) override {}
};

}  // namespace jobcast::live
