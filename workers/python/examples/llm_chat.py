"""`llm.chat`: streams a chat completion from any OpenAI-compatible endpoint
(vLLM, llama.cpp server, Ollama, OpenAI) as token events.

    JOBCAST_OPENAI_BASE_URL=http://127.0.0.1:8000 JOBCAST_OPENAI_MODEL=my-model \\
        python3 llm_chat.py [--broker tcp://127.0.0.1:5555] [--capacity 4] [--name NAME]

Params: {"messages": [{"role": "user", "content": "..."}], "model"?, "max_tokens"?,
"temperature"?}; result {"text", "tokens"}. JOBCAST_OPENAI_API_KEY, when set,
is sent as the bearer token. A cancelled job closes the upstream request at
once. Network errors, 429 and 5xx fail the attempt as retryable (a retry
generates again from the start); other errors are not retryable.
"""
import argparse
import asyncio
import json
import logging
import os
import sys
from urllib.parse import urlsplit

from jobcast import JobFailed, Worker

BASE_URL = os.environ.get("JOBCAST_OPENAI_BASE_URL", "https://api.openai.com")
MODEL = os.environ.get("JOBCAST_OPENAI_MODEL", "gpt-4o-mini")
API_KEY = os.environ.get("JOBCAST_OPENAI_API_KEY", "")


def endpoint(base_url):
    """(host, port, tls, target): base path + /v1/chat/completions, or
    + /chat/completions when the base already ends in /v1."""
    url = urlsplit(base_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise JobFailed(f"JOBCAST_OPENAI_BASE_URL is not an http(s) URL: {base_url!r}")
    tls = url.scheme == "https"
    path = url.path.rstrip("/")
    target = path + ("/chat/completions" if path.endswith("/v1") else "/v1/chat/completions")
    return url.hostname, url.port or (443 if tls else 80), tls, target


async def body_lines(reader, headers):
    """The response body's lines, decoding chunked transfer encoding."""
    if headers.get("transfer-encoding", "").lower() != "chunked":
        while line := await reader.readline():
            yield line
        return
    pending = b""
    while True:
        size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        pending += await reader.readexactly(size)
        await reader.readline()  # the CRLF after each chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line + b"\n"
    if pending:
        yield pending


async def chat(job):
    p = job.params
    messages = p.get("messages")
    if not isinstance(messages, list) or not messages:
        raise JobFailed('param "messages" must be a non-empty array of {role, content}')
    request = {"model": p.get("model", MODEL), "messages": messages, "stream": True}
    for key in ("max_tokens", "temperature"):
        if key in p:
            request[key] = p[key]
    host, port, tls, target = endpoint(BASE_URL)
    body = json.dumps(request).encode()
    head = [f"POST {target} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
            "Accept: text/event-stream", f"Content-Length: {len(body)}", "Connection: close"]
    if API_KEY:
        head.append(f"Authorization: Bearer {API_KEY}")
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=tls or None)
    except OSError as e:
        raise JobFailed(f"cannot reach {host}:{port}: {e}", retryable=True) from None
    job.on_cancel(writer.transport.abort)  # cancel closes the upstream request now
    pieces = []
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await reader.readline()
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if job.cancelled:
            return {"text": "", "tokens": 0}
        parts = status_line.split(None, 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status != 200:
            text = b"".join([line async for line in body_lines(reader, headers)])
            try:
                message = json.loads(text)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = text.decode("utf-8", "replace")[:200]
            raise JobFailed(f"upstream answered {status}: {message}",
                            retryable=status == 429 or status >= 500 or status == 0)
        async for line in body_lines(reader, headers):
            if job.cancelled:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            choices = json.loads(data).get("choices") or [{}]
            piece = (choices[0].get("delta") or {}).get("content")
            if piece:
                pieces.append(piece)
                await job.token(piece)
    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
        if job.cancelled:
            return {"text": "".join(pieces), "tokens": len(pieces)}
        raise JobFailed(f"upstream stream broke: {e}", retryable=True) from None
    finally:
        writer.transport.abort()
    return {"text": "".join(pieces), "tokens": len(pieces)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default=os.environ.get("JOBCAST_BROKER",
                                                           "tcp://127.0.0.1:5555"),
                        help="endpoints, comma-separated [JOBCAST_BROKER]")
    parser.add_argument("--capacity", type=int, default=4)
    parser.add_argument("--name")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    w = Worker(brokers=args.broker.split(","), types=["llm.chat"], capacity=args.capacity,
               name=args.name)
    w.handle("llm.chat", chat)
    w.run()


if __name__ == "__main__":
    main()
