"""The SDK's pure parts: the reliable stream, the protocol codec, backoff."""
import random
import unittest

import msgpack

import support  # noqa: F401  (puts the SDK on sys.path)
from jobcast import Backoff, _protocol
from jobcast._stream import (ALREADY_RESENDING, CHUNK, DROP, MESSAGE, NOT_OURS, RESENT,
                             TERMINAL, ReliableStream)


def drain(stream):
    out = []
    while (frame := stream.next_frame()) is not None:
        out.append(frame)
        stream.sent()
    return out


class ReliableStreamTest(unittest.TestCase):
    def setUp(self):
        self.s = ReliableStream()
        self.s.reconnected()
        self.a = self.s.open("j1", 1)

    def push(self, *wseqs, kind=MESSAGE):
        for w in wseqs:
            self.assertTrue(self.s.push(self.a, w, b"f%d" % w, kind))

    def test_sends_in_order_and_frees_on_cumulative_ack(self):
        self.push(1, 2, 3)
        self.assertEqual(drain(self.s), [b"f1", b"f2", b"f3"])
        self.assertEqual(self.s.ack("j1", 1, 2), (True, 2, 4, False))
        self.assertEqual(self.a.first_unacked(), 3)
        self.assertEqual(self.s.ack("j1", 1, 2), (True, 0, 0, False))  # repeated: frees nothing
        self.assertFalse(self.s.push(self.a, 2, b"f2", MESSAGE))  # acknowledged already

    def test_an_ack_for_another_attempt_changes_nothing(self):
        self.push(1)
        self.assertEqual(self.s.ack("j1", 2, 1), (False, 0, 0, False))
        self.assertEqual(self.a.bytes, 2)

    def test_reconnect_resends_everything_unacknowledged_byte_for_byte(self):
        self.push(1, 2, 3)
        drain(self.s)
        self.s.ack("j1", 1, 1)
        self.s.disconnected()
        self.push(4)
        self.assertIsNone(self.s.next_frame())  # nothing goes out while disconnected
        self.assertEqual(self.s.reconnected(), 2)
        self.assertEqual(drain(self.s), [b"f2", b"f3", b"f4"])

    def test_the_terminal_ack_settles_the_attempt(self):
        self.push(1)
        self.push(2, kind=TERMINAL)
        drain(self.s)
        self.assertEqual(self.s.ack("j1", 1, 2), (True, 2, 4, True))
        self.assertIsNone(self.s.find("j1"))

    def test_a_gap_reject_resends_once_per_window(self):
        self.push(1, 2, 3)
        drain(self.s)
        self.assertEqual(self.s.reject("j1", 1, "gap", 10.0, 1.0), (RESENT, 3))
        self.assertEqual(self.s.reject("j1", 1, "gap", 10.5, 1.0), (ALREADY_RESENDING, 0))
        self.assertEqual(drain(self.s), [b"f1", b"f2", b"f3"])
        self.s.ack("j1", 1, 3)  # covers the re-send: the next gap is answered again
        self.push(4)
        self.assertEqual(self.s.reject("j1", 1, "gap", 10.6, 1.0)[0], RESENT)

    def test_a_reject_is_honoured_only_for_the_attempt_it_names(self):
        self.push(1)
        self.assertEqual(self.s.reject("j1", 2, "lease", 0.0, 1.0), (NOT_OURS, 0))
        self.assertEqual(self.s.reject("other", 1, "lease", 0.0, 1.0), (NOT_OURS, 0))
        self.assertEqual(self.s.reject("j1", 1, "lease", 0.0, 1.0), (DROP, 0))
        self.assertEqual(self.s.reject("j1", 0, "lease", 0.0, 1.0), (DROP, 0))  # 0: the one held
        self.assertEqual(self.s.drop("j1"), (1, 2))
        self.assertFalse(self.s.push(self.a, 2, b"f2", MESSAGE))  # dropped: takes nothing

    def test_inflight_lists_each_attempt_and_its_next_wseq(self):
        self.a.next_wseq = 4
        self.s.open("j2", 3)
        self.assertEqual(sorted(self.s.inflight()), [("j1", 1, 4), ("j2", 3, 1)])


class BatchingTest(unittest.TestCase):
    """Chunks go out one by one, or consecutive ones of an attempt as one
    chunks once the broker's welcome announced it."""

    def setUp(self):
        self.s = ReliableStream()
        self.s.reconnected()
        self.a = self.s.open("j1", 2)

    def token(self, text):
        w = self.a.next_wseq
        self.a.next_wseq += 1
        self.assertTrue(self.s.push(self.a, w, _protocol.chunk("j1", 2, w, "token", {"text": text}),
                                    CHUNK))

    def test_without_the_feature_each_chunk_goes_out_as_made(self):
        self.token("a")
        self.token("b")
        sent = [msgpack.unpackb(f) for f in drain(self.s)]
        self.assertEqual([(m["t"], m["job"], m["attempt"], m["wseq"], m["data"]["text"])
                          for m in sent],
                         [("chunk", "j1", 2, 1, "a"), ("chunk", "j1", 2, 2, "b")])
        self.assertEqual(len(sent[0]), 8)  # v t job attempt wseq kind data ts

    def test_consecutive_events_share_a_chunks_and_resends_are_batched_once(self):
        self.s.batch_chunks = True
        for text in ("a", "b", "c"):
            self.token(text)
        w = self.a.next_wseq
        self.a.next_wseq += 1
        self.s.push(self.a, w, b"checkpoint", MESSAGE)
        self.token("d")
        sent = drain(self.s)
        self.assertEqual(len(sent), 3)
        first = msgpack.unpackb(sent[0])
        self.assertEqual((first["t"], first["wseq"], [e["data"]["text"] for e in first["events"]]),
                         ("chunks", 1, ["a", "b", "c"]))
        self.assertEqual(sent[1], b"checkpoint")
        self.assertEqual(msgpack.unpackb(sent[2])["t"], "chunk")  # alone: a plain chunk
        # A reconnect sends again what is unacked, one chunk each until welcomed.
        self.s.ack("j1", 2, 1)
        self.assertEqual(self.s.reconnected(), 4)
        self.assertEqual([msgpack.unpackb(f)["wseq"] if f != b"checkpoint" else 4
                          for f in drain(self.s)], [2, 3, 4, 5])
        self.s.batch_chunks = True
        self.s.reconnected()
        self.s.batch_chunks = True
        again = [msgpack.unpackb(f) for f in drain(self.s) if f != b"checkpoint"]
        self.assertEqual([(m["t"], m["wseq"]) for m in again], [("chunks", 2), ("chunk", 5)])

    def test_chunks_cuts_each_event_from_its_frame_whatever_the_wseq_size(self):
        job = "j" * 40
        for wseq in (1, 200, 70_000, 2**33, 2**64 - 3):
            frames = [_protocol.chunk(job, 3, wseq + i, "log", {"level": "info", "message": str(i)})
                      for i in range(3)]
            m = msgpack.unpackb(_protocol.chunks(job, 3, wseq, frames))
            self.assertEqual((m["v"], m["t"], m["job"], m["attempt"], m["wseq"]),
                             (1, "chunks", job, 3, wseq))
            singles = [msgpack.unpackb(f) for f in frames]
            self.assertEqual(m["events"], [{k: c[k] for k in ("kind", "data", "ts")}
                                           for c in singles])

    def test_a_batch_holds_at_most_max_chunks_events(self):
        self.s.batch_chunks = True
        for _ in range(_protocol.MAX_CHUNKS_EVENTS + 3):
            self.token("t")
        sent = [msgpack.unpackb(f) for f in drain(self.s)]
        self.assertEqual([len(m["events"]) for m in sent], [_protocol.MAX_CHUNKS_EVENTS, 3])
        self.assertEqual(sent[1]["wseq"], _protocol.MAX_CHUNKS_EVENTS + 1)


class ProtocolTest(unittest.TestCase):
    def test_worker_messages_carry_the_v1_fields(self):
        m = msgpack.unpackb(_protocol.chunk("j", 2, 7, "token", {"text": "hi"}))
        self.assertEqual({k: m[k] for k in ("v", "t", "job", "attempt", "wseq", "kind", "data")},
                         {"v": 1, "t": "chunk", "job": "j", "attempt": 2, "wseq": 7,
                          "kind": "token", "data": {"text": "hi"}})
        self.assertGreater(m["ts"], 1_600_000_000_000_000)  # unix microseconds
        hb = msgpack.unpackb(_protocol.heartbeat([("j", 2, 8)], 5))
        self.assertEqual(hb, {"v": 1, "t": "heartbeat", "assigned": 5,
                              "inflight": [{"job": "j", "attempt": 2, "next_wseq": 8}]})
        cp = msgpack.unpackb(_protocol.checkpoint("j", 1, 3, b"\x00\x01"), raw=False)
        self.assertEqual(cp["bytes"], b"\x00\x01")
        fail = msgpack.unpackb(_protocol.fail("j", 1, 4, "bad \ud800", True))
        self.assertEqual((fail["error"], fail["retryable"]), ("bad ?", True))

    def test_broker_messages_decode_and_garbage_is_refused(self):
        assign = {"v": 1, "t": "assign", "job": "j", "attempt": 1, "type": "x",
                  "params": {"a": [1]}, "checkpoint": b""}
        self.assertEqual(_protocol.decode(msgpack.packb(assign))["params"], {"a": [1]})
        rng = random.Random(7)
        garbage = [b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"v": 1, "t": "nope"}),
                   msgpack.packb({"v": 1, "t": "ack", "job": "j", "attempt": "1", "wseq": 1}),
                   msgpack.packb({"v": 2, "t": "heartbeat"}), b"\xff" * (1 << 20 | 1)]
        garbage += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
                    for _ in range(300)]
        for frame in garbage:
            try:
                _protocol.decode(frame)
            except _protocol.ProtocolError:
                continue
            except Exception as e:  # anything else would escape the worker's handling
                self.fail(f"{frame[:20]!r}: {type(e).__name__}: {e}")

    def test_a_bad_assign_names_its_attempt(self):
        bad = {"v": 1, "t": "assign", "job": "j", "attempt": 3, "type": "x", "params": "oops"}
        with self.assertRaises(_protocol.ProtocolError) as caught:
            _protocol.decode(msgpack.packb(bad))
        self.assertEqual(caught.exception.assign, ("j", 3))
        self.assertTrue(caught.exception.is_assign)

    def test_results_must_have_a_json_form(self):
        _protocol.check_json_object({"a": [1, 2.5, None, True, {"b": "c"}]}, "r")
        for bad in ([1], {"a": b"x"}, {"a": float("nan")}, {1: 2}):
            with self.assertRaises((TypeError, ValueError)):
                _protocol.check_json_object(bad, "r")


class BackoffTest(unittest.TestCase):
    def test_full_jitter_under_a_doubling_ceiling(self):
        b = Backoff(0.1, 1.0, random.Random(1))
        ceilings = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
        for ceiling in ceilings:
            self.assertTrue(0.1 <= b.next() <= ceiling)
        b.reset()
        self.assertLessEqual(b.next(), 0.1)


if __name__ == "__main__":
    unittest.main()
