"""Shared pieces of the answering tests: a small corpus with a lexical retriever, and a local HTTP server that
speaks the OpenAI chat-completions API."""

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mlplatform.core.rag.generation import support
from mlplatform.core.rag.types import Chunk, Hit

CORPUS = [
    Chunk("promo-1", "Version 2 was not promoted because: FAIL beats_champion: f1 0.3102 vs champion 0.3465. "
          "The champion stayed version 1.", "run_promotion_decisions.md", 0, section="Version 2"),
    Chunk("drift-10", "In 2025-10 the features that drifted were customer_days_since_login (PSI 0.594, critical), "
          "customer_login_30d_count (PSI 0.423, critical).", "run_drift_by_month.md", 3, section="2025-10"),
    Chunk("drift-11", "In 2025-11 no feature drifted.", "run_drift_by_month.md", 4, section="2025-11"),
    Chunk("guide-3", "Rows that break the contract go to the quarantine table with their reasons. Nothing is "
          "dropped silently.", "run_data_quality.md", 1, page=3, section="Contracts"),
]


def lexical_retriever(chunks: list[Chunk], k: int = 3) -> Callable[[str], list[Hit]]:
    """Chunks ranked by :func:`support` of the question (a stand-in for the retrieval stage)."""

    def retrieve(question: str) -> list[Hit]:
        ranked = sorted(chunks, key=lambda c: -support(question, c.text))[:k]
        return [Hit(c, support(question, c.text), rank, "lexical") for rank, c in enumerate(ranked, 1)]
    return retrieve


class ChatServer:
    """Requests received and the reply to give (``reply(request_body) -> (status, body)``)."""

    def __init__(self, reply: Callable[[dict], tuple[int, dict | str]]) -> None:
        self.reply, self.requests = reply, []  # type: list[dict]


@contextmanager
def chat_server(reply: Callable[[dict], tuple[int, dict | str]]) -> Iterator[tuple[str, ChatServer]]:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 (a free port) for the block; yields its base URL
    and the record of requests (body and Authorization header)."""
    state = ChatServer(reply)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append({"path": self.path, "body": body,
                                   "authorization": self.headers.get("Authorization")})
            if self.path != "/v1/chat/completions":
                status, payload = 404, {"error": "not found"}
            else:
                status, payload = state.reply(body)
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", state
    finally:
        server.shutdown()
        server.server_close()


def completion(text: str, prompt_tokens: int = 120, completion_tokens: int = 30) -> tuple[int, dict]:
    return 200, {"id": "chatcmpl-1", "object": "chat.completion", "model": "local",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens}}
