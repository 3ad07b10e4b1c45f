// An example consumer of @wataomi/api-client, type-checked by `npm run check:ts` (tools/js) and never run.
// In an application the import is "@wataomi/api-client".
import {
  createWataomiClient,
  idempotencyHeaders,
  idempotencyKey,
  ProblemError,
  unwrap,
  type SchemaFlow,
  type SchemaFlowCreate,
  type SchemaFlowSummaryPage,
  type TokenResponse,
} from "../src/index.js";

// Where the app keeps its tokens (localStorage, a cookie-backed store, …).
const store: { access?: string; refresh?: string } = {};

const api = createWataomiClient({
  baseUrl: "https://api.example.com/api/v1",
  getAccessToken: () => store.access,
  getRefreshToken: () => store.refresh,
  onTokens: (t: TokenResponse) => {
    store.access = t.access_token;
    store.refresh = t.refresh_token;
  },
  onRefreshFailed: (err) => console.warn(`signed out: ${err.detail}`),
});

export async function listFlowNames(): Promise<string[]> {
  // Typed query: `sort` accepts only the contract's keys, `status` only FlowStatus values.
  const page: SchemaFlowSummaryPage = unwrap(
    await api.GET("/flows", { params: { query: { page: 1, page_size: 50, sort: ["-updated_at"], status: ["draft", "published"] } } }),
  );
  return page.items.map((f) => `${f.name} (${f.status}; ${page.total} flows in all)`);
}

export async function createFlow(name: string): Promise<SchemaFlow | undefined> {
  const body: SchemaFlowCreate = {
    name,
    description: null,
    visibility: "private",
    data: { nodes: [], edges: [] },
  };
  const key = idempotencyKey(); // keep it to retry this exact request safely
  try {
    return unwrap(await api.POST("/flows", { body, headers: idempotencyHeaders(key) }));
  } catch (err) {
    if (!(err instanceof ProblemError)) throw err;
    switch (err.slug) {
      case "validation-error":
        for (const e of err.errors) console.warn(`${e.pointer}: ${e.detail} (${e.code})`);
        return undefined;
      case "forbidden":
        console.warn(`you need the permission ${err.missing_permission ?? "?"}`);
        return undefined;
      default:
        throw err;
    }
  }
}

export async function renameAndDelete(id: number): Promise<void> {
  // The openapi-fetch style without exceptions: check `error`, typed as the Problem schema.
  const got = await api.GET("/flows/{id}", { params: { path: { id } } });
  if (got.error) {
    console.warn(got.error.type, got.error.detail);
    return;
  }
  const etag = got.response.headers.get("ETag") ?? undefined;
  const updated = unwrap(
    await api.PATCH("/flows/{id}", {
      params: { path: { id }, header: etag ? { "If-Match": etag } : {} },
      body: { name: `${got.data.name} (old)` },
    }),
  );
  console.log(updated.revision);
  const deleted: undefined = unwrap(await api.DELETE("/flows/{id}", { params: { path: { id } } }));
  void deleted;
}

// A stream (none is in the contract yet): events with their ids, resumed with Last-Event-ID.
export function follow(path: string, signal: AbortSignal): Promise<void> {
  return api.sse(path, { signal, onEvent: (e) => console.log(e.event, e.id, JSON.parse(e.data)) });
}
