// The worker's half of worker protocol v1's reliable stream (DESIGN.md
// guarantees 2 and 5). Each job attempt numbers its messages 1, 2, 3... (wseq)
// and keeps every one, encoded exactly as first made, until the broker's
// cumulative ack covers it; after a "gap" reject, a reconnect or a broker
// restart it re-sends what is unacknowledged, oldest first (the broker drops
// duplicates by wseq). To a broker that takes them, several consecutive chunks
// of an attempt go out as one `chunks` (up to proto::kMaxChunksEvents and the
// frame limit, their events cut from the chunk frames as they are), so that
// what handlers emitted while earlier frames waited for the socket, or within
// one turn of the worker's loop, goes out in one message; otherwise, and for
// every other message, byte for byte as made. Output is bounded: UnackedBudget says when
// the worker's unacknowledged bytes are over the bound, so that emit blocks.
//
// Holding (only with `chunks`): while a message of an attempt sent on this
// connection waits for its ack, the attempt's next chunks wait too, and go out
// together when that ack comes, so that an attempt emitting faster than the
// broker commits sends one message (and the worker wakes once) per commit
// round trip, not per event. Nothing waits when nothing is in flight (a lone
// event goes at once), nor once kMaxHeldChunks or kMaxHeldBytes are reached,
// nor behind a checkpoint or done/fail, nor after release_holds() (once per
// heartbeat, so that frames a broker never acknowledges still go out and meet
// its reject). AttemptStream::ack_due tells the producing thread that the
// worker's I/O thread will look at the attempt's output when the ack comes,
// so an emit need not wake it. While the worker reads acks lazily
// (watch_acks(false): when a handler next emits, or on a timer), no attempt is
// ack_due and chunks are held only behind kMaxInFlightUnwatched messages in
// flight, so that nothing waits for an ack that nobody is watching for.
//
// Pure: no sockets, no threads, no sleeps; time (jobcast::Clock's steady time)
// comes in as arguments. The worker's I/O thread owns the ReliableStream; an
// attempt's one handler thread numbers its messages through its AttemptStream
// (next_wseq/numbered), which the I/O thread reads back for hello.inflight.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "protocol/limits.hpp"
#include "protocol/messages.hpp"

namespace jobcast::worker {

// What a buffered message is: a chunk (proto::encode of a Chunk, which may be
// batched), another message (checkpoint), or the attempt's done/fail.
enum class FrameKind : std::uint8_t { chunk, message, terminal };

// How much of an attempt's output may wait for the ack of its message in
// flight: at most a full `chunks` of events, and this many bytes unacknowledged.
inline constexpr std::size_t kMaxHeldChunks = proto::kMaxChunksEvents;
inline constexpr std::size_t kMaxHeldBytes = std::size_t{256} << 10;

// While the worker reads acks lazily (ReliableStream::watch_acks), an
// attempt's chunks go out without waiting for an ack until this many of its
// messages are in flight.
inline constexpr std::uint64_t kMaxInFlightUnwatched = 32;

// Buffers of acknowledged messages kept for the next ones (so that an emit
// allocates nothing): at most this many, each of at most this capacity.
inline constexpr std::size_t kMaxSpareBuffers = 1024;
inline constexpr std::size_t kMaxSpareBufferBytes = 4096;

// The bound on the bytes a worker has emitted and the broker has not
// acknowledged yet (all jobs together). A message always fits when nothing is
// waiting, so one bigger than the bound still goes out, alone.
class UnackedBudget {
  public:
    explicit UnackedBudget(std::size_t max_bytes) : max_bytes_(max_bytes) {}

    bool fits(std::size_t size) const noexcept { return used_ == 0 || used_ + size <= max_bytes_; }
    void take(std::size_t size) noexcept { used_ += size; }
    void release(std::size_t size) noexcept { used_ -= std::min(size, used_); }
    std::size_t used() const noexcept { return used_; }

  private:
    std::size_t max_bytes_;
    std::size_t used_ = 0;
};

// One job attempt's messages. Created by ReliableStream::open.
class AttemptStream : public std::enable_shared_from_this<AttemptStream> {
  public:
    AttemptStream(std::string job, int attempt) : job_(std::move(job)), attempt_(attempt) {}

    const std::string& job() const noexcept { return job_; }
    int attempt() const noexcept { return attempt_; }

    // Numbering, on the attempt's producing thread: the wseq the next message
    // gets, and numbered(wseq) once that message exists (one refused before
    // that, e.g. too big, leaves no hole in the sequence).
    std::uint64_t next_wseq() const noexcept { return next_wseq_.load(std::memory_order_acquire); }
    void numbered(std::uint64_t wseq) noexcept {
        next_wseq_.store(wseq + 1, std::memory_order_release);
    }

    // What the broker has acknowledged (cumulative), the oldest message it has
    // not (acked() + 1 when none waits), and the messages and bytes waiting
    // for an ack.
    std::uint64_t acked() const noexcept { return acked_; }
    std::uint64_t first_unacked() const noexcept {
        return frames_.empty() ? acked_ + 1 : frames_.front().wseq;
    }
    std::size_t size() const noexcept { return frames_.size(); }
    std::size_t bytes() const noexcept { return bytes_; }

    // Any thread: the I/O thread holds this attempt's next chunks until an ack
    // it is waiting for, and looks at the worker's outbox when that ack comes.
    // Set and cleared by the I/O thread only. It clears it on that ack (or a
    // gap reject) before it takes the outbox in the same turn, so a producer
    // that read it set under the outbox's lock has its message taken; on a
    // lost connection, by the turns that reconnect.
    bool ack_due() const noexcept { return ack_due_.load(std::memory_order_acquire); }

  private:
    friend class ReliableStream;
    struct Frame {
        std::uint64_t wseq;
        std::string bytes;
        bool chunk;  // a chunk message (may go out in a chunks)
    };

    // The buffered frame with this wseq, or nullptr.
    const Frame* find(std::uint64_t wseq) const noexcept;
    // Forgets every frame up to `wseq`, keeping their buffers in `spares`
    // (within kMaxSpareBuffers and kMaxSpareBufferBytes); returns the bytes freed.
    std::size_t trim(std::uint64_t wseq, std::vector<std::string>& spares);
    // Sends again from the oldest unacknowledged frame; returns how many of
    // the frames already sent go out again.
    std::uint64_t rewind() noexcept;
    // A frame sent on this connection waits for its ack.
    bool in_flight() const noexcept { return next_to_send_ > first_unacked(); }

    const std::string job_;
    const int attempt_;
    std::atomic<std::uint64_t> next_wseq_{1};

    std::deque<Frame> frames_;
    std::uint64_t acked_ = 0;
    std::size_t bytes_ = 0;
    std::uint64_t next_to_send_ = 1;    // first frame not yet sent on this connection
    std::uint64_t terminal_wseq_ = 0;   // wseq of done/fail once buffered
    std::uint64_t message_wseq_ = 0;    // wseq of the last frame that is not a chunk
    bool holds_released_ = false;       // release_holds(): nothing waits until the next ack
    std::atomic<bool> ack_due_{false};  // see ack_due()
    bool dropped_ = false;              // no longer ours: takes nothing, sends nothing
    bool send_pending_ = false;         // in the send queue
    // After a "gap" reject: re-sent up to this wseq, when, and not acked that far yet.
    bool gap_resend_active_ = false;
    std::uint64_t gap_resend_upto_ = 0;
    Clock::Steady gap_resent_at_{};
};

// Every attempt this worker holds (at most one per job), and what to send next.
class ReliableStream {
  public:
    using Steady = Clock::Steady;

    struct Acked {
        bool known = false;        // the ack names the attempt held for its job
        std::size_t messages = 0;  // messages freed
        std::size_t bytes = 0;     // bytes freed
        bool settled = false;      // its done/fail is acknowledged: the attempt is forgotten
    };
    struct Freed {
        std::size_t messages = 0;
        std::size_t bytes = 0;
    };
    enum class RejectAnswer {
        not_ours,           // no attempt held for the job, or another attempt named
        already_resending,  // a gap re-send is under way (every frame after a lost one is rejected)
        resent,             // gap: re-sending from the oldest unacknowledged message
        drop,               // the attempt is no longer ours (caller calls drop)
    };
    struct Rejected {
        RejectAnswer answer = RejectAnswer::not_ours;
        std::uint64_t from_wseq = 0;  // resent: the first wseq sent again
        std::uint64_t resent = 0;     // resent: how many messages already sent go out again
    };

    // Holds a new attempt for `job`; the caller has dropped any earlier one.
    std::shared_ptr<AttemptStream> open(std::string job, int attempt);
    // The attempt held for `job`, or nullptr.
    const AttemptStream* find(const std::string& job) const;

    // Buffers message `wseq` of `attempt` and, when connected, queues it for
    // sending. Returns false when it is not kept because the attempt was
    // dropped or that wseq is acknowledged already: the caller frees its bytes.
    bool push(AttemptStream& attempt, std::uint64_t wseq, std::string bytes, FrameKind kind);

    // A cumulative ack. One naming another attempt than the one held for the
    // job (or an unknown job) changes nothing; an old or repeated one frees
    // nothing. The freed frames' buffers go to spares().
    Acked ack(const std::string& job, int attempt, std::uint64_t wseq);
    // Emptied buffers of acknowledged frames, for Outbox::release to hand back
    // to producers; it takes them.
    std::vector<std::string>& spares() noexcept { return spares_; }

    // A reject about a job. Attempt 0 means the attempt held. "gap" re-sends
    // from the oldest unacknowledged message, once per `resend_window` until an
    // ack covers what was re-sent; any other reason ends the attempt.
    Rejected reject(const std::string& job, int attempt, std::string_view reason, Steady now,
                    Steady::duration resend_window);

    // Forgets the attempt held for `job` (lease lost, job reassigned); returns
    // what was waiting for an ack.
    Freed drop(const std::string& job);

    // Whether the caller sees acks as they come (the default). While it does
    // not (the worker processes acks lazily, when a handler emits or on a
    // timer), no attempt is ack_due, so producers do not leave their chunks
    // for an ack that nobody is waiting for.
    void watch_acks(bool on) noexcept;
    // An attempt has frames to send that wait for an ack.
    bool holding() const noexcept;

    // Every attempt's held chunks go out now, and nothing is held until its
    // next ack: once per heartbeat interval, so that what a broker never
    // acknowledges still reaches it (and its reject comes back).
    void release_holds();

    // The connection went away: nothing is sent until reconnected(), and
    // chunks go out one each until batch_chunks(true).
    void disconnected();
    // The broker's welcome announced `chunks`: consecutive chunks may share a frame.
    void batch_chunks(bool on) noexcept { batch_chunks_ = on; }
    // A new connection, or a broker that no longer knows this worker: every
    // attempt sends again from its oldest unacknowledged message, in order.
    // Returns how many messages already sent go out again.
    std::uint64_t reconnected();

    // The next frame to hand to the socket, or nullptr when all buffered ones
    // went out; sent() once the socket took it. The frame stays valid until
    // the next call.
    const std::string* next_frame();
    void sent();
    // How many messages the last frame from next_frame() carries.
    std::size_t frame_messages() const noexcept { return frame_messages_; }
    // Frames are queued for the socket.
    bool sending() const noexcept { return !send_queue_.empty(); }

    // hello.inflight and the heartbeat's list: each attempt held and the wseq
    // its next message gets.
    std::vector<proto::InflightJob> inflight() const;
    std::size_t attempts() const noexcept { return attempts_.size(); }

  private:
    void schedule(AttemptStream& attempt);
    // The attempt's next frames wait for the ack of what it has in flight.
    bool holds(const AttemptStream& attempt) const noexcept;
    static void set_ack_due(AttemptStream& attempt, bool due) noexcept {
        attempt.ack_due_.store(due, std::memory_order_release);
    }
    // `first` and the chunks after it as one chunks in frame_, or `first`
    // as it is when it has no chunk after it.
    const std::string* chunks_from(const AttemptStream& attempt, const AttemptStream::Frame& first);

    std::unordered_map<std::string, std::shared_ptr<AttemptStream>> attempts_;
    std::deque<std::shared_ptr<AttemptStream>> send_queue_;  // attempts with frames to send
    bool connected_ = false;
    bool batch_chunks_ = false;
    bool acks_watched_ = true;
    std::vector<std::string> spares_;
    std::string frame_;  // the last chunks next_frame() made
    std::size_t frame_messages_ = 0;
};

}  // namespace jobcast::worker
