#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (run from anywhere; needs only
Python 3). The files are committed; re-run after changing the protocol."""
import pathlib
import struct

HERE = pathlib.Path(__file__).resolve().parent


def pack(value):
    """A minimal msgpack encoder for the seed frames (str/bin/int/bool/map/list)."""
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        if 0 <= value < 0x80:
            return bytes([value])
        if -32 <= value < 0:
            return struct.pack("b", value)
        if value >= 0:
            return b"\xcf" + struct.pack(">Q", value)
        return b"\xd3" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"\xcb" + struct.pack(">d", value)
    if isinstance(value, str):
        data = value.encode("utf-8")
        if len(data) < 32:
            return bytes([0xA0 | len(data)]) + data
        return b"\xd9" + bytes([len(data)]) + data
    if isinstance(value, bytes):
        return b"\xc4" + bytes([len(value)]) + value
    if isinstance(value, list):
        return bytes([0x90 | len(value)]) + b"".join(pack(v) for v in value)
    if isinstance(value, dict):
        return bytes([0x80 | len(value)]) + b"".join(pack(k) + pack(v) for k, v in value.items())
    raise TypeError(value)


JOB = "01HZY3J5KX8Q2V7R4M6N0P1S9T"
FRAMES = {
    "hello": {"v": 1, "t": "hello", "worker": "w-1", "types": ["llm.generate", "exec"],
              "capacity": 4, "inflight": [{"job": JOB, "attempt": 1, "next_wseq": 3}]},
    "heartbeat": {"v": 1, "t": "heartbeat"},
    "chunk_token": {"v": 1, "t": "chunk", "job": JOB, "attempt": 1, "wseq": 7, "kind": "token",
                    "data": {"text": "Hello, wörld"}, "ts": 1700000000123456},
    "chunk_progress": {"v": 1, "t": "chunk", "job": JOB, "attempt": 2, "wseq": 1,
                       "kind": "progress",
                       "data": {"fraction": 0.5, "stage": "search", "n": [1, -2, None, True]},
                       "ts": 1700000000123456},
    "checkpoint": {"v": 1, "t": "checkpoint", "job": JOB, "attempt": 1, "wseq": 8,
                   "bytes": b"\x00\x01state\x00"},
    "done": {"v": 1, "t": "done", "job": JOB, "attempt": 1, "wseq": 9,
             "result": {"text": "ok", "tokens": 2}},
    "fail": {"v": 1, "t": "fail", "job": JOB, "attempt": 1, "wseq": 9, "error": "boom",
             "retryable": True},
    "welcome": {"v": 1, "t": "welcome", "heartbeat_ms": 1000},
    "assign": {"v": 1, "t": "assign", "job": JOB, "attempt": 1, "type": "research",
               "params": {"topic": "zmq", "stages": 3}, "checkpoint": b"\x00"},
    "ack": {"v": 1, "t": "ack", "job": JOB, "attempt": 1, "wseq": 7},
    "cancel": {"v": 1, "t": "cancel", "job": JOB},
    "reject": {"v": 1, "t": "reject", "job": JOB, "reason": "lease lost"},
}

REQUESTS = {
    "minimal": '{"type":"exec"}',
    "full": '{"type":"llm.generate","params":{"prompt":"hi","max_tokens":16,"t":0.7},'
            '"priority":5,"max_attempts":2}',
    "unknown": '{"type":"exec","owner":"x"}',
    "escapes": '{"type":"exec","params":{"s":"\\u00e9\\n\\ud83d\\ude80","a":[1e3,-0.0,null]}}',
}


def main():
    worker = HERE / "corpus" / "worker_decode"
    worker.mkdir(parents=True, exist_ok=True)
    for name, frame in FRAMES.items():
        (worker / f"{name}.msgpack").write_bytes(pack(frame))
    requests = HERE / "corpus" / "json_request"
    requests.mkdir(parents=True, exist_ok=True)
    for name, body in REQUESTS.items():
        (requests / f"{name}.json").write_text(body)


if __name__ == "__main__":
    main()
