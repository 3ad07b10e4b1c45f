// The SSE helper. The contract has no text/event-stream operation yet, so the parser is tested on strings
// and sse() on a tiny local server (node:http) that drops the connection to force a reconnect.
import assert from "node:assert/strict";
import http from "node:http";
import { test } from "node:test";

import { createWataomiClient, parseSSE, ProblemError, sse, SSEParser } from "../dist/index.js";

test("parseSSE: event, data, id, retry, comments and multi-line data", () => {
  const text = [
    ": a comment, ignored",
    "event: execution.started",
    "id: 1",
    'data: {"id":7}',
    "",
    "data: line one",
    "data:line two",
    "data",
    "",
    "id: 2",
    "retry: 1500",
    "event: done",
    "data: bye",
    "unknown: field",
    "",
    "id: 3",
    "", // an id alone dispatches nothing but moves lastEventId
    "data: cut off at the end",
  ].join("\n");
  assert.deepEqual(parseSSE(text), [
    { event: "execution.started", data: '{"id":7}', id: "1" },
    { event: "message", data: "line one\nline two\n", id: "1" },
    { event: "done", data: "bye", id: "2", retry: 1500 },
  ]);
});

test("SSEParser: CRLF, CR and LF line ends split anywhere across chunks; BOM; lastEventId", () => {
  const text = "\uFEFFid: a\r\ndata: x\r\n\r\nid: b\rdata: y\r\rid: c\ndata: z\n\n";
  const expected = [
    { event: "message", data: "x", id: "a" },
    { event: "message", data: "y", id: "b" },
    { event: "message", data: "z", id: "c" },
  ];
  for (let size = 1; size <= text.length; size++) {
    const events = [];
    const p = new SSEParser((e) => events.push(e));
    for (let i = 0; i < text.length; i += size) p.push(text.slice(i, i + size));
    p.end();
    assert.deepEqual(events, expected, `chunk size ${size}`);
    assert.equal(p.lastEventId, "c");
  }
  // An id with NUL is ignored; "data:" with nothing is an empty line of data.
  assert.deepEqual(parseSSE("id: ok\n\nid: bad\0\ndata:\n\n"), [{ event: "message", data: "", id: "ok" }]);
});

function startServer(handler) {
  return new Promise((resolve) => {
    const server = http.createServer(handler);
    server.listen(0, "127.0.0.1", () => resolve({ server, url: `http://127.0.0.1:${server.address().port}` }));
  });
}

test("sse(): reconnects with Last-Event-ID after the stream drops, stops on abort", async () => {
  const seen = [];
  const { server, url } = await startServer((req, res) => {
    seen.push({ lastEventId: req.headers["last-event-id"], accept: req.headers.accept, auth: req.headers.authorization });
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" });
    const from = Number(req.headers["last-event-id"] ?? 0);
    res.write("retry: 10\n\n");
    res.write(`id: ${from + 1}\nevent: tick\ndata: ${from + 1}\n\n`);
    res.end(`id: ${from + 2}\nevent: tick\ndata: ${from + 2}\n\n`); // the server drops the stream
  });
  try {
    const ac = new AbortController();
    const events = [];
    const errors = [];
    await sse(`${url}/stream`, {
      signal: ac.signal,
      retryMs: 5000, // overridden by the stream's retry: 10
      onError: (e) => errors.push(e),
      onEvent: (e) => {
        events.push(e);
        if (events.length === 6) ac.abort();
      },
    });
    assert.deepEqual(
      events.map((e) => [e.event, e.id, e.data]),
      [1, 2, 3, 4, 5, 6].map((n) => ["tick", String(n), String(n)]),
    );
    assert.deepEqual(
      seen.map((s) => s.lastEventId),
      [undefined, "2", "4"],
    );
    assert.equal(seen[0].accept, "text/event-stream");
    assert.equal(errors.length, 2, "one report per dropped stream");
  } finally {
    server.close();
  }
});

test("sse(): a 4xx rejects with a ProblemError; the client's sse() sends the token and refreshes on 401", async () => {
  let refreshes = 0;
  const { server, url } = await startServer((req, res) => {
    if (req.url === "/api/v1/casdoor/auth/refresh") {
      refreshes++;
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ access_token: "fresh", refresh_token: "wtr_next", token_type: "Bearer" }));
      return;
    }
    if (req.headers.authorization !== "Bearer fresh") {
      res.writeHead(401, { "Content-Type": "application/problem+json" });
      res.end(
        JSON.stringify({
          type: "urn:wataomi:problem:unauthenticated",
          title: "Unauthenticated",
          status: 401,
          detail: "The access token has expired.",
          instance: req.url,
          request_id: "r1",
        }),
      );
      return;
    }
    res.writeHead(200, { "Content-Type": "text/event-stream" });
    res.write("data: hello\n\n");
  });
  try {
    const err = await sse(`${url}/api/v1/events`, { onEvent: () => {} }).then(
      () => assert.fail("expected a rejection"),
      (e) => e,
    );
    assert.ok(err instanceof ProblemError);
    assert.equal(err.status, 401);
    assert.equal(err.slug, "unauthenticated");

    const tokens = [];
    const api = createWataomiClient({
      baseUrl: `${url}/api/v1`,
      getAccessToken: () => "stale",
      getRefreshToken: () => "wtr_first",
      onTokens: (t) => tokens.push(t.access_token),
    });
    const ac = new AbortController();
    const events = [];
    await api.sse("/events", {
      signal: ac.signal,
      onEvent: (e) => {
        events.push(e.data);
        ac.abort();
      },
    });
    assert.deepEqual(events, ["hello"]);
    assert.equal(refreshes, 1);
    assert.deepEqual(tokens, ["fresh"]);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});
