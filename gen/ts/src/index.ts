// HAND-WRITTEN (not generated): the thin wrapper of @wataomi/api-client. It lives under gen/ next to the
// generated types because it is the package's runtime; `task generate` never rewrites it. Only
// src/schema.d.ts is generated (see README.md). Keep this file small: every type comes from the contract.
//
// What it adds to openapi-fetch's typed client:
//   - `Authorization: Bearer <token>` from getAccessToken() on every request (except the public auth ops);
//   - on a 401, one single-flight refresh through POST /casdoor/auth/refresh (concurrent 401s share it),
//     onTokens() with the new pair, and one retry of the original request;
//   - ProblemError (RFC 9457 problem details, PRODUCT §2.2), thrown by unwrap() or, with
//     throwOnError, by the client methods themselves;
//   - idempotencyKey() / idempotencyHeaders() for the Idempotency-Key header (PRODUCT §2.3);
//   - sse(): a text/event-stream reader that reconnects with Last-Event-ID, and its parser.
import createClient, {
  serializeArrayParam,
  serializeObjectParam,
  serializePrimitiveParam,
  type Client,
  type Middleware,
} from "openapi-fetch";
import type { components, paths } from "./schema.js";

export type * from "./schema.js";
export type { Client, Middleware } from "openapi-fetch";

export type Problem = components["schemas"]["Problem"];
export type ProblemFieldError = components["schemas"]["ProblemFieldError"];
export type ProblemReference = components["schemas"]["ProblemReference"];
export type TokenResponse = components["schemas"]["TokenResponse"];

type MaybePromise<T> = T | Promise<T>;
type FetchLike = (input: Request) => Promise<Response>;

/** The problem type prefix: `urn:wataomi:problem:<slug>`. */
export const PROBLEM_TYPE_PREFIX = "urn:wataomi:problem:";

/** The refresh operation of PRODUCT §3.2, relative to the base URL. */
export const REFRESH_PATH = "/casdoor/auth/refresh";

// Public operations: no bearer token is sent and a 401 is final.
const PUBLIC_PATHS = new Set<string>([REFRESH_PATH, "/casdoor/auth/callback", "/casdoor/auth/login/url"]);
// A 401 on these is final too (a refresh just to log out makes no sense).
const NO_REFRESH_PATHS = new Set<string>([...PUBLIC_PATHS, "/casdoor/auth/logout"]);

// ---------------------------------------------------------------------------------------------------------
// Problems

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Whether a content type is `application/problem+json` (parameters such as charset are ignored). */
export function isProblemContentType(contentType: string | null | undefined): boolean {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase() === "application/problem+json";
}

/**
 * An error answer of the API: the RFC 9457 problem details of PRODUCT §2.2 as an Error. A non-problem error
 * answer (a proxy's HTML 502, say) becomes a ProblemError with type `about:blank`, the HTTP status text as
 * title and the body's start as detail.
 */
export class ProblemError extends Error {
  override readonly name = "ProblemError";
  readonly status: number;
  /** `urn:wataomi:problem:<slug>`, or `about:blank` when the answer was not a problem. */
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly instance: string | undefined;
  readonly request_id: string | undefined;
  /** One item per invalid field: `{pointer, detail, code}` (empty when there are none). */
  readonly errors: ProblemFieldError[];
  /** The permission the caller lacks (403 `forbidden`). */
  readonly missing_permission: string | undefined;
  readonly dependency: string | undefined;
  readonly retry_after: number | undefined;
  readonly existing_id: number | undefined;
  readonly references: ProblemReference[];
  /** The problem body as received (undefined when the answer was not a problem). */
  readonly problem: Problem | undefined;
  /** The HTTP answer, when there was one. */
  readonly response: Response | undefined;

  constructor(problem: Problem, response?: Response, isProblem = true) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
    this.status = problem.status;
    this.type = problem.type;
    this.title = problem.title;
    this.detail = problem.detail;
    this.instance = problem.instance || undefined;
    this.request_id = problem.request_id || response?.headers.get("X-Request-ID") || undefined;
    this.errors = problem.errors ?? [];
    this.missing_permission = problem.missing_permission;
    this.dependency = problem.dependency;
    this.retry_after = problem.retry_after;
    this.existing_id = problem.existing_id;
    this.references = problem.references ?? [];
    this.problem = isProblem ? problem : undefined;
    this.response = response;
  }

  /** The slug of `type` (`validation-error`, `forbidden`, …), or "" when the type is not ours. */
  get slug(): string {
    return this.type.startsWith(PROBLEM_TYPE_PREFIX) ? this.type.slice(PROBLEM_TYPE_PREFIX.length) : "";
  }

  /**
   * A ProblemError from an error answer and its body: the parsed JSON, or text. The body is used as a
   * problem when the content type is application/problem+json and it has a numeric status.
   */
  static fromResponse(response: Response, body: unknown): ProblemError {
    if (isProblemContentType(response.headers.get("Content-Type")) && isRecord(body) && typeof body.status === "number") {
      const p = body as Partial<Problem> & { status: number };
      return new ProblemError(
        {
          ...p,
          type: typeof p.type === "string" ? p.type : "about:blank",
          title: typeof p.title === "string" ? p.title : response.statusText,
          detail: typeof p.detail === "string" ? p.detail : "",
          instance: typeof p.instance === "string" ? p.instance : "",
          request_id: typeof p.request_id === "string" ? p.request_id : "",
          errors: Array.isArray(p.errors) ? p.errors : [],
        },
        response,
      );
    }
    const text = typeof body === "string" ? body : body === undefined ? "" : JSON.stringify(body);
    return new ProblemError(
      {
        type: "about:blank",
        title: response.statusText || `HTTP ${response.status}`,
        status: response.status,
        detail: text.slice(0, 500),
        instance: new URL(response.url || "http://invalid/").pathname,
        request_id: response.headers.get("X-Request-ID") ?? "",
      },
      response,
      false,
    );
  }
}

/** A result of an openapi-fetch call. */
export interface FetchResultLike {
  data?: unknown;
  error?: unknown;
  response: Response;
}

type DataOf<R> = R extends { data: infer D } ? ([D] extends [never] ? undefined : D) : never;

/**
 * The data of a successful result; throws a ProblemError when the answer was an error.
 *
 *     const flow = unwrap(await api.GET("/flows/{id}", { params: { path: { id } } }));
 */
export function unwrap<R extends FetchResultLike>(result: R): DataOf<R> {
  if (!result.response.ok) throw ProblemError.fromResponse(result.response, result.error);
  return result.data as DataOf<R>;
}

// ---------------------------------------------------------------------------------------------------------
// Idempotency (PRODUCT §2.3)

/** A fresh random Idempotency-Key (a UUID: 36 printable ASCII characters, within `^[\x21-\x7E]{1,255}$`). */
export function idempotencyKey(): string {
  return globalThis.crypto.randomUUID();
}

/**
 * Headers carrying an Idempotency-Key, for the `headers` option of a call. Keep the key to retry the same
 * request safely: the server replays the first answer with `Idempotent-Replayed: true`.
 *
 *     const key = idempotencyKey();
 *     await api.POST("/flows", { body, headers: idempotencyHeaders(key) });
 */
export function idempotencyHeaders(key: string = idempotencyKey()): { "Idempotency-Key": string } {
  return { "Idempotency-Key": key };
}

// ---------------------------------------------------------------------------------------------------------
// Query strings

// PRODUCT §2.3: `sort` is the only array parameter with style form, explode false (`sort=-created_at,name`);
// every other array (the repeatable filters) is exploded (`status=draft&status=published`).
const COMMA_ARRAY_PARAMS = new Set(["sort"]);

/** The query serializer of the contract's conventions. */
export function serializeQuery(query: Record<string, unknown> | undefined): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) {
      if (value.length === 0) continue;
      parts.push(serializeArrayParam(name, value, { style: "form", explode: !COMMA_ARRAY_PARAMS.has(name) }));
    } else if (isRecord(value)) {
      parts.push(serializeObjectParam(name, value, { style: "form", explode: true }));
    } else {
      parts.push(serializePrimitiveParam(name, String(value)));
    }
  }
  return parts.join("&");
}

// ---------------------------------------------------------------------------------------------------------
// Server-sent events

/** One server-sent event. `event` is "message" when the stream named none. */
export interface SSEEvent {
  event: string;
  data: string;
  /** The last event id seen on the stream (it persists across events until a new `id:`). */
  id: string;
  /** The reconnection delay the event set with `retry:`, if any. */
  retry?: number;
}

/**
 * An incremental parser of text/event-stream (the WHATWG algorithm): feed it decoded text with push(), in
 * chunks of any size; it calls onEvent for each complete event. `lastEventId` and `retry` follow the stream.
 */
export class SSEParser {
  lastEventId = "";
  retry: number | undefined;
  private buf = "";
  private started = false;
  private data: string[] = [];
  private eventType = "";
  private eventRetry: number | undefined;

  constructor(private readonly onEvent: (event: SSEEvent) => void) {}

  push(chunk: string): void {
    let buf = this.buf + chunk;
    if (!this.started && buf.length > 0) {
      this.started = true;
      if (buf.charCodeAt(0) === 0xfeff) buf = buf.slice(1);
    }
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      if (c === 13 && i + 1 === buf.length) break; // a CR at the end: wait to see whether an LF follows
      const line = buf.slice(start, i);
      if (c === 13 && buf.charCodeAt(i + 1) === 10) i++;
      start = i + 1;
      this.line(line);
    }
    this.buf = buf.slice(start);
  }

  /** The stream ended: a last line ended by CR is processed; an unterminated event is discarded. */
  end(): void {
    if (this.buf.endsWith("\r")) this.line(this.buf.slice(0, -1));
    this.buf = "";
    this.data = [];
    this.eventType = "";
    this.eventRetry = undefined;
  }

  private line(line: string): void {
    if (line === "") {
      this.dispatch();
      return;
    }
    if (line.startsWith(":")) return; // a comment (keep-alive)
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.eventType = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.lastEventId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) this.retry = this.eventRetry = Number(value);
        break;
      default: // unknown fields are ignored
    }
  }

  private dispatch(): void {
    const data = this.data;
    const event = this.eventType || "message";
    const retry = this.eventRetry;
    this.data = [];
    this.eventType = "";
    this.eventRetry = undefined;
    if (data.length === 0) return;
    const ev: SSEEvent = { event, data: data.join("\n"), id: this.lastEventId };
    if (retry !== undefined) ev.retry = retry;
    this.onEvent(ev);
  }
}

/** Every complete event of a text/event-stream text. */
export function parseSSE(text: string): SSEEvent[] {
  const events: SSEEvent[] = [];
  const p = new SSEParser((e) => events.push(e));
  p.push(text);
  p.end();
  return events;
}

export interface SSEOptions {
  /** Called for each event, in order. */
  onEvent: (event: SSEEvent) => void;
  /** Called when a connection is open (status 2xx with text/event-stream). */
  onOpen?: (response: Response) => void;
  /** Called when a connection fails or ends, before the reconnect. */
  onError?: (error: unknown) => void;
  /** Aborting it closes the stream; sse() then resolves. */
  signal?: AbortSignal;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** The Last-Event-ID to resume from on the first connection. */
  lastEventId?: string;
  /** The reconnection delay in ms until the stream sets one with `retry:` (default 3000). */
  retryMs?: number;
  /** Consecutive failed connections before sse() rejects (default: unlimited). */
  maxRetries?: number;
  /** The fetch to use (default globalThis.fetch). */
  fetch?: FetchLike;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text().catch(() => "");
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * Reads a text/event-stream operation until `signal` aborts. It reconnects when the stream ends or the
 * network fails, after the `retry:` delay, sending `Last-Event-ID`. A 4xx answer (other than 408 and 429)
 * rejects with a ProblemError; a 204 ends the stream for good (resolves).
 */
export async function sse(url: string, options: SSEOptions): Promise<void> {
  const doFetch: FetchLike = options.fetch ?? ((r) => globalThis.fetch(r));
  const { signal } = options;
  let lastEventId = options.lastEventId ?? "";
  let delay = options.retryMs ?? 3000;
  let failures = 0;
  const maxRetries = options.maxRetries ?? Infinity;
  const fail = async (err: unknown) => {
    options.onError?.(err);
    if (++failures > maxRetries) throw err;
    await sleep(delay, signal);
  };
  while (!signal?.aborted) {
    const headers = new Headers(options.headers);
    headers.set("Accept", "text/event-stream");
    headers.set("Cache-Control", "no-cache");
    if (lastEventId) headers.set("Last-Event-ID", lastEventId);
    let response: Response;
    try {
      response = await doFetch(new Request(url, { headers, signal: signal ?? null }));
    } catch (err) {
      if (signal?.aborted) return;
      await fail(err);
      continue;
    }
    if (response.status === 204) return;
    if (!response.ok) {
      const err = ProblemError.fromResponse(response, await readBody(response));
      if (response.status < 500 && response.status !== 408 && response.status !== 429) throw err;
      await fail(err);
      continue;
    }
    const ct = response.headers.get("Content-Type") ?? "";
    if (!ct.toLowerCase().startsWith("text/event-stream") || !response.body) {
      await response.body?.cancel();
      throw new Error(`sse: ${url} answered ${ct || "no content type"}, not text/event-stream`);
    }
    failures = 0;
    options.onOpen?.(response);
    const parser = new SSEParser(options.onEvent);
    parser.lastEventId = lastEventId;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        parser.push(decoder.decode(value, { stream: true }));
        lastEventId = parser.lastEventId;
        if (parser.retry !== undefined) delay = parser.retry;
        if (signal?.aborted) {
          // Aborted from onEvent: do not wait on another read (Node may leave it pending once the
          // body has ended), release the stream and stop.
          await reader.cancel().catch(() => {});
          return;
        }
      }
      parser.push(decoder.decode());
      parser.end();
      lastEventId = parser.lastEventId;
    } catch (err) {
      lastEventId = parser.lastEventId;
      if (signal?.aborted) return;
      await fail(err);
      continue;
    }
    if (signal?.aborted) return;
    options.onError?.(new Error("sse: the stream ended; reconnecting"));
    await sleep(delay, signal);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The client

export interface WataomiClientOptions {
  /** The API base including the version prefix, e.g. `https://api.example.com/api/v1`. */
  baseUrl: string;
  /** The current access token (or an API token `wto_…`); called before every request. */
  getAccessToken: () => MaybePromise<string | null | undefined>;
  /** The current refresh token; without it a 401 is final. */
  getRefreshToken?: () => MaybePromise<string | null | undefined>;
  /** Called with the new pair after each refresh: store it so getAccessToken/getRefreshToken return it. */
  onTokens?: (tokens: TokenResponse) => MaybePromise<void>;
  /** Called when a refresh is refused (the session is over: sign in again). */
  onRefreshFailed?: (error: ProblemError) => void;
  /** The fetch to use (default globalThis.fetch, looked up at call time). */
  fetch?: (input: Request) => Promise<Response>;
  /** When true, the client methods throw ProblemError for every non-2xx answer instead of returning `error`. */
  throwOnError?: boolean;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

export interface WataomiClient extends Client<paths> {
  /** Refreshes the tokens now (single-flight); resolves to the new access token, or undefined if refused. */
  refresh(): Promise<string | undefined>;
  /** sse() on `baseUrl + path` with the client's token and refresh-on-401. `path` is concrete (no `{id}`). */
  sse(path: string, options: Omit<SSEOptions, "fetch">): Promise<void>;
}

/**
 * The typed client of the WataOmi API: openapi-fetch's createClient<paths> with bearer auth, single-flight
 * refresh on 401 and the contract's query conventions. See README.md.
 */
export function createWataomiClient(options: WataomiClientOptions): WataomiClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const doFetch: FetchLike = options.fetch ?? ((r) => globalThis.fetch(r));

  // Tokens. The getters are the source of truth (another tab may have refreshed). A token this client
  // knows to be superseded by its own refresh is replaced with the newer one, so a getter that is not
  // updated by onTokens still works.
  const supersededAccess = new Set<string>();
  const spentRefresh = new Set<string>();
  let latest: TokenResponse | undefined;
  let inflight: Promise<string | undefined> | undefined;

  const remember = (set: Set<string>, v: string) => {
    set.add(v);
    if (set.size > 32) set.delete(set.values().next().value as string);
  };

  async function accessToken(): Promise<string | undefined> {
    const t = (await options.getAccessToken()) || undefined;
    if (latest && (t === undefined || supersededAccess.has(t))) return latest.access_token;
    return t;
  }

  async function refreshToken(): Promise<string | undefined> {
    const t = (await options.getRefreshToken?.()) || undefined;
    if (latest && (t === undefined || spentRefresh.has(t))) return latest.refresh_token;
    return t;
  }

  async function doRefresh(sentWith: string | undefined): Promise<string | undefined> {
    const rt = await refreshToken();
    if (!rt) return undefined;
    const response = await doFetch(
      new Request(baseUrl + REFRESH_PATH, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json", ...options.headers },
        body: JSON.stringify({ refresh_token: rt }),
      }),
    );
    if (!response.ok) {
      const err = ProblemError.fromResponse(response, await readBody(response));
      // Another tab may have rotated the pair meanwhile (401 refresh-superseded): use its token if we see it.
      const now = await accessToken();
      if (now && now !== sentWith) return now;
      options.onRefreshFailed?.(err);
      return undefined;
    }
    const tokens = (await response.json()) as TokenResponse;
    if (sentWith) remember(supersededAccess, sentWith);
    const before = (await options.getAccessToken()) || undefined;
    if (before && before !== tokens.access_token) remember(supersededAccess, before);
    remember(spentRefresh, rt);
    latest = tokens;
    await options.onTokens?.(tokens);
    return tokens.access_token;
  }

  function refresh(sentWith?: string): Promise<string | undefined> {
    inflight ??= doRefresh(sentWith).finally(() => {
      inflight = undefined;
    });
    return inflight;
  }

  // The token to retry a request with after it got a 401, or undefined when there is none.
  async function recover(sentWith: string | undefined): Promise<string | undefined> {
    if (inflight) return inflight;
    const now = await accessToken();
    if (now && now !== sentWith) return now; // refreshed meanwhile, by this client or another tab
    return refresh(sentWith);
  }

  // A fetch with the bearer token and one refresh-and-retry on 401 (used by sse()).
  async function authedFetch(request: Request): Promise<Response> {
    const retry = request.clone();
    const token = await accessToken();
    if (token) request.headers.set("Authorization", `Bearer ${token}`);
    const response = await doFetch(request);
    if (response.status !== 401) return response;
    const fresh = await recover(token);
    if (!fresh) return response;
    await response.body?.cancel();
    retry.headers.set("Authorization", `Bearer ${fresh}`);
    return doFetch(retry);
  }

  const pending = new Map<string, { retry: Request; sentWith: string | undefined }>();
  const auth: Middleware = {
    async onRequest({ request, schemaPath, id }) {
      if (PUBLIC_PATHS.has(schemaPath) || request.headers.has("Authorization")) return undefined;
      const token = await accessToken();
      if (token) request.headers.set("Authorization", `Bearer ${token}`);
      if (!NO_REFRESH_PATHS.has(schemaPath)) pending.set(id, { retry: request.clone(), sentWith: token });
      return request;
    },
    async onResponse({ response, id }) {
      const p = pending.get(id);
      pending.delete(id);
      if (!p || response.status !== 401) return undefined;
      const fresh = await recover(p.sentWith);
      if (!fresh) return undefined; // keep the 401
      await response.body?.cancel();
      p.retry.headers.set("Authorization", `Bearer ${fresh}`);
      return doFetch(p.retry);
    },
    onError({ id }) {
      pending.delete(id);
      return undefined;
    },
  };

  const throwProblems: Middleware = {
    async onResponse({ response }) {
      if (response.ok) return undefined;
      throw ProblemError.fromResponse(response, await readBody(response.clone()));
    },
  };

  const client = createClient<paths>({
    baseUrl,
    fetch: doFetch,
    querySerializer: serializeQuery as never,
    ...(options.headers ? { headers: options.headers } : {}),
  });
  // onResponse runs in reverse order: auth (refresh and retry) first, then the problem check.
  if (options.throwOnError) client.use(throwProblems);
  client.use(auth);

  return Object.assign(client, {
    refresh: async () => refresh(await accessToken()),
    sse: (path: string, sseOptions: Omit<SSEOptions, "fetch">) =>
      sse(baseUrl + path, { ...sseOptions, headers: { ...options.headers, ...sseOptions.headers }, fetch: authedFetch }),
  });
}

export default createWataomiClient;
