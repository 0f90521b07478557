// One client's subscription to one job's log: the replay-to-live switch and
// the slow-consumer catch-up, as pure logic (no sockets, no threads).
//
// The ZeroMQ guide's Clone pattern: start buffering live events *before*
// reading the store, read every committed event after the cursor, then drain
// the buffer dropping what the read already covered. Live events are
// published only after commit, so an event is either in the read, in the
// buffer, or in both (deduplicated by seq) — never in neither.
//
// A subscriber whose connection cannot keep up is switched back to replay:
// live events are no longer kept for it (the store has them) and it reads
// pages from the store as fast as it drains, then switches to live again the
// same way. Nothing is lost and the broker's memory for it stays bounded.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "live/published.hpp"
#include "protocol/model.hpp"

namespace jobcast::web {

// The client already has the whole stream of this job: it finished at or
// before `after`, so nothing will ever follow and no subscription is kept.
// `written_seq` (store::written_seq, cluster mode) may be past last_seq: the
// terminal event as another broker showed it, before this one can confirm
// it; a client that has it has it all the same.
bool stream_already_ended(const Job& job, std::uint64_t after, std::uint64_t written_seq);

// `after` is past what the client can have had: past last_seq and past
// `written_seq` (cluster mode: events another broker may have shown, which
// this one shows once it can confirm them; a subscription after one of them
// reads on from there, Subscription::reach).
bool after_beyond_log(const Job& job, std::uint64_t after, std::uint64_t written_seq);

// What the connection must write: `published` whole when skip == 0, else only
// its events from index `skip` on (the boundary between replay and live).
struct Delivery {
    live::PublishedPtr published;
    std::size_t skip = 0;
};

// Bytes of live events one connection keeps buffered across all its
// subscriptions while they replay, so a connection with many subscriptions
// pins a bounded amount however many it has. Not thread-safe: one per
// connection, used on its strand.
class LiveBufferBudget {
  public:
    explicit LiveBufferBudget(std::size_t limit) : limit_(limit) {}
    LiveBufferBudget(const LiveBufferBudget&) = delete;
    LiveBufferBudget& operator=(const LiveBufferBudget&) = delete;
    // Takes `bytes` if they fit; false (and nothing taken) when they do not.
    bool take(std::size_t bytes);
    void give_back(std::size_t bytes) { used_ -= bytes; }
    std::size_t used() const { return used_; }
    std::size_t limit() const { return limit_; }

  private:
    std::size_t limit_;
    std::size_t used_ = 0;
};

class Subscription {
  public:
    enum class Mode { replay, live, ended };

    // `buffer_limit`: bytes of live events kept while replaying; beyond it,
    // or beyond what the connection's `budget` (optional, outlives the
    // subscription) has left, the buffer is dropped and the replay goes on
    // from the store until it reaches the end again.
    Subscription(std::string job, std::uint64_t after, std::size_t buffer_limit = 1 << 20,
                 LiveBufferBudget* budget = nullptr);
    ~Subscription();

    // Which of its connection's subscriptions this is (re-subscribing to a
    // job starts a new one): a store read or a retry begun for an earlier one
    // is dropped, never applied to this one's cursor.
    std::uint64_t serial = 0;
    // Its buffer is counted in the budget: not copied, not moved.
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

    const std::string& job() const { return job_; }
    Mode mode() const { return mode_; }
    std::uint64_t cursor() const { return cursor_; }  // last seq handed to the client

    // A live batch from the hub. Returns what to send now (nothing while replaying).
    std::vector<Delivery> on_live(const live::PublishedPtr& published);

    // The connection is too far behind: stop taking live events, read from the store.
    void fall_behind();

    // Cluster mode: the job's log is written through `seq` (store::written_seq
    // when the subscription was admitted), maybe further than this broker can
    // show yet. The replay reads that far before the subscription goes live:
    // the events may have been published by another broker before this one
    // listened, and then nothing live brings them (a finished job publishes
    // nothing more). One node: 0, nothing changes.
    void reach(std::uint64_t seq) { let_go_ = std::max(let_go_, seq); }

    // Whether a store read after cursor() should be issued now.
    bool wants_read() const { return mode_ == Mode::replay && !read_pending_; }
    void read_started() { read_pending_ = true; }

    // A page read from the store after cursor(), as its seqs: events first to
    // last, in order (none when count is 0); `terminal` when its last event
    // ends the stream (a page is cut after such an event).
    struct StorePage {
        std::uint64_t first = 0;
        std::uint64_t last = 0;
        std::size_t count = 0;
        bool terminal = false;
    };
    // `full` = the page hit a read bound (more may follow). Returns whether to
    // send the page; then the pending live buffer if the replay has caught up
    // (the subscription is live after that).
    struct PageResult {
        std::size_t events = 0;      // the page's events to send: all of them, or none
        std::vector<Delivery> live;  // buffered live batches to send after them
        bool ended = false;          // the terminal event was delivered
        // The store does not give yet events this subscription was offered
        // live and let go of (cluster mode: another broker's events this one
        // cannot confirm for now): the caller reads again a little later, and
        // until then the read counts as pending.
        bool read_later = false;
    };
    PageResult on_page(const StorePage& page, bool full);

    std::size_t buffered_bytes() const { return buffer_bytes_; }
    // How many reads in a row gave read_later (0 after one that moved on):
    // the caller waits longer each time.
    int reads_later() const { return reads_later_; }

  private:
    void drop_buffer();

    std::string job_;
    Mode mode_ = Mode::replay;
    std::uint64_t cursor_;
    std::size_t buffer_limit_;
    LiveBufferBudget* budget_;
    std::deque<live::PublishedPtr> buffer_;
    std::size_t buffer_bytes_ = 0;
    bool overflowed_ = false;
    bool read_pending_ = false;
    int reads_later_ = 0;
    // The newest seq of a live batch let go of while replaying, or written
    // before the subscription began (reach): the replay reaches it before the
    // subscription goes live.
    std::uint64_t let_go_ = 0;
};

}  // namespace jobcast::web
