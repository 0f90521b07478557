"""The chaos harness's checks catch what they are meant to catch: a log with a
lost, duplicated or reordered chunk, a zombie's write, a resume past the last
checkpoint, a subscriber's gap. (A checker that never fires proves nothing.)"""

import os
import sys
import threading
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from chaos import Chaos, JobSpec, PartitionMap, Stream, Violations, digest, main  # noqa: E402


def state(seq, st, attempt, **extra):
    return {"seq": seq, "kind": "state", "ts": seq, "data": {"state": st, "attempt": attempt,
                                                            **extra}}


def llm_log(spec, attempts):
    """A well-formed log: attempts is a list of (start, count) token ranges."""
    events = [state(1, "queued", 0)]
    for n, (start, count) in enumerate(attempts, 1):
        if n > 1:
            events.append(state(len(events) + 1, "queued", n - 1, reason="worker w stopped"))
        events.append(state(len(events) + 1, "running", n, worker=f"w{n}"))
        for kind, payload in spec.expected(start)[:count + (1 if start else 0)]:
            data = {"text": payload} if kind == "token" else {"level": "info", "message": payload}
            events.append({"seq": len(events) + 1, "kind": kind, "ts": 0, "data": data})
    events.append(state(len(events) + 1, "succeeded", len(attempts)))
    return events


class CheckLogTest(unittest.TestCase):
    def setUp(self):
        self.chaos = Chaos.__new__(Chaos)
        self.chaos.violations = Violations(quiet=True)  # expected ones, not news
        self.chaos.stats = Chaos.new_stats()
        self.spec = JobSpec("llm.generate", {"prompt": "p", "seed": 7, "max_tokens": 40}, "k")
        self.spec.id = "J"
        self.spec.final = {"state": "succeeded", "result": None}

    def violations(self, events):
        self.chaos.violations.items.clear()
        self.chaos.check_log(self.spec, events)
        return self.chaos.violations.items

    def test_a_resumed_job_with_its_checkpoint_overlap_passes(self):
        self.spec.final["result"] = {"text": "".join(
            p for _, p in self.spec.expected(0))}
        self.assertEqual(self.violations(llm_log(self.spec, [(0, 20), (16, 24)])), [])

    def test_lost_duplicated_or_reordered_chunks_are_caught(self):
        good = llm_log(self.spec, [(0, 40)])
        lost = good[:5] + good[6:]
        dup = good[:5] + [good[4]] + good[5:]
        swapped = good[:4] + [good[5], good[4]] + good[6:]
        for broken in (lost, dup, swapped):
            for i, e in enumerate(broken):
                broken[i] = dict(e, seq=i + 1)
            self.assertTrue(self.violations(broken))

    def test_a_zombie_write_after_the_requeue_is_caught(self):
        events = llm_log(self.spec, [(0, 20), (16, 24)])
        at = next(i for i, e in enumerate(events) if e["kind"] == "state"
                  and e["data"].get("reason"))
        zombie = {"seq": 0, "kind": "token", "ts": 0, "data": {"text": " late"}}
        events = events[:at + 1] + [zombie] + events[at + 1:]
        for i, e in enumerate(events):
            events[i] = dict(e, seq=i + 1)
        self.assertIn("outside any lease", " ".join(self.violations(events)))

    def test_a_resume_past_what_was_done_is_caught(self):
        self.assertIn("resumed at 32 but only 20",
                      " ".join(self.violations(llm_log(self.spec, [(0, 20), (32, 8)]))))

    def test_a_gap_in_the_seqs_is_caught(self):
        events = llm_log(self.spec, [(0, 40)])
        del events[3]
        self.assertIn("not 1..N", " ".join(self.violations(events)))

    def test_a_subscriber_gap_or_duplicate_is_caught(self):
        stream = Stream("J")
        log = llm_log(self.spec, [(0, 40)])
        for e in log[:3] + log[4:]:
            stream.take(e, self.chaos.violations, "ws0")
        self.assertIn("got seq 5 after 3", " ".join(self.chaos.violations.items))


    def test_a_late_subscriber_stream_is_compared_from_its_after(self):
        log = llm_log(self.spec, [(0, 40)])
        self.spec.streams = [("ws1", Stream("J", after=10)), ("sse", Stream("J", after=10))]
        for e in log[10:]:
            self.spec.streams[0][1].take(e, self.chaos.violations, "ws1")
        for e in log[9:]:  # one event too early: not what "after 10" asks for
            self.spec.streams[1][1].events.append(e)
        self.chaos.check_streams(self.spec, log)
        self.assertEqual(len(self.chaos.violations.items), 1)
        self.assertIn("sse job J: received stream (after 10) differs",
                      self.chaos.violations.items[0])


class FinalLogTest(unittest.TestCase):
    """The stored log read back at the end against what was seen before."""

    def setUp(self):
        self.chaos = Chaos.__new__(Chaos)
        self.chaos.violations = Violations(quiet=True)
        self.chaos.jobs_lock = threading.Lock()
        self.spec = JobSpec("llm.generate", {"prompt": "p", "seed": 7, "max_tokens": 40}, "k")
        self.spec.id = "J"
        self.log = llm_log(self.spec, [(0, 40)])
        self.spec.checked = (len(self.log), digest(self.log))
        self.chaos.jobs = [self.spec]
        whole, late = Stream("J"), Stream("J", after=10)
        for e in self.log:
            whole.take(e, self.chaos.violations, "ws0")
        for e in self.log[10:20]:  # a subscriber that saw part of it
            late.take(e, self.chaos.violations, "sse")
        self.spec.streams = [("ws0", whole), ("sse", late)]

    def violations(self, final):
        api = types.SimpleNamespace(events=lambda job: final)
        self.chaos.pick_broker = lambda: types.SimpleNamespace(api=api)
        self.chaos.check_final_logs()
        return self.chaos.violations.items

    def test_the_same_log_passes(self):
        self.assertEqual(self.violations([dict(e) for e in self.log]), [])

    def test_an_event_rewritten_after_it_was_seen_is_caught(self):
        final = [dict(e) for e in self.log]
        final[14] = dict(final[14], data={"text": " other"})
        found = " ".join(self.violations(final))
        self.assertIn("ws0 job J: the 43 events received after 0 are not byte-equal", found)
        self.assertIn("sse job J: the 10 events received after 10", found)
        self.assertIn("differs from the 43 events it had when it was checked", found)

    def test_events_lost_after_they_were_seen_are_caught(self):
        found = " ".join(self.violations(self.log[:15]))
        self.assertIn("received 10 events after 10 but the stored log read back at the end "
                      "has 15", found)


class PartitionMapTest(unittest.TestCase):
    def test_slots_as_redis_computes_them(self):
        self.assertEqual(PartitionMap.key_slot("foo"), 12182)  # CLUSTER KEYSLOT foo
        partitions = PartitionMap(16)
        for p, slot in enumerate(partitions.slots):
            self.assertTrue(p * 1024 <= slot < (p + 1) * 1024)


class ArgumentsTest(unittest.TestCase):
    def refused(self, argv):
        with self.assertRaises(SystemExit) as cm:
            main(argv)
        self.assertEqual(cm.exception.code, 2)

    def test_bad_arguments_are_refused(self):
        self.refused(["--duration", "soon"])
        self.refused(["--faults", "broker-kill,meteor"])
        self.refused(["--faults", "primary-kill"])  # a Redis fault needs --cluster


if __name__ == "__main__":
    unittest.main()
