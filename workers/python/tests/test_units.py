"""The SDK's pure parts: the reliable stream, the protocol codec, backoff."""
import random
import unittest

import msgpack

import support  # noqa: F401  (puts the SDK on sys.path)
from jobcast import Backoff, _protocol
from jobcast._stream import ALREADY_RESENDING, DROP, NOT_OURS, RESENT, ReliableStream


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

    def push(self, *wseqs, terminal=False):
        for w in wseqs:
            self.assertTrue(self.s.push(self.a, w, b"f%d" % w, terminal))

    def test_sends_in_order_and_frees_on_cumulative_ack(self):
        self.push(1, 2, 3)
        self.assertEqual(drain(self.s), [b"f1", b"f2", b"f3"])
        self.assertEqual(self.s.ack("j1", 1, 2), (True, 2, 4, False))
        self.assertEqual(self.a.first_unacked(), 3)
        self.assertEqual(self.s.ack("j1", 1, 2), (True, 0, 0, False))  # repeated: frees nothing
        self.assertFalse(self.s.push(self.a, 2, b"f2", False))  # acknowledged already

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
        self.push(2, terminal=True)
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
        self.assertFalse(self.s.push(self.a, 2, b"f2", False))  # dropped: takes nothing

    def test_inflight_lists_each_attempt_and_its_next_wseq(self):
        self.a.next_wseq = 4
        self.s.open("j2", 3)
        self.assertEqual(sorted(self.s.inflight()), [("j1", 1, 4), ("j2", 3, 1)])


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
