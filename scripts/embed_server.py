"""A small OpenAI-compatible embeddings server for Cairn's tests (started by scripts/embed-server).

POST /v1/embeddings embeds with model2vec from a local model directory (potion-base-8M, the
model Cairn has built in, so both produce the same vectors). The request's `model` picks a
behaviour, so that one server can play every kind of endpoint a test needs:

  potion-base-8M[...]    normal (any name starting so; a unique suffix keeps counts apart)
  reversed[-key]         normal vectors, listed in reverse order (clients must sort by index)
  slow-<ms>[-key]        sleeps <ms> milliseconds, then answers normally
  fail-<n>-<key>         503 for the first <n> requests with that exact name, then normal
  limit-<n>-<key>        429 with `Retry-After: 1` for the first <n> requests, then normal
  broken[-key]           always 500
  bad-dim[-key]          vectors one element short

GET /stats (or /v1/stats) answers {"requests": {model: n}, "texts": {model: n}} for the
requests that passed authentication. GET /health answers {"status": "ok", "auth": bool}.
With EMBED_SERVER_API_KEY set, /v1/embeddings needs `Authorization: Bearer <that key>`.
"""

import argparse
import base64
import hmac
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 << 20
MAX_INPUTS = 4096


class State:
    def __init__(self, model, api_key):
        self.model = model
        self.api_key = api_key
        self.lock = threading.Lock()
        # Whether the tokenizer may be shared by threads is not documented; encoding is fast.
        self.encode_lock = threading.Lock()
        self.requests = {}
        self.texts = {}

    def count(self, name, texts):
        """Counts one request and returns how many this name has had, this one included."""
        with self.lock:
            self.requests[name] = self.requests.get(name, 0) + 1
            self.texts[name] = self.texts.get(name, 0) + texts
            return self.requests[name]

    def stats(self):
        with self.lock:
            return {"requests": dict(self.requests), "texts": dict(self.texts)}

    def encode(self, texts):
        with self.encode_lock:
            return self.model.encode(texts, max_length=512)


def error(status, message, kind="invalid_request_error"):
    return status, {"error": {"message": message, "type": kind, "code": None}}, {}


class Handler(BaseHTTPRequestHandler):
    server_version = "cairn-embed-server/1"
    protocol_version = "HTTP/1.1"
    state = None  # set in main

    def log_message(self, fmt, *args):
        sys.stderr.write("embed-server: %s %s\n" % (self.address_string(), fmt % args))

    def send_json(self, status, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path in ("/health", "/v1/health"):
            self.send_json(200, {"status": "ok", "auth": self.state.api_key is not None})
        elif self.path in ("/stats", "/v1/stats"):
            self.send_json(200, self.state.stats())
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": "potion-base-8M", "object": "model"}]})
        else:
            self.send_json(*error(404, "no such path"))

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self.send_json(*error(413, "request body too large"))
            return
        raw = self.rfile.read(length)
        if self.path != "/v1/embeddings":
            self.send_json(*error(404, "no such path"))
            return
        status, body, headers = self.embeddings(raw)
        self.send_json(status, body, headers)

    def authorised(self):
        key = self.state.api_key
        if key is None:
            return True
        given = self.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), ("Bearer " + key).encode())

    def embeddings(self, raw):
        if not self.authorised():
            return error(401, "missing or wrong API key", "authentication_error")
        try:
            req = json.loads(raw)
        except ValueError:
            return error(400, "the body is not JSON")
        if not isinstance(req, dict):
            return error(400, "the body must be a JSON object")
        name, texts = req.get("model"), req.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(name, str) or not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return error(400, "`model` must be a string and `input` a string or a list of strings")
        if not texts or len(texts) > MAX_INPUTS:
            return error(400, "`input` must hold 1 to %d texts" % MAX_INPUTS)
        fmt = req.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            return error(400, "`encoding_format` must be float or base64")
        seen = self.state.count(name, len(texts))

        bad_dim = reverse = False
        if name.startswith("potion-base-8M"):
            pass
        elif name == "reversed" or name.startswith("reversed-"):
            reverse = True
        elif name == "broken" or name.startswith("broken-"):
            return error(500, "this model is always broken", "server_error")
        elif name == "bad-dim" or name.startswith("bad-dim-"):
            bad_dim = True
        elif m := re.fullmatch(r"slow-(\d+)(-.+)?", name):
            time.sleep(int(m.group(1)) / 1000)
        elif m := re.fullmatch(r"fail-(\d+)-.+", name):
            if seen <= int(m.group(1)):
                return error(503, "injected failure %d of %s" % (seen, m.group(1)), "server_error")
        elif m := re.fullmatch(r"limit-(\d+)-.+", name):
            if seen <= int(m.group(1)):
                status, body, _ = error(429, "injected rate limit", "rate_limit_error")
                return status, body, {"Retry-After": "1"}
        else:
            return error(404, "the model %r does not exist" % name, "invalid_request_error")

        vectors = self.state.encode(texts)
        if bad_dim:
            vectors = vectors[:, :-1]
        data = []
        for i, v in enumerate(vectors):
            if fmt == "base64":
                emb = base64.b64encode(v.astype("<f4").tobytes()).decode()
            else:
                emb = [float(x) for x in v]
            data.append({"object": "embedding", "index": i, "embedding": emb})
        if reverse:
            data.reverse()
        tokens = sum(len(t.split()) for t in texts)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return 200, {"object": "list", "data": data, "model": name, "usage": usage}, {}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--url-file", help="written (atomically) with the base URL once listening")
    ap.add_argument("--pid-file")
    args = ap.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory; never reach for a hub
    from model2vec import StaticModel  # imported late so that --help works without the venv

    model = StaticModel.from_pretrained(args.model_dir)
    Handler.state = State(model, os.environ.get("EMBED_SERVER_API_KEY") or None)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    url = "http://%s:%d/v1" % (args.host, server.server_address[1])
    for path, text in ((args.pid_file, str(os.getpid())), (args.url_file, url)):
        if path:
            with open(path + ".tmp", "w") as f:
                f.write(text + "\n")
            os.replace(path + ".tmp", path)
    sys.stderr.write("embed-server: listening on %s\n" % url)
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
