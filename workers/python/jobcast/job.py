"""What a handler sees: the job's params and last checkpoint, and the calls
that stream events (token, progress, log), save checkpoints and notice
cancellation. An async handler gets a Job (`await job.token(...)`); a plain
function gets a SyncJob, whose same methods block instead, and runs on one of
the worker's threads.

Every emit numbers its message (the attempt's next wseq), encodes it once and
hands it to the worker, which keeps it until the broker acknowledges it.
While the worker's unacknowledged bytes are over its bound an emit waits
(backpressure, not loss).
"""

import asyncio
import threading

from . import _protocol
from ._stream import CHUNK, MESSAGE


class JobFailed(Exception):
    """Raised by a handler: the attempt fails with this message. A retryable
    failure is tried again (from the last checkpoint) while attempts remain."""

    def __init__(self, message, retryable=False):
        super().__init__(message)
        self.message = str(message)
        self.retryable = bool(retryable)


def _fraction(value):
    value = float(value)
    if not value >= 0.0:  # also NaN
        return 0.0
    return min(value, 1.0)


def _checkpoint_bytes(data):
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"a checkpoint is bytes or str, not {type(data).__name__}")


class _JobBase:
    """The attempt's state, shared by Job and SyncJob; the worker's I/O side
    reads and sets the private fields."""

    # Emits between two yields to the event loop in an async handler that
    # never waits otherwise, so that acks and cancels are read meanwhile.
    _YIELD_EVERY = 64

    def __init__(self, outbox, stream, assign):
        self.id = assign["job"]
        self.type = assign["type"]
        self.attempt = assign["attempt"]
        self.params = assign["params"]
        self.checkpoint = assign["checkpoint"] or None
        self._outbox = outbox
        self._stream = stream  # numbers the attempt's messages (next_wseq)
        self._closed = False  # takes no more output (lease lost, worker stopping)
        self._cancel_requested = False  # the broker sent cancel
        self._cancelled = threading.Event()
        self._cancel_callbacks = []

    @property
    def cancelled(self):
        """True once the job was cancelled or is no longer this worker's (lease
        lost, worker stopping): return soon; later output may be dropped."""
        return self._cancelled.is_set()

    def on_cancel(self, callback):
        """Calls `callback()` once when the job is cancelled (right away if it
        is): e.g. to close an upstream connection a handler is blocked on. It
        runs on the worker's event loop thread and must not block."""
        if self._cancelled.is_set():
            callback()
        else:
            self._cancel_callbacks.append(callback)

    def _request_cancel(self):
        if self._cancelled.is_set():
            return
        self._cancelled.set()
        callbacks, self._cancel_callbacks = self._cancel_callbacks, []
        for callback in callbacks:
            callback()

    def _chunk(self, kind, data):
        """Numbers and encodes one event; returns (wseq, frame, CHUNK)."""
        wseq = self._stream.next_wseq
        frame = _protocol.chunk(self.id, self.attempt, wseq, kind, data)
        return self._numbered(wseq, frame, CHUNK)

    def _checkpoint(self, data):
        wseq = self._stream.next_wseq
        frame = _protocol.checkpoint(self.id, self.attempt, wseq, _checkpoint_bytes(data))
        return self._numbered(wseq, frame, MESSAGE)

    def _numbered(self, wseq, frame, kind):
        if len(frame) > _protocol.MAX_FRAME_BYTES:
            # The broker drops frames over its limit, so this one could never
            # be acknowledged: refuse it at the source.
            raise JobFailed(f"message of {len(frame)} bytes exceeds the broker's frame limit")
        self._stream.next_wseq = wseq + 1
        return wseq, frame, kind

    @staticmethod
    def _event(kind, data):
        if kind not in _protocol.EVENT_KINDS:
            raise ValueError("a worker emits only progress, token and log events")
        _protocol.check_json_object(data, "event data")
        return data

    @staticmethod
    def _progress(fraction, stage, message):
        data = {"fraction": _fraction(fraction)}
        if stage:
            data["stage"] = str(stage)
        if message:
            data["message"] = str(message)
        return data


class Job(_JobBase):
    """The job as an async handler sees it; every output call is awaited, one
    at a time (the attempt's messages are numbered in the order they are made)."""

    def __init__(self, outbox, stream, assign):
        super().__init__(outbox, stream, assign)
        self._emits = 0
        self._cancel_waiters = []

    async def token(self, text):
        """A `token` event {text}: a piece of streamed output."""
        if not isinstance(text, str):
            raise TypeError(f"a token is str, not {type(text).__name__}")
        if not self._closed:
            await self._submit(*self._chunk("token", {"text": text}))

    async def progress(self, fraction, stage=None, message=None):
        """A `progress` event {fraction (clamped to 0..1), stage?, message?}."""
        if not self._closed:
            await self._submit(*self._chunk("progress", self._progress(fraction, stage, message)))

    async def log(self, level, message):
        """A `log` event {level, message}."""
        if not self._closed:
            await self._submit(*self._chunk("log", {"level": str(level), "message": str(message)}))

    async def emit(self, kind, data):
        """Any event of kind progress, token or log with a caller-built dict."""
        data = self._event(kind, data)
        if not self._closed:
            await self._submit(*self._chunk(kind, data))

    async def save_checkpoint(self, data):
        """Stored by the broker; the next attempt of this job starts with it."""
        if not self._closed:
            await self._submit(*self._checkpoint(data))

    async def wait_cancelled(self, timeout=None):
        """Sleeps `timeout` seconds (None: forever) or until cancelled; returns cancelled."""
        if self.cancelled:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._cancel_waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            if waiter in self._cancel_waiters:
                self._cancel_waiters.remove(waiter)
        return self.cancelled

    def _request_cancel(self):
        super()._request_cancel()
        waiters, self._cancel_waiters = self._cancel_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _submit(self, wseq, frame, kind):
        await self._outbox.submit_async(self, wseq, frame, kind)
        self._emits += 1
        if self._emits % self._YIELD_EVERY == 0:
            await asyncio.sleep(0)


class SyncJob(_JobBase):
    """The job as a plain (thread-run) handler sees it; output calls block."""

    def token(self, text):
        """A `token` event {text}: a piece of streamed output."""
        if not isinstance(text, str):
            raise TypeError(f"a token is str, not {type(text).__name__}")
        if not self._closed:
            self._outbox.submit_threadsafe(self, *self._chunk("token", {"text": text}))

    def progress(self, fraction, stage=None, message=None):
        """A `progress` event {fraction (clamped to 0..1), stage?, message?}."""
        if not self._closed:
            self._outbox.submit_threadsafe(
                self, *self._chunk("progress", self._progress(fraction, stage, message)))

    def log(self, level, message):
        """A `log` event {level, message}."""
        if not self._closed:
            self._outbox.submit_threadsafe(
                self, *self._chunk("log", {"level": str(level), "message": str(message)}))

    def emit(self, kind, data):
        """Any event of kind progress, token or log with a caller-built dict."""
        data = self._event(kind, data)
        if not self._closed:
            self._outbox.submit_threadsafe(self, *self._chunk(kind, data))

    def save_checkpoint(self, data):
        """Stored by the broker; the next attempt of this job starts with it."""
        if not self._closed:
            self._outbox.submit_threadsafe(self, *self._checkpoint(data))

    def wait_cancelled(self, timeout=None):
        """Sleeps `timeout` seconds (None: forever) or until cancelled; returns cancelled."""
        return self._cancelled.wait(timeout)
