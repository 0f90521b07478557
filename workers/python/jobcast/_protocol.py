"""Worker protocol v1 (DESIGN.md): one msgpack map per ZeroMQ frame, with
"v" = 1 and "t" = the message type. Encoders for what a worker sends and a
checking decoder for what a broker sends. No I/O.

Wire rules (as the broker's codec holds them): integers are msgpack integers,
ids and texts are str, checkpoint bytes are bin, data/params/result are maps
that have a JSON form (no bin, no NaN or infinities); unknown keys are ignored.
"""

import math
import time

import msgpack

VERSION = 1
MAX_FRAME_BYTES = 1 << 20  # what the broker decodes (protocol/limits.hpp)
MAX_NAME_BYTES = 128
MAX_TYPES = 64
MAX_CAPACITY = 1024
MAX_CHUNKS_EVENTS = 1024  # events in one chunks message (protocol/limits.hpp)
EVENT_KINDS = ("progress", "token", "log")
FEATURE_CHUNKS = "chunks"  # welcome.features: the broker takes chunks messages

_packer = msgpack.Packer(use_bin_type=True)
_pack = _packer.pack
_EVENTS_KEY = _pack("events")
_EVENT_HEADER = bytes((0x83,))  # a chunks event: a map of kind, data, ts


class ProtocolError(ValueError):
    """A broker frame that is not a valid v1 message. `assign` holds (job,
    attempt) when the frame names them in an assign, so the worker can fail
    that attempt instead of leaving it leased; `is_assign` says the frame is
    an assign (the broker counts it among the assigns sent)."""

    def __init__(self, detail, assign=None, is_assign=False):
        super().__init__(detail)
        self.assign = assign
        self.is_assign = is_assign


def now_us():
    return time.time_ns() // 1000


def printable_name(name, max_bytes=MAX_NAME_BYTES):
    """1..max_bytes bytes of UTF-8 without control characters or line separators."""
    if not isinstance(name, str) or not name:
        return False
    try:
        if len(name.encode("utf-8")) > max_bytes:
            return False
    except UnicodeEncodeError:
        return False
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in name)


def valid_utf8(text):
    """`text` with anything that cannot be encoded (lone surrogates) replaced."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _inflight(attempts):
    return [{"job": job, "attempt": attempt, "next_wseq": next_wseq}
            for job, attempt, next_wseq in attempts]


def hello(worker, types, capacity, inflight, session="", schemas=None):
    m = {"v": VERSION, "t": "hello", "worker": worker, "types": list(types),
         "capacity": capacity, "inflight": _inflight(inflight)}
    if session:
        m["session"] = session
    if schemas:
        m["schemas"] = dict(schemas)  # job type -> JSON Schema text
    return _pack(m)


def heartbeat(inflight=None, assigned=0):
    """A bare heartbeat, or one that lists the attempts held (job, attempt,
    next wseq) and how many assigns arrived since the last hello."""
    if inflight is None:
        return _pack({"v": VERSION, "t": "heartbeat"})
    return _pack({"v": VERSION, "t": "heartbeat", "inflight": _inflight(inflight),
                  "assigned": assigned})


def chunk(job, attempt, wseq, kind, data):
    return _pack({"v": VERSION, "t": "chunk", "job": job, "attempt": attempt, "wseq": wseq,
                  "kind": kind, "data": data, "ts": now_us()})


# The bytes of a msgpack uint by its first byte (fixint, uint 8/16/32/64).
_UINT_BYTES = {0xCC: 2, 0xCD: 3, 0xCE: 5, 0xCF: 9}


def chunks(job, attempt, wseq, chunk_frames):
    """A chunks message of consecutive chunk frames of one attempt (made by
    chunk(), the first with `wseq`; 1..MAX_CHUNKS_EVENTS of them), for a
    broker whose welcome announced it. Each event is cut from its frame as it
    is: the frame's kind, data and ts, after its v, t, job, attempt and wseq."""
    wseq_at = len(_pack({"v": VERSION, "t": "chunk", "job": job, "attempt": attempt})) + 5
    parts = [bytes((0x86,)), _pack({"v": VERSION, "t": "chunks", "job": job,
                                    "attempt": attempt, "wseq": wseq})[1:],
             _EVENTS_KEY, _packer.pack_array_header(len(chunk_frames))]
    for frame in chunk_frames:
        first = frame[wseq_at]
        parts.append(_EVENT_HEADER)
        parts.append(frame[wseq_at + (1 if first < 0x80 else _UINT_BYTES[first]):])
    return b"".join(parts)


def checkpoint(job, attempt, wseq, data):
    return _pack({"v": VERSION, "t": "checkpoint", "job": job, "attempt": attempt,
                  "wseq": wseq, "bytes": bytes(data)})


def done(job, attempt, wseq, result):
    return _pack({"v": VERSION, "t": "done", "job": job, "attempt": attempt, "wseq": wseq,
                  "result": result})


def fail(job, attempt, wseq, error, retryable):
    return _pack({"v": VERSION, "t": "fail", "job": job, "attempt": attempt, "wseq": wseq,
                  "error": valid_utf8(error), "retryable": bool(retryable)})


def check_json_object(value, what):
    """Raises TypeError/ValueError unless `value` is a dict the broker takes
    as a JSON object (str keys; str, int, float (finite), bool, None, list,
    tuple and dict values)."""
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict (a JSON object), not {type(value).__name__}")
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > 32:
            raise ValueError(f"{what} is nested deeper than 32 levels")
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    raise TypeError(f"{what}: keys must be str, not {type(key).__name__}")
                stack.append((item, depth + 1))
        elif isinstance(node, (list, tuple)):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise ValueError(f"{what}: NaN and infinities have no JSON form")
        elif node is not None and not isinstance(node, (str, int, bool)):
            raise TypeError(f"{what}: {type(node).__name__} has no JSON form")


# ---------------------------------------------------------------- decoding

def _field(m, key, kind, what):
    value = m.get(key)
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind)
    if not ok:
        raise ProtocolError(f"{what}: field '{key}' missing or of the wrong type")
    return value


def _attempt(m, what):
    attempt = _field(m, "attempt", int, what)
    if not 1 <= attempt <= 0x7FFFFFFF:
        raise ProtocolError(f"{what}: field 'attempt' out of range")
    return attempt


def decode(frame):
    """The broker message in `frame` as a dict with "t" and checked fields:
    welcome {heartbeat_ms, session, features}, assign {job, attempt, type, params,
    checkpoint (bytes)}, ack {job, attempt, wseq}, cancel {job}, heartbeat {},
    reject {job, reason, attempt (0 = not said), detail}. Raises ProtocolError."""
    if len(frame) > MAX_FRAME_BYTES:
        raise ProtocolError("frame larger than 1 MiB")
    try:
        m = msgpack.unpackb(frame, raw=False, strict_map_key=False, use_list=True)
    except Exception as e:  # msgpack raises several types for malformed input
        raise ProtocolError(f"not msgpack: {type(e).__name__}") from None
    if not isinstance(m, dict):
        raise ProtocolError("not a map")
    t = m.get("t")
    if t == "assign":
        # Fields that name the attempt first, so a bad assign can be answered.
        job, attempt = m.get("job"), m.get("attempt")
        named = (isinstance(job, str) and job and isinstance(attempt, int)
                 and not isinstance(attempt, bool) and attempt >= 1)
        try:
            if m.get("v") != VERSION:
                raise ProtocolError("assign: unsupported version")
            params = _field(m, "params", dict, "assign")
            check_json_object(params, "assign params")
            cp = m.get("checkpoint", b"")
            if not isinstance(cp, bytes):
                raise ProtocolError("assign: field 'checkpoint' must be bin")
            return {"t": t, "job": _field(m, "job", str, "assign"),
                    "attempt": _attempt(m, "assign"), "type": _field(m, "type", str, "assign"),
                    "params": params, "checkpoint": cp}
        except (TypeError, ValueError) as e:
            raise ProtocolError(str(e), (job, attempt) if named else None, True) from None
    if m.get("v") != VERSION:
        raise ProtocolError("unsupported version")
    if t == "ack":
        wseq = _field(m, "wseq", int, "ack")
        if wseq < 0:
            raise ProtocolError("ack: negative wseq")
        return {"t": t, "job": _field(m, "job", str, "ack"), "attempt": _attempt(m, "ack"),
                "wseq": wseq}
    if t == "heartbeat":
        return {"t": t}
    if t == "cancel":
        return {"t": t, "job": _field(m, "job", str, "cancel")}
    if t == "welcome":
        heartbeat_ms = _field(m, "heartbeat_ms", int, "welcome")
        if heartbeat_ms < 1:
            raise ProtocolError("welcome: heartbeat_ms must be positive")
        session = m.get("session", "")
        if not isinstance(session, str):
            raise ProtocolError("welcome: field 'session' must be str")
        features = m.get("features", [])
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ProtocolError("welcome: field 'features' must be an array of str")
        return {"t": t, "heartbeat_ms": heartbeat_ms, "session": session,
                "features": features}
    if t == "reject":
        attempt = m.get("attempt", 0)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
            raise ProtocolError("reject: field 'attempt' must be a non-negative integer")
        detail = m.get("detail", "")
        return {"t": t, "job": _field(m, "job", str, "reject"),
                "reason": _field(m, "reason", str, "reject"), "attempt": attempt,
                "detail": detail if isinstance(detail, str) else ""}
    raise ProtocolError(f"unknown message type {t!r:.40}")
