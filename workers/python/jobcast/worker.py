"""The jobcast worker: a ZeroMQ DEALER to a broker, hello with its job types
and capacity, a handler per assigned job, heartbeats, reconnects with backoff
over a list of brokers, and every message kept until the broker acknowledges
it so that it can be sent again after a reconnect or a broker restart (worker
protocol v1, DESIGN.md guarantees 2 and 5) -- the C++ SDK's guarantees
(workers/worker.hpp), on asyncio.

One event loop owns the socket and the ReliableStream. Async handlers run on
it as tasks; plain functions run on `capacity` threads and hand their encoded
messages over through the Outbox, which wakes the loop once per batch.

The socket's monitor reports when the connection to the broker closes after
its handshake (the broker process died or restarted). With other brokers in
the list the worker fails over then, without waiting for `liveness` silent
heartbeats; with one broker ZeroMQ reconnects the socket and the worker says
hello again as soon as the new connection's handshake is done.
"""

import asyncio
import concurrent.futures
import dataclasses
import inspect
import json
import logging
import os
import random
import signal
import socket
import threading
import time
from collections import deque

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import _protocol
from ._stream import ALREADY_RESENDING, DROP, NOT_OURS, TERMINAL, ReliableStream
from .job import Job, JobFailed, SyncJob

log = logging.getLogger("jobcast")

_SOCKET_HWM = 100000
_MAX_RECEIVES_PER_WAKE = 4096
_SEND_RETRY_S = 0.005  # the socket's queue was full: try again after this
_BAD_LOG_INTERVAL_S = 10.0
# Plain ints: pyzmq's enum flags cost more than the send itself.
_NOBLOCK = int(zmq.NOBLOCK)
_POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)
_RCVMORE = int(zmq.RCVMORE)
_raw_send = zmq.backend.Socket.send
_raw_get = zmq.backend.Socket.get
_MONITORED = zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED


@dataclasses.dataclass
class WorkerStats:
    """Counters for logs and metrics (Worker.stats() returns a copy)."""
    events_emitted: int = 0  # chunk + checkpoint + done + fail messages made
    messages_sent: int = 0  # frames handed to the socket (re-sends included)
    messages_resent: int = 0  # re-sends after reconnect, "hello" or "gap" rejects
    acks_received: int = 0
    unacked_messages: int = 0  # buffered, waiting for an ack
    unacked_bytes: int = 0  # what emit's bound applies to
    emit_waits: int = 0  # times an emit waited for room
    reconnects: int = 0  # new sockets after the broker went silent, refused us or closed
    hellos: int = 0
    rejects_received: int = 0
    bad_messages: int = 0  # undecodable frames from the broker
    jobs_assigned: int = 0
    jobs_running: int = 0
    jobs_succeeded: int = 0
    jobs_failed: int = 0  # cancelled jobs included
    jobs_abandoned: int = 0  # lease lost or worker stopping
    connected: bool = False  # the current broker has welcomed us


class Backoff:
    """Reconnect delays with full jitter: each drawn uniformly from [min,
    ceiling], the ceiling doubling from `min` up to `max` until reset()."""

    def __init__(self, minimum, maximum, rng=None):
        self.min = minimum
        self.max = max(maximum, minimum)
        self._ceiling = minimum
        self._rng = rng or random.Random()

    def next(self):
        ceiling = self._ceiling
        self._ceiling = min(self.max, self._ceiling * 2)
        return self._rng.uniform(self.min, ceiling)

    def reset(self):
        self._ceiling = self.min


class Outbox:
    """The bound on bytes emitted and not acknowledged yet (all jobs
    together), and the hand-off of messages from handler threads to the loop.
    A message always fits when nothing is waiting, so one bigger than the
    bound still goes out, alone."""

    def __init__(self, worker, max_bytes):
        self._worker = worker
        self.max_bytes = max_bytes
        self.used = 0
        self._cond = threading.Condition()
        self._queue = []  # (job, wseq, frame, kind) from handler threads
        self._waiters = deque()  # futures of async emitters waiting for room

    def _fits(self, size):
        return self.used == 0 or self.used + size <= self.max_bytes

    async def submit_async(self, job, wseq, frame, kind):
        """The loop thread: waits for room, then hands the message to the stream."""
        size = len(frame)
        with self._cond:
            fits = self._fits(size)
            if fits:
                self.used += size
        if not fits:
            self._worker._stats.emit_waits += 1
            while True:
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
                if job._closed:
                    return
                with self._cond:
                    if self._fits(size):
                        self.used += size
                        break
        self._worker._push(job, wseq, frame, kind)

    def submit_threadsafe(self, job, wseq, frame, kind):
        """A handler thread: blocks while the message does not fit."""
        size = len(frame)
        with self._cond:
            if not self._fits(size):
                self._worker._stats.emit_waits += 1
                self._cond.wait_for(lambda: self._fits(size) or job._closed)
            if job._closed:
                return
            self.used += size
            wake = not self._queue
            self._queue.append((job, wseq, frame, kind))
        if wake:
            self._worker._loop.call_soon_threadsafe(self._worker._pump_outbox)

    def take(self):
        with self._cond:
            batch, self._queue = self._queue, []
        return batch

    def reserve(self, size):
        with self._cond:
            self.used += size

    def release(self, size):
        """Frees acknowledged (or dropped) bytes and wakes waiting emitters."""
        with self._cond:
            self.used -= min(size, self.used)
            self._cond.notify_all()
        self._wake_waiters()

    def wake_all(self):
        """Wakes every waiting emitter, e.g. to notice that its job was closed."""
        with self._cond:
            self._cond.notify_all()
        self._wake_waiters()

    def _wake_waiters(self):
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


def _default_name():
    return f"{socket.gethostname()[:100] or 'worker'}-{os.getpid()}"


def _read_key(path):
    """The Z85 key in a key file (`jobcast keygen`): the first line that is
    not blank or a comment."""
    with open(path, encoding="ascii") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                if len(line) != 40:
                    raise ValueError(f"'{path}': not a Z85 CURVE key (40 characters)")
                return line.encode("ascii")
    raise ValueError(f"'{path}' holds no CURVE key")


class Worker:
    """A jobcast worker.

        w = Worker(brokers=["tcp://127.0.0.1:5555"], types=["hello"], capacity=4)

        @w.handler("hello")
        async def hello(job):
            await job.token("hi " + job.params.get("name", "there"))
            return {"ok": True}

        w.run()  # until SIGINT/SIGTERM or w.stop(); or: await w.serve()

    brokers: endpoints tried in turn, one at a time (a reconnect moves to the
      next one; when the broker's connection closes, at once).
    types: the job types served (default: every type with a handler).
    capacity: jobs run at once.
    name: the worker's name at the broker (default "<hostname>-<pid>").
    max_unacked_bytes: emitted and not yet acknowledged, whole worker; emit
      waits beyond it.
    reconnect_min, reconnect_max: seconds of backoff between connections.
    liveness: heartbeat intervals of broker silence before reconnecting.
    on_stop: "handback" (stop() closes running jobs at once; the broker
      re-queues them from their last checkpoint when the lease lapses) or
      "finish" (stop() takes no new jobs and lets running ones finish, for up
      to `stop_timeout` seconds, then hands back the rest).
    shutdown_grace: seconds stop() keeps waiting for acks of what was emitted.
    curve_server_key: the broker's CURVE public key (Z85) or its .pub file;
      with curve_secret_key_file (this worker's `jobcast keygen` .key file)
      the connection is CURVE-encrypted and authenticated.
    """

    def __init__(self, brokers=("tcp://127.0.0.1:5555",), types=(), capacity=1, name=None, *,
                 max_unacked_bytes=8 << 20, reconnect_min=0.1, reconnect_max=5.0, liveness=3,
                 on_stop="handback", stop_timeout=30.0, shutdown_grace=2.0,
                 curve_server_key=None, curve_secret_key_file=None):
        if isinstance(brokers, str):
            brokers = [brokers]
        self.brokers = [b for b in brokers if b]
        self.types = list(types)
        self.capacity = capacity
        self.name = name or _default_name()
        if not self.brokers:
            raise ValueError("worker: no broker endpoint")
        if not isinstance(capacity, int) or not 1 <= capacity <= _protocol.MAX_CAPACITY:
            raise ValueError("worker: capacity must be between 1 and 1024")
        if liveness < 1:
            raise ValueError("worker: liveness must be at least 1")
        if max_unacked_bytes <= 0:
            raise ValueError("worker: max_unacked_bytes must be positive")
        if not 0 < reconnect_min <= reconnect_max:
            raise ValueError("worker: need 0 < reconnect_min <= reconnect_max")
        if on_stop not in ("handback", "finish"):
            raise ValueError('worker: on_stop must be "handback" or "finish"')
        if not _protocol.printable_name(self.name):
            raise ValueError(
                "worker: name must be 1 to 128 bytes of UTF-8 without control characters")
        if bool(curve_server_key) != bool(curve_secret_key_file):
            raise ValueError(
                "worker: CURVE needs both curve_server_key and curve_secret_key_file")
        self._curve = None
        if curve_server_key:
            server = curve_server_key
            if os.path.exists(server):
                server = _read_key(server).decode()
            secret = _read_key(curve_secret_key_file)
            self._curve = (server.encode("ascii"), zmq.curve_public(secret), secret)
        self.liveness = liveness
        self.on_stop = on_stop
        self.stop_timeout = stop_timeout
        self.shutdown_grace = shutdown_grace
        self._max_unacked = max_unacked_bytes
        self._backoff = Backoff(reconnect_min, reconnect_max)
        self._reconnect_ivl = (int(reconnect_min * 1000), int(reconnect_max * 1000))
        self._handlers = {}
        self._schemas = {}  # job type -> JSON Schema text, announced in hello
        self._stats = WorkerStats()
        self._loop = None
        self._stop_requested = False

    # ------------------------------------------------------------ public API

    def handler(self, job_type, schema=None):
        """Decorator: registers an async or plain function for `job_type`.
        `schema` (a dict or JSON text): the JSON Schema its params must meet;
        the broker answers 422 to a submission that breaks it."""
        def register(fn):
            self.handle(job_type, fn, schema)
            return fn
        return register

    def handle(self, job_type, fn, schema=None):
        if self._loop is not None:
            raise RuntimeError("worker: handle() after serve()")
        text = None
        if schema is not None:
            text = schema if isinstance(schema, str) else json.dumps(schema)
            json.loads(text)  # ValueError here rather than a hello the broker refuses
        self._handlers[job_type] = fn
        if text is None:
            self._schemas.pop(job_type, None)
        else:
            self._schemas[job_type] = text

    def run(self):
        """Serves until SIGINT/SIGTERM or stop(); then stops gracefully."""
        async def main():
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
            try:
                await self.serve()
            finally:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        asyncio.run(main())

    def stop(self):
        """Asks serve() to stop gracefully; any thread may call it."""
        self._stop_requested = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wakeup)

    def stats(self):
        stats = dataclasses.replace(self._stats)
        if self._loop is not None:
            stats.unacked_bytes = self._outbox.used
        return stats

    async def serve(self):
        """Connects and serves until stop(); then finishes or hands back the
        running jobs (on_stop), waits up to shutdown_grace for outstanding
        acks and returns."""
        if self._loop is not None:
            raise RuntimeError("worker: serve() called twice")
        if not self.types:
            self.types = sorted(self._handlers)
        if not self.types:
            raise ValueError("worker: no job types to serve")
        if len(self.types) > _protocol.MAX_TYPES:
            raise ValueError("worker: at most 64 job types per worker")
        for job_type in self.types:
            if not _protocol.printable_name(job_type):
                raise ValueError(f"worker: job type {job_type!r} is not 1 to 128 bytes "
                                 "without control characters")
            if job_type not in self._handlers:
                raise ValueError(f"worker: no handler for job type {job_type!r}")
        self._loop = asyncio.get_running_loop()
        self._init_state()
        log.info("connecting brokers=%s worker=%r types=%s capacity=%d", ",".join(self.brokers),
                 self.name, ",".join(self.types), self.capacity)
        self._now = time.monotonic()
        self._open_socket(first=True)
        try:
            await self._main_loop()
        finally:
            self._close_socket()
            for job in list(self._jobs.values()):
                self._close_job(job)
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._executor is not None:
                self._executor.shutdown(wait=False)
            self._ctx.term()
            log.info("stopped worker=%r", self.name)

    # ------------------------------------------------------------ the loop

    def _init_state(self):
        self._ctx = zmq.Context()
        self._sock = None
        self._fd = None
        self._monitor = None  # the PAIR end of the socket's monitor
        self._monitor_fd = None
        self._monitors_opened = 0  # names each monitor's inproc endpoint
        # The socket's connection completed its handshake, and it closed since
        # then (one broker: ZeroMQ is reconnecting it).
        self._handshake_done = False
        self._connection_lost = False
        self._stream = ReliableStream()
        self._outbox = Outbox(self, self._max_unacked)
        self._jobs = {}  # job id -> Job/SyncJob held (running, or waiting for acks)
        self._tasks = set()
        self._slots = asyncio.Semaphore(self.capacity)
        sync = any(not inspect.iscoroutinefunction(self._handlers[t]) for t in self.types)
        self._executor = (concurrent.futures.ThreadPoolExecutor(
            self.capacity, thread_name_prefix="jobcast-handler") if sync else None)
        self._wake = asyncio.Event()
        self._broker_index = 0
        self._heartbeat = 1.0
        self._last_send = self._last_receive = self._last_report = 0.0
        self._hello_sent_at = self._reconnect_at = 0.0
        self._assigns_received = 0  # since our last hello
        self._session = ""  # the broker's session for our name (welcome.session)
        self._awaiting_welcome = False
        self._welcomed_once = False
        self._stopping = False
        self._stop_deadline = 0.0
        self._finish_deadline = 0.0
        self._bad_logged_at = -_BAD_LOG_INTERVAL_S
        self._send_retry = None
        self._flush_scheduled = False
        self._hb_frame = _protocol.heartbeat()

    def _wakeup(self):
        self._wake.set()

    def _liveness_window(self):
        return self._heartbeat * self.liveness

    async def _main_loop(self):
        while True:
            now = self._now = time.monotonic()
            if self._stop_requested and not self._stopping:
                self._begin_stop()
            if self._stopping:
                if self._finish_deadline:
                    if self._tasks and now < self._finish_deadline:
                        pass  # running jobs finish first
                    else:
                        self._finish_deadline = 0.0
                        self._hand_back()
                elif self._outbox.used == 0:
                    break
                elif now >= self._stop_deadline:
                    log.warning("stopping with unacknowledged messages=%d "
                                "(broker did not ack in time)", self._stats.unacked_messages)
                    break
            if self._sock is None and now >= self._reconnect_at:
                self._open_socket(first=False)
            if self._sock is not None and now - self._last_receive >= self._liveness_window():
                log.warning("broker silent for %d ms; reconnecting broker=%s",
                            (now - self._last_receive) * 1000, self._broker())
                self._reconnect()
            # A heartbeat when idle, and one listing what we hold at least once
            # per heartbeat interval while busy (the broker reconciles leases).
            if self._sock is not None and (now - self._last_send >= self._heartbeat
                                           or now - self._last_report >= self._heartbeat):
                self._send_heartbeat()

            wake_at = now + 1.0
            if self._sock is not None:
                wake_at = min(wake_at, self._last_send + self._heartbeat,
                              self._last_report + self._heartbeat,
                              self._last_receive + self._liveness_window())
            else:
                wake_at = min(wake_at, self._reconnect_at)
            if self._stopping:
                wake_at = min(wake_at, self._finish_deadline or self._stop_deadline)
            timeout = max(0.0, wake_at - time.monotonic()) + 0.001
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _broker(self):
        return self.brokers[self._broker_index]

    def _open_socket(self, first):
        endpoint = self._broker()
        sock = self._ctx.socket(zmq.DEALER)
        monitor = None
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, _SOCKET_HWM)
            sock.setsockopt(zmq.RCVHWM, _SOCKET_HWM)
            sock.setsockopt(zmq.RECONNECT_IVL, self._reconnect_ivl[0])
            sock.setsockopt(zmq.RECONNECT_IVL_MAX, self._reconnect_ivl[1])
            if self._curve:
                sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = self._curve
            self._monitors_opened += 1
            monitor = sock.get_monitor_socket(
                _MONITORED, f"inproc://jobcast-worker-monitor-{self._monitors_opened}")
            monitor.setsockopt(zmq.LINGER, 0)
            sock.connect(endpoint)
        except zmq.ZMQError as e:
            if monitor is not None:
                monitor.close(0)
            sock.close(0)
            if first:
                raise ValueError(f"worker: cannot connect to {endpoint!r}: {e}") from None
            log.error("cannot open socket broker=%s error=%s", endpoint, e)
            self._schedule_reconnect()
            return
        self._sock = sock
        self._fd = sock.getsockopt(zmq.FD)
        self._loop.add_reader(self._fd, self._on_socket)
        self._monitor = monitor
        self._monitor_fd = monitor.getsockopt(zmq.FD)
        self._loop.add_reader(self._monitor_fd, self._on_monitor)
        self._handshake_done = self._connection_lost = False
        self._loop.call_soon(self._on_monitor)
        self._last_receive = self._last_send = self._now
        self._heartbeat = 1.0  # until the broker's welcome says otherwise
        self._send_hello()
        self._resend_all()
        self._loop.call_soon(self._on_socket)

    def _close_socket(self):
        if self._sock is not None:
            self._loop.remove_reader(self._fd)
            self._loop.remove_reader(self._monitor_fd)
            # The monitor is stopped before its reader closes: libzmq sends its
            # events blocking, from the context's I/O thread, so an event for a
            # closed reader (the broker hanging up just now) would stall that
            # thread, and with it every later connection, for good.
            self._sock.disable_monitor()
            self._monitor.close(0)
            self._monitor = None
            self._sock.close(0)
            self._sock = None
        if self._send_retry is not None:
            self._send_retry.cancel()
            self._send_retry = None
        self._stream.disconnected()
        self._awaiting_welcome = False
        self._stats.connected = False
        self._wake.set()

    def _reconnect(self):
        """Drops the connection and tries the next broker after a backoff."""
        self._close_socket()
        self._stats.reconnects += 1
        self._broker_index = (self._broker_index + 1) % len(self.brokers)
        self._schedule_reconnect()

    def _schedule_reconnect(self):
        delay = self._backoff.next()
        self._reconnect_at = self._now + delay
        log.debug("reconnecting in %d ms broker=%s", delay * 1000, self._broker())

    def _send_hello(self):
        schemas = {t: s for t, s in self._schemas.items() if t in self.types}
        frame = _protocol.hello(self.name, self.types, self.capacity, self._stream.inflight(),
                                self._session, schemas)
        self._send(frame)
        self._hello_sent_at = self._now
        self._awaiting_welcome = True
        self._assigns_received = 0  # the broker numbers its assigns from each hello
        self._stats.hellos += 1

    def _send_heartbeat(self):
        if self._stopping or self._awaiting_welcome:
            # Nothing to reconcile: a stopping worker ignores new assigns and
            # leaves its jobs to lease expiry; before the welcome, hello said it.
            self._send(self._hb_frame)
        else:
            self._send(_protocol.heartbeat(self._stream.inflight(), self._assigns_received))
        self._last_send = self._last_report = self._now

    def _resend_all(self):
        self._stats.messages_resent += self._stream.reconnected()
        self._flush()

    def _send(self, frame):
        try:
            _raw_send(self._sock, frame, _NOBLOCK)
        except zmq.Again:
            return False  # the caller keeps the frame
        except zmq.ZMQError as e:
            log.warning("send failed error=%s", e)
            return False
        self._last_send = self._now
        self._stats.messages_sent += 1
        return True

    def _flush(self):
        """Hands queued frames to the socket until it is full."""
        self._flush_scheduled = False
        sock = self._sock
        if sock is None:
            return
        stream = self._stream
        sent = 0
        while True:
            frame = stream.next_frame()
            if frame is None:
                break
            try:
                _raw_send(sock, frame, _NOBLOCK)
            except zmq.Again:  # the socket's queue is full: the stream keeps the frame
                if self._send_retry is None:
                    self._send_retry = self._loop.call_later(_SEND_RETRY_S, self._retry_send)
                break
            except zmq.ZMQError as e:
                log.warning("send failed error=%s", e)
                break
            stream.sent()
            sent += 1
        if sent:
            self._last_send = self._now
            self._stats.messages_sent += sent
        # A send can consume the socket's readiness edge: look for input now.
        if _raw_get(sock, _EVENTS) & _POLLIN:
            self._loop.call_soon(self._on_socket)

    def _retry_send(self):
        self._send_retry = None
        self._flush()

    def _push(self, job, wseq, frame, kind):
        """A numbered message into the stream, sent when the loop next runs
        (with whatever else was emitted meanwhile)."""
        self._stats.events_emitted += 1
        if not self._stream.push(job._stream, wseq, frame, kind):
            self._outbox.release(len(frame))
            return
        self._stats.unacked_messages += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _pump_outbox(self):
        for job, wseq, frame, kind in self._outbox.take():
            self._push(job, wseq, frame, kind)

    def _on_socket(self):
        sock = self._sock
        if sock is None:
            return
        for _ in range(_MAX_RECEIVES_PER_WAKE):
            if self._sock is not sock:
                return
            try:
                frame = sock.recv(_NOBLOCK)
                # One frame per message; tolerate an envelope by using the last part.
                while _raw_get(sock, _RCVMORE):
                    frame = sock.recv(_NOBLOCK)
            except zmq.Again:
                break
            self._now = self._last_receive = time.monotonic()
            try:
                self._on_frame(frame)
            except Exception:  # a bug here must not stop the worker reading its socket
                self._stats.bad_messages += 1
                log.exception("cannot handle a broker message")
        else:
            self._loop.call_soon(self._on_socket)  # more to read: let the handlers run first
        if self._sock is sock:
            self._flush()

    def _on_monitor(self):
        monitor = self._monitor
        while monitor is not None and self._monitor is monitor:
            try:
                event = recv_monitor_message(monitor, _NOBLOCK)["event"]
            except zmq.Again:
                return
            self._now = time.monotonic()
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._on_handshake_done()
            elif event == zmq.EVENT_DISCONNECTED and self._handshake_done:
                self._on_connection_closed()

    def _on_connection_closed(self):
        """The broker's end closed an established connection: its process is
        gone (or restarting). Another broker of the list takes over at once; a
        closed connection to the one broker is ZeroMQ's to reconnect."""
        self._handshake_done = False
        self._stats.connected = False
        if len(self.brokers) > 1:
            log.warning("broker closed the connection; failing over broker=%s inflight=%d",
                        self._broker(), len(self._stream.attempts))
            self._reconnect()
            return
        log.warning("broker closed the connection; waiting for it broker=%s inflight=%d",
                    self._broker(), len(self._stream.attempts))
        self._stream.disconnected()  # nothing queued for a broker that will not know us
        self._connection_lost = True

    def _on_handshake_done(self):
        self._handshake_done = True
        if not self._connection_lost:
            return  # the socket's first connection: hello is on its way
        self._connection_lost = False
        log.info("broker is back; saying hello broker=%s inflight=%d", self._broker(),
                 len(self._stream.attempts))
        self._last_receive = self._now
        self._send_hello()
        self._resend_all()

    # ------------------------------------------------------------ broker messages

    def _on_frame(self, frame):
        try:
            m = _protocol.decode(frame)
        except _protocol.ProtocolError as e:
            self._on_undecodable(e)
            return
        t = m["t"]
        if t == "ack":
            self._on_ack(m)
        elif t == "assign":
            self._on_assign(m)
        elif t == "cancel":
            job = self._jobs.get(m["job"])
            if job is not None and not job._closed:
                log.info("cancel requested job=%s attempt=%d", job.id, job.attempt)
                job._cancel_requested = True
                job._request_cancel()
        elif t == "welcome":
            self._on_welcome(m)
        elif t == "reject":
            self._on_reject(m)
        # heartbeat: its arrival is all it says

    def _on_undecodable(self, error):
        """A frame the decoder refused. An assign among them still ends its
        attempt: answered with a fail (not retryable: every worker decodes
        alike) instead of dropped, which would leave the job leased to us."""
        self._stats.bad_messages += 1
        if error.is_assign:
            self._assigns_received += 1
        answer = error.assign is not None and not self._stopping
        if answer or self._now - self._bad_logged_at >= _BAD_LOG_INTERVAL_S:
            if not answer:
                self._bad_logged_at = self._now
            log.warning("undecodable broker message assign=%s error=%s total=%d",
                        error.assign, error, self._stats.bad_messages)
        if not answer:
            return
        job_id, attempt = error.assign
        held = self._stream.find(job_id)
        if held is not None:
            if held.attempt == attempt:
                return  # answered (or held) already
            self._drop_job(job_id, held.attempt, "reassigned")
        stream = self._stream.open(job_id, attempt)
        frame = _protocol.fail(job_id, attempt, 1, f"worker {self.name} cannot decode the "
                               f"assign: {error}", False)
        stream.next_wseq = 2
        self._outbox.reserve(len(frame))
        self._stats.jobs_assigned += 1
        self._stats.jobs_failed += 1
        self._stats.events_emitted += 1
        self._stream.push(stream, 1, frame, TERMINAL)
        self._stats.unacked_messages += 1
        self._flush()

    def _on_welcome(self, m):
        self._heartbeat = min(max(m["heartbeat_ms"], 10), 60000) / 1000.0
        if m["session"]:
            self._session = m["session"]
        self._stream.batch_chunks = _protocol.FEATURE_CHUNKS in m["features"]
        self._awaiting_welcome = False
        self._backoff.reset()
        self._stats.connected = True
        if not self._welcomed_once:
            log.info("connected broker=%s heartbeat_ms=%d", self._broker(),
                     self._heartbeat * 1000)
            self._welcomed_once = True
        else:
            log.info("reconnected broker=%s inflight=%d", self._broker(),
                     len(self._stream.attempts))
        self._wake.set()

    def _on_assign(self, m):
        self._assigns_received += 1
        if self._stopping:
            log.debug("ignoring assign while stopping job=%s", m["job"])
            return  # the broker re-queues it when our lease lapses
        job_id, attempt = m["job"], m["attempt"]
        held = self._stream.find(job_id)
        if held is not None:
            if held.attempt == attempt:
                return  # a repeated assign
            self._drop_job(job_id, held.attempt, "reassigned")
        fn = self._handlers.get(m["type"])
        stream = self._stream.open(job_id, attempt)
        is_async = fn is None or inspect.iscoroutinefunction(fn)
        job = (Job if is_async else SyncJob)(self._outbox, stream, m)
        self._jobs[job_id] = job
        self._stats.jobs_assigned += 1
        log.debug("assigned job=%s attempt=%d type=%r", job_id, attempt, m["type"])
        task = self._loop.create_task(self._execute(job, fn))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task):
        self._tasks.discard(task)
        if self._stopping:
            self._wake.set()  # a finishing stop waits for the last one

    def _on_ack(self, m):
        self._stats.acks_received += 1
        known, messages, freed, settled = self._stream.ack(m["job"], m["attempt"], m["wseq"])
        if not known:
            log.debug("ack for unknown job=%s attempt=%d", m["job"], m["attempt"])
            return
        self._stats.unacked_messages -= messages
        if freed:
            self._outbox.release(freed)
        if settled:
            self._jobs.pop(m["job"], None)
            if self._outbox.used == 0 and self._stopping:
                self._wake.set()

    def _on_reject(self, m):
        self._stats.rejects_received += 1
        job_id, reason = m["job"], m["reason"]
        if not job_id:
            if reason == "shutdown":
                # The broker stops gracefully and has acknowledged all it
                # committed: reconnect (with backoff) without waiting for silence.
                log.info("broker is shutting down; reconnecting broker=%s inflight=%d",
                         self._broker(), len(self._stream.attempts))
                self._reconnect()
            elif reason in ("identity", "invalid_hello"):
                # Our name is held by another worker (or by our previous
                # connection until its lease runs out), or the hello is refused.
                log.error("broker refused this worker's hello reason=%r detail=%r worker=%r",
                          reason, m["detail"], self.name)
                self._reconnect()
            elif reason == "hello":
                # The broker does not know this peer (it restarted). Rejects of
                # what we sent before our last hello are expected until its welcome.
                if (self._awaiting_welcome
                        and self._now - self._hello_sent_at < self._liveness_window()):
                    return
                log.info("broker does not know this worker; saying hello again broker=%s "
                         "inflight=%d", self._broker(), len(self._stream.attempts))
                self._stats.connected = False
                self._send_hello()
                self._resend_all()
            else:
                log.warning("broker rejected worker reason=%r detail=%r", reason, m["detail"])
            return
        held = self._stream.find(job_id)
        if held is None:
            return
        answer, again = self._stream.reject(job_id, m["attempt"], reason, self._now,
                                            self._liveness_window())
        if answer == NOT_OURS:
            log.debug("ignoring reject for another attempt job=%s attempt=%d ours=%d reason=%r",
                      job_id, m["attempt"], held.attempt, reason)
        elif answer == ALREADY_RESENDING:
            pass
        elif answer == DROP:
            self._drop_job(job_id, held.attempt, reason)
        else:
            log.debug("re-sending after gap job=%s attempt=%d", job_id, held.attempt)
            self._stats.messages_resent += again
            self._flush()

    def _close_job(self, job):
        """The job takes no more output, its blocked emits return, and its
        handler sees it cancelled."""
        job._closed = True
        self._outbox.wake_all()
        job._request_cancel()

    def _drop_job(self, job_id, attempt, reason):
        log.warning("job is no longer ours job=%s attempt=%d reason=%r", job_id, attempt, reason)
        job = self._jobs.pop(job_id, None)
        if job is not None:
            self._close_job(job)
        messages, freed = self._stream.drop(job_id)
        self._stats.unacked_messages -= messages
        self._outbox.release(freed)
        self._stats.jobs_abandoned += 1

    # ------------------------------------------------------------ running handlers

    async def _execute(self, job, fn):
        async with self._slots:
            if job._closed:
                return
            log.info("job started job=%s attempt=%d type=%r resume=%s", job.id, job.attempt,
                     job.type, job.checkpoint is not None)
            started = time.monotonic()
            self._stats.jobs_running += 1
            try:
                if fn is None:
                    outcome = JobFailed(f"no handler for job type {job.type!r} on worker "
                                        f"{self.name}", retryable=True)
                elif isinstance(job, SyncJob):
                    outcome = await self._loop.run_in_executor(self._executor, _call, fn, job)
                else:
                    outcome = await _await(fn, job)
            finally:
                self._stats.jobs_running -= 1
            elapsed_ms = (time.monotonic() - started) * 1000
            if job._closed:
                log.info("job abandoned job=%s attempt=%d ms=%d", job.id, job.attempt,
                         elapsed_ms)
                return
            await self._finish(job, outcome, elapsed_ms)

    async def _finish(self, job, outcome, elapsed_ms):
        """Sends the attempt's done or fail."""
        self._pump_outbox()  # a thread's last events go first
        wseq = job._stream.next_wseq
        frame = None
        if job._cancel_requested:
            outcome = JobFailed("cancelled")
            name = "cancelled"
        elif isinstance(outcome, JobFailed):
            name = "failed"
            log.info("job failed job=%s attempt=%d retryable=%s error=%r", job.id, job.attempt,
                     outcome.retryable, outcome.message)
        else:
            name = "succeeded"
            result = {} if outcome is None else outcome
            try:
                _protocol.check_json_object(result, "the handler's result")
                frame = _protocol.done(job.id, job.attempt, wseq, result)
                if len(frame) > _protocol.MAX_FRAME_BYTES:
                    frame = None
                    outcome = JobFailed("result is larger than the broker's frame limit")
            except (TypeError, ValueError) as e:
                outcome = JobFailed(str(e))
            if frame is None:
                name = "failed"
        if frame is None:
            frame = _protocol.fail(job.id, job.attempt, wseq, outcome.message, outcome.retryable)
        job._stream.next_wseq = wseq + 1
        if name == "succeeded":
            self._stats.jobs_succeeded += 1
        else:
            self._stats.jobs_failed += 1
        log.info("job finished job=%s attempt=%d outcome=%s ms=%d", job.id, job.attempt, name,
                 elapsed_ms)
        await self._outbox.submit_async(job, wseq, frame, TERMINAL)

    def _begin_stop(self):
        self._stopping = True
        log.info("stopping worker=%r running_jobs=%d on_stop=%s", self.name,
                 len(self._stream.attempts), self.on_stop)
        if self.on_stop == "finish" and self._tasks:
            self._finish_deadline = self._now + self.stop_timeout
        else:
            self._hand_back()

    def _hand_back(self):
        """Running jobs are left to the broker (lease expiry re-queues them
        from their last checkpoint); what they already emitted is still flushed."""
        for job in list(self._jobs.values()):
            if not job._stream.terminal_wseq:
                self._stats.jobs_abandoned += 1
            self._close_job(job)
        self._stop_deadline = self._now + self.shutdown_grace


def _outcome(error):
    """A handler's exception as the attempt's failure: JobFailed keeps its
    retryable flag; any other exception is retryable."""
    if isinstance(error, JobFailed):
        return error
    return JobFailed(f"{type(error).__name__}: {error}", retryable=True)


def _call(fn, job):
    try:
        return fn(job)
    except Exception as e:  # the handler's failure is the job's, not the worker's
        return _outcome(e)


async def _await(fn, job):
    try:
        return await fn(job)
    except Exception as e:  # the handler's failure is the job's, not the worker's
        return _outcome(e)
