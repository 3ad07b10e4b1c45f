// Live tests of @wataomi/api-client (the built gen/ts/dist) against a running server. Run through
// gen/ts/test/run.sh, which starts the server and sets WATAOMI_URL (the server origin), WATAOMI_TOKEN and
// WATAOMI_REFRESH (a manager's session: flow create, update and delete) and WATAOMI_VIEWER_TOKEN. The
// tests run in order: the refresh tests spend the session's refresh tokens one after the other.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  createWataomiClient,
  idempotencyHeaders,
  idempotencyKey,
  ProblemError,
  unwrap,
} from "../dist/index.js";

const live = Boolean(process.env.WATAOMI_URL);
const skip = live ? false : "WATAOMI_URL is not set: run gen/ts/test/run.sh";
const baseUrl = `${process.env.WATAOMI_URL}/api/v1`;
const TOKEN = process.env.WATAOMI_TOKEN ?? "";
const REFRESH = process.env.WATAOMI_REFRESH ?? "";
const VIEWER = process.env.WATAOMI_VIEWER_TOKEN ?? "";

/** A fetch that records "METHOD /path" of every request it sends. */
function recordingFetch() {
  const calls = [];
  const fetchFn = (request) => {
    calls.push(`${request.method} ${new URL(request.url).pathname}`);
    return globalThis.fetch(request);
  };
  return { calls, fetch: fetchFn, refreshes: () => calls.filter((c) => c.endsWith("/casdoor/auth/refresh")).length };
}

const unique = (prefix) => `${prefix} ${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

async function rejectsWithProblem(promiseOrFn) {
  try {
    await (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn);
  } catch (err) {
    assert.ok(err instanceof ProblemError, `expected a ProblemError, got ${err}`);
    return err;
  }
  assert.fail("expected a ProblemError, but the call succeeded");
}

test("flows: create, get, list, update and delete through the typed client", { skip }, async () => {
  const { calls, fetch } = recordingFetch();
  const api = createWataomiClient({ baseUrl, getAccessToken: () => TOKEN, fetch });
  const name = unique("ts client flow");

  const created = await api.POST("/flows", {
    body: { name, description: "made by the TypeScript client tests" },
    headers: idempotencyHeaders(),
  });
  assert.equal(created.response.status, 201);
  const flow = unwrap(created);
  assert.equal(flow.name, name);
  assert.equal(flow.status, "draft");
  assert.equal(flow.visibility, "private");
  assert.deepEqual(flow.data, { nodes: [], edges: [] });
  assert.equal(created.response.headers.get("Location"), `/api/v1/flows/${flow.id}`);

  const got = await api.GET("/flows/{id}", { params: { path: { id: flow.id } } });
  assert.equal(unwrap(got).id, flow.id);
  const etag = got.response.headers.get("ETag");
  assert.match(etag ?? "", /^"r\d+"$/);

  // Repeatable filters are exploded (status=draft&status=published), sort is comma-separated.
  const page = unwrap(
    await api.GET("/flows", {
      params: { query: { search: name, status: ["draft", "published"], sort: ["-created_at", "name"], page_size: 10 } },
    }),
  );
  assert.equal(page.total, 1);
  assert.deepEqual(
    page.items.map((f) => f.id),
    [flow.id],
  );

  const updated = unwrap(
    await api.PATCH("/flows/{id}", {
      params: { path: { id: flow.id }, header: { "If-Match": etag } },
      body: { name: `${name} v2`, description: null },
    }),
  );
  assert.equal(updated.name, `${name} v2`);
  assert.equal(updated.description, null);
  assert.equal(updated.revision, flow.revision + 1);

  // A stale If-Match is a typed 412.
  const stale = await rejectsWithProblem(async () =>
    unwrap(await api.PUT("/flows/{id}", { params: { path: { id: flow.id }, header: { "If-Match": etag } }, body: { name } })),
  );
  assert.equal(stale.status, 412);
  assert.equal(stale.slug, "precondition-failed");

  const deleted = await api.DELETE("/flows/{id}", { params: { path: { id: flow.id } } });
  assert.equal(deleted.response.status, 204);
  assert.equal(unwrap(deleted), undefined);

  const gone = await rejectsWithProblem(async () => unwrap(await api.GET("/flows/{id}", { params: { path: { id: flow.id } } })));
  assert.equal(gone.status, 404);
  assert.equal(gone.type, "urn:wataomi:problem:not-found");

  assert.ok(calls.every((c) => !c.endsWith("/refresh")), "a valid token needs no refresh");
});

test("executions: run a flow, wait for it, and read its event stream with sse()", { skip }, async () => {
  const api = createWataomiClient({ baseUrl, getAccessToken: () => TOKEN });
  const graph = {
    nodes: [
      { id: "t1", type: "custom", position: { x: 0, y: 0 }, data: { type: "trigger-manual", config: {} } },
      { id: "r1", type: "custom", position: { x: 1, y: 0 }, data: { type: "response-data", config: { body: { hello: "{{input.who}}" } } } },
    ],
    edges: [{ id: "e1", source: "t1", target: "r1" }],
  };
  const flow = unwrap(await api.POST("/flows", { body: { name: unique("ts run"), data: graph } }));
  const created = await api.POST("/executions", {
    params: { query: { wait_ms: 10000 } },
    body: { flow_id: flow.id, input_data: { who: "ts" } },
  });
  assert.equal(created.response.status, 201);
  const run = unwrap(created);
  assert.equal(run.status, "completed");
  assert.deepEqual(run.output_data.body, { hello: "ts" });
  assert.deepEqual(run.node_executions.map((n) => n.node_id), ["t1", "r1"]);

  const events = [];
  const ctrl = new AbortController();
  await api.sse(`/executions/${run.id}/events`, {
    signal: ctrl.signal,
    maxRetries: 1,
    onEvent: (e) => {
      events.push(e);
      if (e.event === "execution.completed") ctrl.abort();
    },
  });
  assert.deepEqual(
    events.map((e) => e.event),
    ["execution.created", "execution.started", "node.started", "node.completed", "node.started", "node.completed", "execution.completed"],
  );
  assert.deepEqual(events.map((e) => Number(e.id)), [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(JSON.parse(events.at(-1).data).status, "completed");
  await api.DELETE("/flows/{id}", { params: { path: { id: flow.id } } });
});

test("a validation error is a ProblemError with the field's pointer", { skip }, async () => {
  const api = createWataomiClient({ baseUrl, getAccessToken: () => TOKEN });
  const result = await api.POST("/flows", { body: { name: "" } });
  assert.equal(result.response.status, 400);
  assert.equal(result.error?.type, "urn:wataomi:problem:validation-error"); // the typed `error` of openapi-fetch

  const err = await rejectsWithProblem(() => unwrap(result));
  assert.equal(err.name, "ProblemError");
  assert.equal(err.status, 400);
  assert.equal(err.slug, "validation-error");
  assert.equal(err.title, "Validation error");
  assert.equal(err.errors[0]?.pointer, "/name");
  assert.equal(err.errors[0]?.code, "minLength");
  assert.ok(err.detail.length > 0);
  assert.equal(err.instance, "/api/v1/flows");
  assert.ok(err.request_id, "request_id is set");
  assert.equal(err.request_id, result.response.headers.get("X-Request-ID"));
  assert.match(err.message, /^400 Validation error: /);

  // With throwOnError, the methods themselves reject; an unknown member is pointed at too.
  const strict = createWataomiClient({ baseUrl, getAccessToken: () => TOKEN, throwOnError: true });
  const err2 = await rejectsWithProblem(strict.POST("/flows", { body: { name: "ok", colour: "red" } }));
  assert.equal(err2.status, 400);
  assert.deepEqual(
    err2.errors.map((e) => [e.pointer, e.code]),
    [["/colour", "additionalProperties"]],
  );
  const err3 = await rejectsWithProblem(strict.GET("/flows", { params: { query: { page_size: 1000 } } }));
  assert.equal(err3.errors[0]?.pointer, "#/query/page_size");
});

test("a 403 names the missing permission", { skip }, async () => {
  const api = createWataomiClient({ baseUrl, getAccessToken: () => VIEWER, throwOnError: true });
  const page = await api.GET("/flows"); // a viewer may list
  assert.equal(page.response.status, 200);
  const err = await rejectsWithProblem(api.POST("/flows", { body: { name: unique("viewer flow") } }));
  assert.equal(err.status, 403);
  assert.equal(err.slug, "forbidden");
  assert.equal(err.missing_permission, "flow:create");
});

test("a 401 without a refresh token is final", { skip }, async () => {
  const { calls, fetch } = recordingFetch();
  const api = createWataomiClient({ baseUrl, getAccessToken: () => "expired", fetch });
  const err = await rejectsWithProblem(async () => unwrap(await api.GET("/flows")));
  assert.equal(err.status, 401);
  assert.equal(err.slug, "unauthenticated");
  assert.match(err.response?.headers.get("WWW-Authenticate") ?? "", /^Bearer /);
  assert.deepEqual(calls, ["GET /api/v1/flows"]);
});

// The session's tokens as the refresh tests rotate them.
const session = { access: "expired", refresh: REFRESH, spent: [] };

test("refresh on 401: one refresh, onTokens, and the request retried once", { skip }, async () => {
  const { calls, fetch, refreshes } = recordingFetch();
  const received = [];
  const api = createWataomiClient({
    baseUrl,
    fetch,
    getAccessToken: () => session.access,
    getRefreshToken: () => session.refresh,
    onTokens: (t) => {
      received.push(t);
      session.spent.push(session.refresh);
      session.access = t.access_token;
      session.refresh = t.refresh_token;
    },
  });
  const page = unwrap(await api.GET("/flows", { params: { query: { page_size: 1 } } }));
  assert.equal(typeof page.total, "number");
  assert.deepEqual(calls, ["GET /api/v1/flows", "POST /api/v1/casdoor/auth/refresh", "GET /api/v1/flows"]);
  assert.equal(refreshes(), 1);
  assert.equal(received.length, 1);
  const [t] = received;
  assert.ok(t.access_token && t.access_token !== "expired");
  assert.match(t.refresh_token, /^wtr_/);
  assert.notEqual(t.refresh_token, REFRESH, "the refresh token rotates");
  assert.equal(t.token_type, "Bearer");
  assert.equal(t.user.email, "manager@example.com");

  // The new token is used from now on: no more refreshes.
  unwrap(await api.GET("/flows"));
  assert.equal(refreshes(), 1);
  assert.equal(calls.length, 4);
});

test("concurrent 401s share one refresh (single flight), bodies are resent", { skip }, async () => {
  session.access = "expired"; // as if the access token had expired; session.refresh is the rotated one
  const { fetch, refreshes, calls } = recordingFetch();
  let tokensCalls = 0;
  const api = createWataomiClient({
    baseUrl,
    fetch,
    getAccessToken: () => session.access,
    getRefreshToken: () => session.refresh,
    onTokens: (t) => {
      tokensCalls++;
      session.spent.push(session.refresh);
      session.access = t.access_token;
      session.refresh = t.refresh_token;
    },
  });
  const name = unique("concurrent flow");
  const [a, b, created] = await Promise.all([
    api.GET("/flows"),
    api.GET("/flows", { params: { query: { page: 2 } } }),
    api.POST("/flows", { body: { name }, headers: idempotencyHeaders() }),
  ]);
  assert.equal(a.response.status, 200);
  assert.equal(b.response.status, 200);
  assert.equal(created.response.status, 201, JSON.stringify(created.error));
  assert.equal(unwrap(created).name, name);
  assert.equal(refreshes(), 1, `exactly one refresh: ${calls.join(", ")}`);
  assert.equal(tokensCalls, 1);
  assert.equal(calls.filter((c) => c === "POST /api/v1/flows").length, 2, "the POST was sent, refused, and resent");
  unwrap(await api.DELETE("/flows/{id}", { params: { path: { id: unwrap(created).id } } }));
});

test("a getter that never sees the new tokens still works after one refresh", { skip }, async () => {
  // getAccessToken keeps answering the superseded token and there is no onTokens: the client uses the
  // pair it refreshed to, instead of refreshing on every call.
  const refresh = session.refresh;
  session.spent.push(refresh);
  const { fetch, refreshes } = recordingFetch();
  const api = createWataomiClient({ baseUrl, fetch, getAccessToken: () => "expired", getRefreshToken: () => refresh });
  unwrap(await api.GET("/flows"));
  unwrap(await api.GET("/flows"));
  await Promise.all([api.GET("/flows"), api.GET("/casdoor/auth/me")]);
  assert.equal(refreshes(), 1);
});

test("a refused refresh keeps the 401 and reports it", { skip }, async () => {
  // The first refresh token was spent by the tests above: the server refuses it (reuse).
  const failures = [];
  const { fetch, refreshes } = recordingFetch();
  const api = createWataomiClient({
    baseUrl,
    fetch,
    getAccessToken: () => "expired",
    getRefreshToken: () => REFRESH,
    onTokens: () => assert.fail("no tokens expected"),
    onRefreshFailed: (e) => failures.push(e),
  });
  const err = await rejectsWithProblem(async () => unwrap(await api.GET("/flows")));
  assert.equal(err.status, 401);
  assert.equal(refreshes(), 1);
  assert.equal(failures.length, 1);
  assert.ok(failures[0] instanceof ProblemError);
  assert.equal(failures[0].status, 401);
  assert.match(failures[0].slug, /^(unauthenticated|refresh-superseded)$/);
});

test("idempotencyKey gives distinct keys within the header's pattern", () => {
  const keys = new Set(Array.from({ length: 100 }, () => idempotencyKey()));
  assert.equal(keys.size, 100);
  for (const k of keys) assert.match(k, /^[\x21-\x7E]{1,255}$/);
  const key = idempotencyKey();
  assert.deepEqual(idempotencyHeaders(key), { "Idempotency-Key": key });
});
