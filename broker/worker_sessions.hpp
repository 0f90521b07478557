// Worker sessions: what binds a worker name to the process that holds it when
// there is no CURVE key to bind it to (and, with CURVE, to the key as well).
//
// `welcome` hands each worker a session: a random nonce and an HMAC-SHA256
// over (CURVE key, name, nonce) keyed with the store's secret. A worker sends
// it back in every later hello; a hello for a name that is held (a live
// connection or leases) must carry it. A session stays the same across the
// worker's reconnects, so a lost welcome costs nothing; a hello for a free
// name that does not carry the current session starts a new one, and every
// earlier session of that name stops working — a peer that once said hello
// under a name cannot come back later for its leases. Because the HMAC needs
// only the store's secret, a session issued before a broker restart is still
// recognised after it (the restarted broker knows no current session yet and
// accepts any session made for that key and name).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace jobcast::broker {

class WorkerSessions {
  public:
    // `secret`: the store's worker session key. `max_names`: how many names
    // are remembered before those no longer held are forgotten.
    explicit WorkerSessions(std::string secret, std::size_t max_names = 65536);

    // Whether `presented` is the session of `name` under `key`: made with this
    // store's secret for them and, when a session was issued for the name
    // since this broker started, that one.
    bool valid(std::string_view presented, std::string_view key, const std::string& name) const;

    // The session for the welcome of an accepted hello: `presented` when it
    // was valid, else a new one. Either way it becomes the name's current
    // session. `held(name)` says whether a name is still in use, for
    // forgetting the others when too many names are remembered.
    std::string welcome(std::string_view presented, bool presented_valid, std::string_view key,
                        const std::string& name,
                        const std::function<bool(const std::string&)>& held);

    std::size_t size() const { return current_.size(); }

  private:
    std::string mac(std::string_view key, std::string_view name, std::string_view nonce) const;

    std::string secret_;
    std::size_t max_names_;
    std::unordered_map<std::string, std::string> current_;  // name -> session
};

}  // namespace jobcast::broker
