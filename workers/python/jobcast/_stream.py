"""The worker's half of worker protocol v1's reliable stream (DESIGN.md
guarantees 2 and 5), as in the C++ SDK (workers/reliable_stream.hpp).

Each job attempt numbers its messages 1, 2, 3... (wseq) and keeps every one,
encoded exactly as first made, until the broker's cumulative ack covers it;
after a "gap" reject, a reconnect or a broker restart it sends again what is
unacknowledged, oldest first (the broker drops duplicates by wseq). To a
broker whose welcome announced it, consecutive chunks of an attempt go out
as one chunks message (their events cut from the chunk frames), so what a
handler emitted since the last send goes out together; otherwise, and every
other message, byte for byte as made. Pure: no sockets, no threads; time
comes in as arguments.
"""

from collections import deque

from . import _protocol

# What a buffered message is (push's `kind`): a chunk (which may be batched),
# another message (checkpoint), or the attempt's done/fail.
CHUNK = "chunk"
MESSAGE = "message"
TERMINAL = "terminal"


class Attempt:
    """One job attempt's messages. `next_wseq` is the number its next message
    gets; the producer bumps it (numbered) as it makes each message."""

    __slots__ = ("job", "attempt", "next_wseq", "frames", "acked", "bytes", "next_to_send",
                 "terminal_wseq", "dropped", "send_pending", "gap_active", "gap_upto",
                 "gap_at")

    def __init__(self, job, attempt):
        self.job = job
        self.attempt = attempt
        self.next_wseq = 1
        self.frames = deque()  # (wseq, frame, is_chunk) not acknowledged yet, in wseq order
        self.acked = 0
        self.bytes = 0
        self.next_to_send = 1  # first frame not sent on this connection yet
        self.terminal_wseq = 0  # wseq of done/fail once buffered
        self.dropped = False  # no longer ours: takes nothing, sends nothing
        self.send_pending = False  # in the send queue
        # After a "gap" reject: re-sent up to gap_upto at gap_at, not acked that far yet.
        self.gap_active = False
        self.gap_upto = 0
        self.gap_at = 0.0

    def first_unacked(self):
        return self.frames[0][0] if self.frames else self.acked + 1

    def find(self, wseq):
        """The buffered (wseq, frame, is_chunk) entry for `wseq`, or None."""
        if not self.frames:
            return None
        index = wseq - self.frames[0][0]
        if 0 <= index < len(self.frames):
            return self.frames[index]
        return None

    def trim(self, wseq):
        """Forgets every frame up to `wseq`; returns (messages, bytes) freed."""
        if wseq > self.acked:
            self.acked = wseq
        frames, freed, count = self.frames, 0, 0
        while frames and frames[0][0] <= wseq:
            freed += len(frames.popleft()[1])
            count += 1
        self.bytes -= freed
        return count, freed

    def rewind(self):
        """Sends again from the oldest unacknowledged frame; returns how many
        frames already sent go out again."""
        first = self.first_unacked()
        again = self.next_to_send - first if self.next_to_send > first else 0
        self.next_to_send = first
        return again


# What ReliableStream.reject tells the caller to do.
NOT_OURS = "not_ours"  # no attempt held for the job, or another attempt named
ALREADY_RESENDING = "already_resending"  # a gap re-send is under way
RESENT = "resent"  # gap: re-sending from the oldest unacknowledged message
DROP = "drop"  # the attempt is no longer ours (the caller calls drop)


class ReliableStream:
    """Every attempt this worker holds (at most one per job), and what to send next."""

    def __init__(self):
        self.attempts = {}
        self._send_queue = deque()  # attempts with frames to send
        self._connected = False
        self.batch_chunks = False  # the broker's welcome announced chunks
        self._frame_messages = 0  # messages in the last frame next_frame() made

    def open(self, job, attempt):
        """Holds a new attempt for `job`; the caller has dropped any earlier one."""
        stream = Attempt(job, attempt)
        self.attempts[job] = stream
        return stream

    def find(self, job):
        return self.attempts.get(job)

    def push(self, stream, wseq, frame, kind):
        """Buffers message `wseq` of `stream` (`kind`: CHUNK, MESSAGE or
        TERMINAL) and queues it for sending when connected. False when it is
        not kept (the attempt was dropped or the wseq is acknowledged already):
        the caller frees its bytes."""
        if stream.dropped or wseq <= stream.acked:
            return False
        if kind == TERMINAL:
            stream.terminal_wseq = wseq
        stream.bytes += len(frame)
        stream.frames.append((wseq, frame, kind == CHUNK))
        if self._connected and not stream.send_pending:
            stream.send_pending = True
            self._send_queue.append(stream)
        return True

    def ack(self, job, attempt, wseq):
        """A cumulative ack: (known, messages freed, bytes freed, settled).
        One naming another attempt than the one held changes nothing; settled
        means the attempt's done/fail is acknowledged and it is forgotten."""
        stream = self.attempts.get(job)
        if stream is None or stream.attempt != attempt:
            return False, 0, 0, False
        messages, freed = stream.trim(wseq)
        if stream.gap_active and wseq >= stream.gap_upto:
            stream.gap_active = False
        settled = stream.terminal_wseq != 0 and stream.acked >= stream.terminal_wseq
        if settled:
            del self.attempts[job]
        return True, messages, freed, settled

    def reject(self, job, attempt, reason, now, resend_window):
        """A reject about a job (attempt 0: the one held). "gap" re-sends from
        the oldest unacknowledged message, once per `resend_window` until an
        ack covers what was re-sent; any other reason ends the attempt.
        Returns (answer, messages sent again)."""
        stream = self.attempts.get(job)
        # A reject about another attempt was caused by frames of one given up:
        # honouring it would leave the current attempt's lease with a worker
        # that does not run it.
        if stream is None or (attempt != 0 and attempt != stream.attempt):
            return NOT_OURS, 0
        if reason != "gap":
            return DROP, 0
        if stream.gap_active and now - stream.gap_at < resend_window:
            return ALREADY_RESENDING, 0
        stream.gap_active = True
        stream.gap_upto = max(stream.first_unacked(), stream.next_to_send - 1)
        stream.gap_at = now
        again = stream.rewind()
        self._schedule(stream)
        return RESENT, again

    def drop(self, job):
        """Forgets the attempt held for `job`; returns (messages, bytes) that
        were waiting for an ack."""
        stream = self.attempts.pop(job, None)
        if stream is None:
            return 0, 0
        freed = (len(stream.frames), stream.bytes)
        stream.dropped = True
        stream.frames.clear()
        stream.bytes = 0
        return freed

    def disconnected(self):
        """Nothing is sent until reconnected(), and chunks go out one by one
        until the next welcome sets batch_chunks."""
        self._connected = False
        self.batch_chunks = False
        for stream in self._send_queue:
            stream.send_pending = False
        self._send_queue.clear()

    def reconnected(self):
        """A new connection, or a broker that no longer knows this worker:
        every attempt sends again from its oldest unacknowledged message.
        Returns how many messages already sent go out again."""
        self.disconnected()
        self._connected = True
        again = 0
        for stream in self.attempts.values():
            again += stream.rewind()
            self._schedule(stream)
        return again

    def sending(self):
        return bool(self._send_queue)

    def next_frame(self):
        """The next frame to hand to the socket, or None; sent() once taken."""
        queue = self._send_queue
        while queue:
            stream = queue[0]
            if not stream.dropped:
                first = stream.first_unacked()
                if stream.next_to_send < first:
                    stream.next_to_send = first
                entry = stream.find(stream.next_to_send)
                if entry is not None:
                    if entry[2] and self.batch_chunks:
                        return self._chunks_from(stream, entry)
                    self._frame_messages = 1
                    return entry[1]
            stream.send_pending = False
            queue.popleft()
        return None

    def _chunks_from(self, stream, first):
        """`first` and the chunks after it as one chunks, or `first` alone."""
        wseq, frame, _ = first
        frames = stream.frames
        index = wseq - frames[0][0]
        end = min(len(frames), index + _protocol.MAX_CHUNKS_EVENTS)
        batch = [frame]
        size = len(frame) + 8  # a chunks is smaller than its chunks, but for the array header
        for i in range(index + 1, end):
            _, data, is_chunk = frames[i]
            size += len(data)
            if not is_chunk or size > _protocol.MAX_FRAME_BYTES:
                break
            batch.append(data)
        self._frame_messages = len(batch)
        if len(batch) == 1:
            return frame
        return _protocol.chunks(stream.job, stream.attempt, wseq, batch)

    def sent(self):
        if self._send_queue:
            self._send_queue[0].next_to_send += self._frame_messages

    def inflight(self):
        """hello.inflight and the heartbeat's list: (job, attempt, next wseq)."""
        return [(s.job, s.attempt, s.next_wseq) for s in self.attempts.values()]

    def _schedule(self, stream):
        if self._connected and not stream.send_pending:
            stream.send_pending = True
            self._send_queue.append(stream)
