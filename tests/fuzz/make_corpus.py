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
    "hello_schemas": {"v": 1, "t": "hello", "worker": "w-1", "types": ["exec"], "capacity": 1,
                      "schemas": {"exec": '{"type":"object","required":["command"]}'}},
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
    "welcome_features": {"v": 1, "t": "welcome", "heartbeat_ms": 1000, "features": ["chunks"]},
    "chunks": {"v": 1, "t": "chunks", "job": JOB, "attempt": 1, "wseq": 7,
               "events": [{"kind": "token", "data": {"text": "a"}, "ts": 1700000000123456},
                          {"kind": "log", "data": {"level": "info", "message": "m"}}]},
    "assign": {"v": 1, "t": "assign", "job": JOB, "attempt": 1, "type": "research",
               "params": {"topic": "zmq", "stages": 3}, "checkpoint": b"\x00"},
    "ack": {"v": 1, "t": "ack", "job": JOB, "attempt": 1, "wseq": 7},
    "cancel": {"v": 1, "t": "cancel", "job": JOB},
    "reject": {"v": 1, "t": "reject", "job": JOB, "reason": "lease lost"},
    "reject_attempt": {"v": 1, "t": "reject", "job": JOB, "reason": "lease", "attempt": 2},
    "heartbeat_inflight": {"v": 1, "t": "heartbeat", "assigned": 3,
                           "inflight": [{"job": JOB, "attempt": 2, "next_wseq": 17}]},
}

REQUESTS = {
    "minimal": '{"type":"exec"}',
    "full": '{"type":"llm.generate","params":{"prompt":"hi","max_tokens":16,"t":0.7},'
            '"priority":5,"max_attempts":2}',
    "unknown": '{"type":"exec","owner":"x"}',
    "escapes": '{"type":"exec","params":{"s":"\\u00e9\\n\\ud83d\\ude80","a":[1e3,-0.0,null]}}',
}

CLIENT_OPS = {
    "subscribe": '{"op":"subscribe","job":"%s","after":17}' % JOB,
    "subscribe_null_after": '{"op":"subscribe","job":"%s","after":null}' % JOB,
    "subscribe_feed": '{"op":"subscribe","feed":"jobs"}',
    "unsubscribe": '{"op":"unsubscribe","job":"%s"}' % JOB,
    "unsubscribe_feed": '{"op":"unsubscribe","feed":"jobs"}',
    "cancel": '{"op":"cancel","job":"%s"}' % JOB,
    "ping": '{"op":"ping"}',
    "auth": '{"op":"auth","token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"}',
    "negative_after": '{"op":"subscribe","job":"%s","after":-1}' % JOB,
    "huge_after": '{"op":"subscribe","job":"%s","after":18446744073709551616}' % JOB,
    "float_after": '{"op":"subscribe","job":"%s","after":1e400}' % JOB,
    "escaped_job": '{"op":"cancel","job":"\\u00e9\\ud83d\\ude80"}',
    "unknown": '{"op":"dance","job":[1,{"a":null}]}',
}

_BODY = '{"type":"llm.generate","params":{"prompt":"hi","max_tokens":8},"priority":1}'
HTTP_REQUESTS = {
    "healthz": "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "create": ("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               "Idempotency-Key: order-42\r\nContent-Length: %d\r\n\r\n%s"
               % (len(_BODY), _BODY)),
    "create_chunked": ("POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "%x\r\n%s\r\n0\r\n\r\n" % (len(_BODY), _BODY)),
    "list": "GET /v1/jobs?state=running&type=exec&limit=20&cursor=abc%2Fdef HTTP/1.1\r\n\r\n",
    "get": "GET /v1/jobs/%s HTTP/1.1\r\nAccept: application/json\r\n\r\n" % JOB,
    "cancel": "POST /v1/jobs/%s/cancel HTTP/1.1\r\nContent-Length: 0\r\n\r\n" % JOB,
    "events": "GET /v1/jobs/%s/events?after=3&limit=100&wait=5 HTTP/1.1\r\n\r\n" % JOB,
    "escaped_id": "GET /v1/jobs/a%2Fb%00c/events?after=%2B1&x=%zz HTTP/1.1\r\n\r\n",
    "wrong_method": "DELETE /v1/jobs HTTP/1.1\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
    "ws_upgrade": ("GET /v1/ws?access_token=abc HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n"),
    "sse": ("GET /v1/jobs/%s/events HTTP/1.1\r\nAccept: text/event-stream\r\n"
            "Last-Event-ID: 12\r\n\r\n" % JOB),
}

# fuzz_time_values: a byte of claim forms (exp, nbf, iat: 0 absent, 1 int64,
# 2 uint64, 3 double; then the maximum lifetime: 0 default, 1 none, 2 the word,
# 3 one second), a byte of ts/after/limit/wait forms (ts: 0 int64, 1 uint64,
# 2 double; the others: 0 int64, 1 uint64, 2 double text, 3 the raw tail), then
# eleven little-endian words: exp, nbf, iat, now, max lifetime, ts, after,
# limit, wait, minted iat, minted ttl; then the raw tail.
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
MAX_UNIX = 253402300799  # 9999-12-31T23:59:59Z
MAX_MICROS = MAX_UNIX * 1000000 + 999999
NOW = 1800000000
ABSENT, INT, UINT, DOUBLE = 0, 1, 2, 3


def word(value):
    if isinstance(value, float):
        return struct.pack("<d", value)
    return struct.pack("<Q", value & UINT64_MAX)


def time_values(claims=(ABSENT, ABSENT, ABSENT), lifetime=0, ts_form=0, query=(1, 1, 1),
                exp=0, nbf=0, iat=0, now=NOW, max_lifetime=0, ts=1700000000123456, after=0,
                limit=100, wait=0, mint_iat=NOW, mint_ttl=3600, tail=b""):
    forms = claims[0] | claims[1] << 2 | claims[2] << 4 | lifetime << 6
    forms2 = ts_form | query[0] << 2 | query[1] << 4 | query[2] << 6
    words = (exp, nbf, iat, now, max_lifetime, ts, after, limit, wait, mint_iat, mint_ttl)
    return bytes([forms, forms2]) + b"".join(word(w) for w in words) + tail


TIME_VALUES = {
    "valid": time_values((INT, INT, INT), exp=NOW + 600, nbf=NOW, iat=NOW),
    "exp_int64_max": time_values((INT, ABSENT, ABSENT), exp=INT64_MAX, ts=INT64_MIN,
                                 after=UINT64_MAX, limit=10000, wait=60),
    "exp_uint64_max": time_values((UINT, ABSENT, ABSENT), exp=UINT64_MAX, ts=INT64_MAX,
                                  query=(0, 1, 1), after=-1, limit=0, wait=UINT64_MAX),
    "exp_never_no_max": time_values((INT, INT, INT), lifetime=1, exp=9999999999, nbf=0, iat=0,
                                    ts=0, limit=10001, wait=61),
    "exp_never_default": time_values((INT, ABSENT, ABSENT), exp=9999999999, ts=-1),
    "exp_last_second": time_values((INT, ABSENT, ABSENT), lifetime=1, exp=MAX_UNIX, ts_form=1,
                                   ts=MAX_MICROS, after=0, limit=1, wait=0),
    "exp_after_year_9999": time_values((INT, INT, INT), exp=MAX_UNIX + 1, nbf=MAX_UNIX + 1,
                                       iat=-1, ts_form=1, ts=MAX_MICROS + 1),
    "exp_doubles": time_values((DOUBLE, DOUBLE, DOUBLE), exp=1e300, nbf=-1e300, iat=float("nan"),
                               ts_form=2, ts=1.5, query=(2, 2, 2), after=1e300, limit=1.0,
                               wait=float("nan")),
    "exp_infinities": time_values((DOUBLE, DOUBLE, DOUBLE), exp=float("inf"),
                                  nbf=float("-inf"), iat=-0.0, ts=-1),
    "exp_fraction": time_values((DOUBLE, ABSENT, DOUBLE), exp=NOW + 600.75, iat=NOW + 0.5),
    "clock_min": time_values((INT, INT, ABSENT), lifetime=2, exp=NOW + 600, nbf=0,
                             now=INT64_MIN, max_lifetime=INT64_MAX),
    "clock_max": time_values((INT, ABSENT, ABSENT), lifetime=3, exp=NOW + 600, now=INT64_MAX),
    "no_exp": time_values((ABSENT, ABSENT, INT), iat=NOW),
    "mint_extremes": time_values(mint_iat=INT64_MAX, mint_ttl=INT64_MAX, ts=INT64_MAX),
    "mint_negative": time_values(mint_iat=INT64_MIN, mint_ttl=INT64_MAX, ts=INT64_MIN),
    "raw_query": time_values(query=(3, 3, 3), tail=b"%2B1&x=%zz"),
}


# Log values, request targets and Host headers (fuzz_log_and_host).
LOG_AND_HOST = {
    "host_localhost": b"localhost:8080",
    "host_v6": b"[::1]:80",
    "host_rebind": b"rebind.attacker.example:8080",
    "host_127name": b"127.0.0.1.nip.io",
    "target_token": b"/v1/jobs?access_token=abc&x=1",
    "target_forge": b'/v1/jobs/a"b=c\n2030-01-01 info audit event=x',
    "target_encoded": b"%61ccess_TOKEN=x#access_token=y",
    "utf8": b"w\xe2\x80\xa8\xff\x7f",
}


# A JSON Schema, a NUL byte, then the params checked against it.
PARAMS_SCHEMA = {
    "required": b'{"type":"object","required":["topic"],"properties":{"topic":{"type":"string",'
                b'"minLength":1},"stage_ms":{"type":["integer","null"],"minimum":0}}}'
                b'\0{"stage_ms":5}',
    "recursive": b'{"properties":{"children":{"type":"array","items":{"$ref":"#"}}}}'
                 b'\0{"children":[{"children":[]},{"children":[{}]}]}',
    "pattern": b'{"properties":{"id":{"pattern":"^[a-z]+(?:-[0-9]{1,3})?$"}},'
               b'"patternProperties":{"^x-":{"type":"string"}}}\0{"id":"ab-12","x-a":1}',
    "combinators": b'{"definitions":{"n":{"type":"number"}},"anyOf":[{"$ref":"#/definitions/n"},'
                   b'{"allOf":[{"type":"object"},{"not":{"required":["a"]}}]}],'
                   b'"if":{"minProperties":2},"then":{"maxProperties":3}}\0{"b":1,"c":[]}',
    "loop": b'{"definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}},'
            b'"$ref":"#/definitions/a"}\0{}',
    "remote": b'{"$ref":"http://127.0.0.1:1/x.json"}\0{}',
    "evil_pattern": b'{"pattern":"^(a+)+$"}\0"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!"',
    "huge_bound": b'{"pattern":"^[0-9]{1,44444444444444444444444}$"}\0"12"',
    "bool": b'false\0[]',
}


def chunks_seed(wseq, events):
    """fuzz_chunks input: the events count (u16) and first wseq (u64), then the events."""
    return struct.pack(">HQ", len(events), wseq) + b"".join(pack(e) for e in events)


TOKEN_EVENT = {"kind": "token", "data": {"text": "Hello, wörld"}, "ts": 1700000000123456}
CHUNKS = {
    "one": chunks_seed(7, [TOKEN_EVENT]),
    "three_kinds": chunks_seed(1, [
        TOKEN_EVENT,
        {"kind": "progress", "data": {"fraction": 0.5, "stage": "search"}},
        {"kind": "log", "data": {"level": "info", "message": "m"}, "ts": 0}]),
    "last_wseq": chunks_seed(2**64 - 2, [TOKEN_EVENT, TOKEN_EVENT]),
    "wseq_overflow": chunks_seed(2**64 - 1, [TOKEN_EVENT, TOKEN_EVENT]),
    "empty": chunks_seed(1, []),
    "event_names_a_job": chunks_seed(1, [dict(TOKEN_EVENT, job=JOB)]),
}


def write_seeds(target, seeds, suffix=""):
    """Writes each seed (bytes) as tests/fuzz/corpus/<target>/<name><suffix>."""
    folder = HERE / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in seeds.items():
        (folder / f"{name}{suffix}").write_bytes(data)


def main():
    write_seeds("worker_decode", {n: pack(f) for n, f in FRAMES.items()}, ".msgpack")
    write_seeds("chunks", CHUNKS, ".bin")
    write_seeds("json_request", {n: b.encode() for n, b in REQUESTS.items()}, ".json")
    write_seeds("client_ops", {n: t.encode() for n, t in CLIENT_OPS.items()}, ".json")
    write_seeds("http_request", {n: t.encode() for n, t in HTTP_REQUESTS.items()}, ".http")
    write_seeds("time_values", TIME_VALUES, ".bin")
    write_seeds("log_and_host", LOG_AND_HOST)
    write_seeds("params_schema", PARAMS_SCHEMA)


if __name__ == "__main__":
    main()
