package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/engine"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/integration"
	"github.com/wataomi/wataomi/integration/integrationtest"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/secretbox"
	"github.com/wataomi/wataomi/store"
)

// ---------------------------------------------------------------------------------------------------
// Helpers (prefixed ix).

// ixEnv is a test server whose provider endpoints point at a local fake, keeping every response
// body it answered so a test can scan them all.
type ixEnv struct {
	*testEnv
	fake *integrationtest.Fake
	key  []byte // ENCRYPTION_KEY

	mu     sync.Mutex
	bodies [][]byte
}

func ixRandomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, secretbox.KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// ixProviderEnv points the server's provider endpoints at the fake.
func ixProviderEnv(f *integrationtest.Fake, key []byte) map[string]string {
	return map[string]string{
		"OPENAI_BASE_URL": f.URL + "/v1", "GEMINI_BASE_URL": f.URL, "ANTHROPIC_BASE_URL": f.URL, "META_GRAPH_BASE_URL": f.URL,
		// openai_compatible base URLs go through the outbound guard; the fake listens on loopback.
		"HTTP_ALLOWED_HOSTS": "127.0.0.1/32",
		"PUBLIC_BASE_URL":    "https://api.example.com",
		"ENCRYPTION_KEY":     base64.StdEncoding.EncodeToString(key),
	}
}

func newIxEnv(t *testing.T, extra ...map[string]string) *ixEnv {
	t.Helper()
	f := integrationtest.New(t)
	key := ixRandomKey(t)
	env := ixProviderEnv(f, key)
	for _, m := range extra {
		for k, v := range m {
			env[k] = v
		}
	}
	return &ixEnv{testEnv: newTestEnv(t, env), fake: f, key: key}
}

// call sends a JSON request (body: nil, a raw string, or a value to marshal) and keeps the answer.
func (x *ixEnv) call(method, path, token string, body any) (*http.Response, []byte) {
	x.t.Helper()
	var r io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case string:
		r, ct = strings.NewReader(b), "application/json"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			x.t.Fatal(err)
		}
		r, ct = bytes.NewReader(raw), "application/json"
	}
	resp, b := x.Do(method, BasePath+path, token, ct, r)
	x.mu.Lock()
	x.bodies = append(x.bodies, b)
	x.mu.Unlock()
	return resp, b
}

// want checks the status and decodes a JSON body into T.
func ixWant[T any](t *testing.T, resp *http.Response, body []byte, status int) T {
	t.Helper()
	var v T
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &v); err != nil {
			t.Fatalf("decode %T: %v: %s", v, err, body)
		}
	}
	return v
}

// create creates an integration and checks the 201 facts every create shares.
func (x *ixEnv) create(t *testing.T, token string, body map[string]any) api.Integration {
	t.Helper()
	resp, b := x.call(http.MethodPost, "/integrations", token, body)
	in := ixWant[api.Integration](t, resp, b, http.StatusCreated)
	if got, want := resp.Header.Get("Location"), fmt.Sprintf("%s/integrations/%d", BasePath, in.Id); got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
	return in
}

func (x *ixEnv) get(t *testing.T, token string, id int64) api.Integration {
	t.Helper()
	resp, b := x.call(http.MethodGet, fmt.Sprintf("/integrations/%d", id), token, nil)
	return ixWant[api.Integration](t, resp, b, http.StatusOK)
}

func (x *ixEnv) audit(t *testing.T, id int64) []store.AuditLog {
	t.Helper()
	rows, err := store.ListAuditForResource(context.Background(), x.DB.DB, "integration", id)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// ixChanges decodes an audit row's details.
func ixChanges(t *testing.T, row store.AuditLog) (fields []string, before, after map[string]any) {
	t.Helper()
	if row.Changes == nil {
		return nil, nil, nil
	}
	var c struct {
		Fields []string       `json:"fields"`
		Before map[string]any `json:"before"`
		After  map[string]any `json:"after"`
	}
	if err := json.Unmarshal(*row.Changes, &c); err != nil {
		t.Fatal(err)
	}
	return c.Fields, c.Before, c.After
}

func ixSecretState(t *testing.T, in api.Integration, name string) (set bool, last4 string, updated time.Time) {
	t.Helper()
	st, ok := in.SecretsSet[name]
	if !ok {
		t.Fatalf("secrets_set has no %q: %+v", name, in.SecretsSet)
	}
	if st.Last4.IsSpecified() && !st.Last4.IsNull() {
		last4 = st.Last4.MustGet()
	}
	if st.UpdatedAt.IsSpecified() && !st.UpdatedAt.IsNull() {
		updated = st.UpdatedAt.MustGet().Time
	}
	return st.Set, last4, updated
}

func ixMetaBody(f *integrationtest.Fake, name string) map[string]any {
	return map[string]any{"provider": "meta", "name": name,
		"settings": map[string]any{"client_id": f.AppID, "scopes": []string{"pages_messaging"}},
		"secrets":  map[string]any{"client_secret": f.AppSecret}}
}

func ixAIBody(provider, name, key string) map[string]any {
	return map[string]any{"provider": provider, "name": name, "secrets": map[string]any{"api_key": key}}
}

// ---------------------------------------------------------------------------------------------------
// CRUD

func TestIntegrationsCRUD(t *testing.T) {
	x := newIxEnv(t)
	admin, atok := x.User(rbac.Admin)
	_, stok := x.User(rbac.SuperAdmin)

	in := x.create(t, atok, ixMetaBody(x.fake, "Main app"))
	if in.Provider != "meta" || in.Name != "Main app" || !in.IsActive || in.Status != "unverified" || !in.LastVerifiedAt.IsNull() ||
		in.CreatedBy.MustGet() != admin.ID {
		t.Fatalf("created %+v", in)
	}
	if want := map[string]any{"client_id": x.fake.AppID, "scopes": []any{"pages_messaging"}}; !sameAny(in.Settings, want) {
		t.Errorf("settings %v, want %v", in.Settings, want)
	}
	tok, key := in.VerifyToken.MustGet(), in.EndpointKey.MustGet()
	if !regexp.MustCompile(`^[A-Za-z0-9]{32}$`).MatchString(tok) || !regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`).MatchString(key) {
		t.Errorf("verify_token %q endpoint_key %q", tok, key)
	}
	if got := in.WebhookUrl.MustGet(); got != "https://api.example.com/api/v1/webhooks/meta/"+key {
		t.Errorf("webhook_url %q", got)
	}
	set, last4, updated := ixSecretState(t, in, "client_secret")
	if !set || last4 != x.fake.AppSecret[len(x.fake.AppSecret)-4:] || updated.IsZero() {
		t.Errorf("secrets_set %+v", in.SecretsSet)
	}
	if got := x.get(t, atok, in.Id); !sameAny(got, in) {
		t.Errorf("GET differs from the create response:\n%+v\n%+v", got, in)
	}

	// AI providers have no webhook fields and show is_default; the first active one is the default.
	gem := x.create(t, atok, ixAIBody("gemini", "Gemini", "AIza-short"))
	if !gem.VerifyToken.IsNull() || !gem.EndpointKey.IsNull() || !gem.WebhookUrl.IsNull() || gem.Settings["is_default"] != true {
		t.Errorf("gemini %+v", gem)
	}
	if _, last4, _ := ixSecretState(t, gem, "api_key"); last4 != "" {
		t.Errorf("a 10-character key shows last4 %q; short secrets show none", last4)
	}
	off := x.create(t, atok, map[string]any{"provider": "openai", "name": "Disabled", "is_active": false,
		"secrets": map[string]any{"api_key": "sk-disabled-0000000000"}})
	if off.IsActive || off.Settings["is_default"] != false {
		t.Errorf("inactive openai %+v: an inactive integration does not become the default", off)
	}

	// Lists: summaries by name, the filters, sort and paging.
	type page struct {
		Items      []map[string]any `json:"items"`
		Total      int64            `json:"total"`
		TotalPages int              `json:"total_pages"`
		HasNext    bool             `json:"has_next"`
		HasPrev    bool             `json:"has_prev"`
	}
	list := func(q string) page {
		t.Helper()
		resp, b := x.call(http.MethodGet, "/integrations"+q, atok, nil)
		p := ixWant[page](t, resp, b, http.StatusOK)
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("list Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
		return p
	}
	names := func(p page) []string {
		var out []string
		for _, it := range p.Items {
			out = append(out, it["name"].(string))
		}
		return out
	}
	all := list("")
	if all.Total != 3 || !slices.Equal(names(all), []string{"Disabled", "Gemini", "Main app"}) {
		t.Fatalf("list %+v", all)
	}
	for _, it := range all.Items {
		for _, heavy := range []string{"settings", "verify_token", "webhook_url"} {
			if _, ok := it[heavy]; ok {
				t.Errorf("a summary carries %s", heavy)
			}
		}
	}
	if p := list("?provider=meta"); p.Total != 1 || names(p)[0] != "Main app" {
		t.Errorf("provider filter %+v", p)
	}
	if p := list("?is_active=false"); p.Total != 1 || names(p)[0] != "Disabled" {
		t.Errorf("is_active filter %+v", p)
	}
	if p := list("?sort=-name"); !slices.Equal(names(p), []string{"Main app", "Gemini", "Disabled"}) {
		t.Errorf("sort -name %v", names(p))
	}
	if p := list("?sort=-created_at"); !slices.Equal(names(p), []string{"Disabled", "Gemini", "Main app"}) {
		t.Errorf("sort -created_at %v", names(p))
	}
	if p := list("?page=2&page_size=2"); p.Total != 3 || p.TotalPages != 2 || !p.HasPrev || p.HasNext || !slices.Equal(names(p), []string{"Main app"}) {
		t.Errorf("page 2 %+v", p)
	}

	// Update: name and settings; the status goes back to unverified after a check.
	if err := store.SetIntegrationVerified(context.Background(), x.DB.DB, in.Id, integration.StatusOK, store.Now()); err != nil {
		t.Fatal(err)
	}
	resp, b := x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", in.Id), atok,
		map[string]any{"name": "Renamed app", "settings": map[string]any{"client_id": x.fake.AppID, "graph_api_version": "v23.0"}})
	up := ixWant[api.Integration](t, resp, b, http.StatusOK)
	if up.Name != "Renamed app" || up.Status != "unverified" || up.Settings["graph_api_version"] != "v23.0" || up.Settings["scopes"] != nil {
		t.Errorf("updated %+v (settings are replaced whole)", up)
	}
	if up.VerifyToken.MustGet() != tok || up.EndpointKey.MustGet() != key {
		t.Error("an update changed the verify token or the endpoint key")
	}
	// Replacing the secret changes its hint; the value never comes back.
	time.Sleep(2 * time.Millisecond)
	const newSecret = "replacement-app-secret-9999WXYZ"
	resp, b = x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", in.Id), atok, map[string]any{"secrets": map[string]any{"client_secret": newSecret}})
	up2 := ixWant[api.Integration](t, resp, b, http.StatusOK)
	if _, last4, at := ixSecretState(t, up2, "client_secret"); last4 != "WXYZ" || !at.After(updated) {
		t.Errorf("secret hint after replacement: %q %v (was %v)", last4, at, updated)
	}
	if bytes.Contains(b, []byte(newSecret)) {
		t.Fatal("the response carries the secret")
	}
	// {} and values equal to the stored ones change nothing: same updated_at, no audit row.
	auditBefore := len(x.audit(t, in.Id))
	for _, noop := range []map[string]any{{}, {"name": "Renamed app"}, {"secrets": map[string]any{"client_secret": newSecret}}} {
		resp, b = x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", in.Id), atok, noop)
		if got := ixWant[api.Integration](t, resp, b, http.StatusOK); !got.UpdatedAt.Time.Equal(up2.UpdatedAt.Time) {
			t.Errorf("no-op %v changed updated_at", noop)
		}
	}
	if n := len(x.audit(t, in.Id)); n != auditBefore {
		t.Errorf("no-op updates wrote %d audit row(s)", n-auditBefore)
	}

	// Audit rows: field names, non-secret values only.
	rows := x.audit(t, in.Id)
	actions := []string{}
	for _, r := range rows {
		actions = append(actions, r.Action)
	}
	if !slices.Equal(actions, []string{"integration.update", "integration.update", "integration.create"}) {
		t.Fatalf("audit actions %v", actions)
	}
	fields, _, after := ixChanges(t, rows[2])
	if !slices.Contains(fields, "secrets.client_secret") || after["name"] != "Main app" || after["provider"] != "meta" {
		t.Errorf("create audit fields %v after %v", fields, after)
	}
	fields, _, _ = ixChanges(t, rows[0])
	if !slices.Equal(fields, []string{"secrets.client_secret"}) {
		t.Errorf("secret update audit fields %v", fields)
	}
	fields, before, after := ixChanges(t, rows[1])
	if !slices.Equal(fields, []string{"name", "settings", "status"}) || before["name"] != "Main app" || after["name"] != "Renamed app" ||
		before["status"] != "ok" || after["status"] != "unverified" {
		t.Errorf("update audit %v %v %v", fields, before, after)
	}
	if rows[0].ActorUserID == nil || *rows[0].ActorUserID != admin.ID {
		t.Errorf("audit actor %v", rows[0].ActorUserID)
	}

	// Delete (super_admin only) is hard: a later GET is 404.
	resp, b = x.call(http.MethodDelete, fmt.Sprintf("/integrations/%d", in.Id), stok, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, b)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		resp, b = x.call(m, fmt.Sprintf("/integrations/%d", in.Id), stok, nil)
		if p := problemOf(t, resp, b); p.Status != http.StatusNotFound {
			t.Errorf("%s after delete: %d", m, p.Status)
		}
	}
	if rows := x.audit(t, in.Id); rows[0].Action != "integration.delete" {
		t.Errorf("last audit %q, want integration.delete", rows[0].Action)
	} else if _, before, _ := ixChanges(t, rows[0]); before["name"] != "Renamed app" {
		t.Errorf("delete audit before %v", before)
	}
	var n int64
	if err := x.DB.Model(&store.Integration{}).Where("id = ?", in.Id).Count(&n).Error; err != nil || n != 0 {
		t.Fatalf("row still there: %d %v", n, err)
	}
}

// sameAny compares two values through their JSON forms.
func sameAny(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && sameJSON(ja, jb)
}

// ---------------------------------------------------------------------------------------------------
// Validation

func TestIntegrationsValidation(t *testing.T) {
	x := newIxEnv(t)
	_, tok := x.User(rbac.SuperAdmin)
	existing := x.create(t, tok, ixAIBody("openai", "Taken", "sk-taken-000000000000"))
	other := x.create(t, tok, ixAIBody("openai", "Other", "sk-other-000000000000"))
	long := strings.Repeat("n", 101)
	tests := []struct {
		name, method, path string
		body               string
		status             int
		slug               string
		pointers           []string
	}{
		{"unknown provider", "POST", "/integrations", `{"provider":"slack","name":"x","secrets":{"api_key":"k"}}`, 400, "validation-error", []string{"/provider"}},
		{"empty name", "POST", "/integrations", `{"provider":"openai","name":"","secrets":{"api_key":"k"}}`, 400, "validation-error", []string{"/name"}},
		{"long name", "POST", "/integrations", `{"provider":"openai","name":"` + long + `","secrets":{"api_key":"k"}}`, 400, "validation-error", []string{"/name"}},
		{"unknown member", "POST", "/integrations", `{"provider":"openai","name":"x","secrets":{"api_key":"k"},"status":"ok"}`, 400, "validation-error", []string{"/status"}},
		{"empty secret", "POST", "/integrations", `{"provider":"openai","name":"x","secrets":{"api_key":""}}`, 400, "validation-error", []string{"/secrets/api_key"}},
		{"secret not a string", "POST", "/integrations", `{"provider":"openai","name":"x","secrets":{"api_key":5}}`, 400, "validation-error", []string{"/secrets/api_key"}},
		{"settings not an object", "POST", "/integrations", `{"provider":"openai","name":"x","settings":"x","secrets":{"api_key":"k"}}`, 400, "validation-error", []string{"/settings"}},
		{"missing secret", "POST", "/integrations", `{"provider":"openai","name":"x"}`, 422, "unprocessable", []string{"/secrets/api_key"}},
		{"another provider's secret", "POST", "/integrations", `{"provider":"meta","name":"x","settings":{"client_id":"1"},"secrets":{"api_key":"k"}}`, 422, "unprocessable",
			[]string{"/secrets/api_key", "/secrets/client_secret"}},
		{"meta without client_id", "POST", "/integrations", `{"provider":"meta","name":"x","secrets":{"client_secret":"s"}}`, 422, "unprocessable", []string{"/settings/client_id"}},
		{"bad base_url", "POST", "/integrations", `{"provider":"openai_compatible","name":"x","settings":{"base_url":"ftp://x"},"secrets":{"api_key":"k"}}`, 422, "unprocessable",
			[]string{"/settings/base_url"}},
		{"settings and secrets both wrong", "POST", "/integrations", `{"provider":"gemini","name":"x","settings":{"base_url":"https://x"}}`, 422, "unprocessable",
			[]string{"/settings/base_url", "/secrets/api_key"}},
		{"duplicate name", "POST", "/integrations", `{"provider":"openai","name":"Taken","secrets":{"api_key":"k"}}`, 409, "already-exists", nil},
		{"remove a secret", "PATCH", fmt.Sprintf("/integrations/%d", existing.Id), `{"secrets":{"api_key":null}}`, 422, "unprocessable", []string{"/secrets/api_key"}},
		{"unknown secret on update", "PATCH", fmt.Sprintf("/integrations/%d", existing.Id), `{"secrets":{"client_secret":"s"}}`, 422, "unprocessable", []string{"/secrets/client_secret"}},
		{"invalid settings on update", "PATCH", fmt.Sprintf("/integrations/%d", existing.Id), `{"settings":{"is_default":"yes"}}`, 422, "unprocessable", []string{"/settings/is_default"}},
		{"provider is immutable", "PATCH", fmt.Sprintf("/integrations/%d", existing.Id), `{"provider":"gemini"}`, 400, "validation-error", []string{"/provider"}},
		{"null name", "PATCH", fmt.Sprintf("/integrations/%d", existing.Id), `{"name":null}`, 400, "validation-error", []string{"/name"}},
		{"rename onto another", "PATCH", fmt.Sprintf("/integrations/%d", other.Id), `{"name":"Taken"}`, 409, "already-exists", nil},
		{"get missing", "GET", "/integrations/999999", "", 404, "not-found", nil},
		{"update missing", "PATCH", "/integrations/999999", `{"name":"x"}`, 404, "not-found", nil},
		{"delete missing", "DELETE", "/integrations/999999", "", 404, "not-found", nil},
		{"verify missing", "POST", "/integrations/999999/verify", "", 404, "not-found", nil},
		{"bad filter", "GET", "/integrations?provider=slack", "", 400, "validation-error", []string{"#/query/provider"}},
		{"bad sort", "GET", "/integrations?sort=status", "", 400, "validation-error", []string{"#/query/sort/0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			resp, b := x.call(tt.method, tt.path, tok, body)
			p := problemOf(t, resp, b)
			if p.Status != tt.status || p.Type != "urn:wataomi:problem:"+tt.slug {
				t.Fatalf("got %d %s, want %d %s: %s", p.Status, p.Type, tt.status, tt.slug, b)
			}
			var got []string
			for _, e := range p.Errors {
				got = append(got, e.Pointer)
			}
			slices.Sort(got)
			want := slices.Clone(tt.pointers)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("pointers %v, want %v: %s", got, want, b)
			}
			if tt.slug == "already-exists" && (p.ExistingID == nil || *p.ExistingID != existing.Id) {
				t.Fatalf("existing_id %v, want %d", p.ExistingID, existing.Id)
			}
		})
	}
	// The same name under another provider is fine.
	x.create(t, tok, ixAIBody("gemini", "Taken", "gem-key"))
	// Nothing above changed the two rows.
	for _, in := range []api.Integration{existing, other} {
		if got := x.get(t, tok, in.Id); !sameAny(got, in) {
			t.Errorf("a refused request changed integration %d:\n%+v\n%+v", in.Id, got, in)
		}
		if n := len(x.audit(t, in.Id)); n != 1 {
			t.Errorf("integration %d has %d audit rows, want only its create", in.Id, n)
		}
	}
}

// ---------------------------------------------------------------------------------------------------
// Default AI integration and the keys the engine gets

func TestIntegrationsDefaultAndProviderKey(t *testing.T) {
	x := newIxEnv(t)
	_, tok := x.User(rbac.Admin)
	keys := integration.NewSecrets(x.DB.DB, x.Server.integ.box.Keyring())
	providerKey := func(p string) string {
		t.Helper()
		k, err := keys.ProviderKey(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	isDefault := func(id int64) bool { return x.get(t, tok, id).Settings["is_default"] == true }

	if k := providerKey("openai"); k != "" {
		t.Fatalf("no integration yet: %q (the engine falls back to OPENAI_API_KEY)", k)
	}
	first := x.create(t, tok, ixAIBody("openai", "First", "sk-first"))
	second := x.create(t, tok, ixAIBody("openai", "Second", "sk-second"))
	if !isDefault(first.Id) || isDefault(second.Id) {
		t.Fatal("the first active integration of a provider is its default, the second is not")
	}
	if k := providerKey("openai"); k != "sk-first" {
		t.Fatalf("key %q, want the default's", k)
	}
	// Making the second the default takes it from the first.
	resp, b := x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", second.Id), tok, map[string]any{"settings": map[string]any{"is_default": true}})
	ixWant[api.Integration](t, resp, b, http.StatusOK)
	if isDefault(first.Id) || !isDefault(second.Id) || providerKey("openai") != "sk-second" {
		t.Fatal("the default did not move")
	}
	// A create that asks for the default takes it too.
	third := x.create(t, tok, map[string]any{"provider": "openai", "name": "Third", "settings": map[string]any{"is_default": true},
		"secrets": map[string]any{"api_key": "sk-third"}})
	if !isDefault(third.Id) || isDefault(second.Id) || providerKey("openai") != "sk-third" {
		t.Fatal("a default create did not take the default")
	}
	// Deactivating the default: the most recently created active integration is used.
	resp, b = x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", third.Id), tok, map[string]any{"is_active": false})
	ixWant[api.Integration](t, resp, b, http.StatusOK)
	if k := providerKey("openai"); k != "sk-second" {
		t.Fatalf("inactive default: key %q, want the most recent active", k)
	}
	// Settings replaced without is_default: no longer the default.
	resp, b = x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", third.Id), tok, map[string]any{"settings": map[string]any{}})
	ixWant[api.Integration](t, resp, b, http.StatusOK)
	if isDefault(third.Id) {
		t.Fatal("settings without is_default kept the default")
	}
	// A replaced key takes effect at once.
	resp, b = x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", second.Id), tok, map[string]any{"secrets": map[string]any{"api_key": "sk-second-rotated"}})
	ixWant[api.Integration](t, resp, b, http.StatusOK)
	if k := providerKey("openai"); k != "sk-second-rotated" {
		t.Fatalf("after replacing the key: %q", k)
	}
	// Other providers are separate; deleting leaves the environment's key.
	if k := providerKey("gemini"); k != "" {
		t.Fatalf("gemini: %q", k)
	}
}

// ---------------------------------------------------------------------------------------------------
// Verify

func TestIntegrationsVerify(t *testing.T) {
	x := newIxEnv(t)
	_, tok := x.User(rbac.Manager) // integration:update, not create: rows are made by an admin
	_, admin := x.User(rbac.Admin)
	f := x.fake
	verify := func(id int64) (*http.Response, []byte) {
		return x.call(http.MethodPost, fmt.Sprintf("/integrations/%d/verify", id), tok, nil)
	}
	cases := []struct {
		name string
		body map[string]any
		ok   bool
	}{
		{"openai", ixAIBody("openai", "o", f.APIKey), true},
		{"gemini", ixAIBody("gemini", "g", f.APIKey), true},
		{"anthropic", ixAIBody("anthropic", "a", f.APIKey), true},
		{"compatible", map[string]any{"provider": "openai_compatible", "name": "c", "settings": map[string]any{"base_url": f.URL + "/v1"},
			"secrets": map[string]any{"api_key": f.APIKey}}, true},
		{"meta", ixMetaBody(f, "m"), true},
		{"instagram", map[string]any{"provider": "instagram", "name": "i", "settings": map[string]any{"client_id": f.AppID},
			"secrets": map[string]any{"client_secret": f.AppSecret}}, true},
		{"openai wrong key", ixAIBody("openai", "o-bad", "sk-not-the-right-key-000000"), false},
		{"meta wrong secret", map[string]any{"provider": "meta", "name": "m-bad", "settings": map[string]any{"client_id": f.AppID},
			"secrets": map[string]any{"client_secret": "not-the-app-secret"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := x.create(t, admin, c.body)
			resp, b := verify(in.Id)
			res := ixWant[api.IntegrationVerifyResult](t, resp, b, http.StatusOK)
			wantStatus := api.IntegrationStatus("ok")
			if !c.ok {
				wantStatus = "error"
			}
			if res.Ok != c.ok || res.Status != wantStatus || res.Detail == "" || res.LastVerifiedAt.IsZero() {
				t.Fatalf("verify %+v", res)
			}
			got := x.get(t, admin, in.Id)
			if got.Status != wantStatus || got.LastVerifiedAt.IsNull() || !got.LastVerifiedAt.MustGet().Time.Equal(res.LastVerifiedAt.Time) {
				t.Fatalf("after verify: status %s last_verified_at %v", got.Status, got.LastVerifiedAt)
			}
			rows := x.audit(t, in.Id)
			if rows[0].Action != "integration.verify" {
				t.Fatalf("audit %q", rows[0].Action)
			}
			if _, _, after := ixChanges(t, rows[0]); after["ok"] != c.ok || after["status"] != string(wantStatus) {
				t.Fatalf("verify audit after %v", after)
			}
		})
	}

	// The provider is down or rate-limits: 503 with Retry-After, nothing recorded.
	in := x.create(t, admin, ixAIBody("gemini", "flaky", f.APIKey))
	f.FailNext(http.StatusServiceUnavailable, "9")
	resp, b := verify(in.Id)
	p := problemOf(t, resp, b)
	if p.Status != http.StatusServiceUnavailable || p.Type != "urn:wataomi:problem:dependency-unavailable" || p.Dependency != "gemini" ||
		resp.Header.Get("Retry-After") != "9" {
		t.Fatalf("503: %+v %v", p, resp.Header)
	}
	f.FailNext(http.StatusTooManyRequests, "")
	if resp, b := verify(in.Id); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("429 from the provider: %d %s", resp.StatusCode, b)
	}
	if got := x.get(t, admin, in.Id); got.Status != "unverified" || !got.LastVerifiedAt.IsNull() || len(x.audit(t, in.Id)) != 1 {
		t.Fatalf("an unavailable provider changed the integration: %+v", got)
	}

	// A compatible server on a private address is refused by the guard: a failed check, not an outage.
	guarded := newIxEnv(t, map[string]string{"HTTP_ALLOWED_HOSTS": ""})
	_, gtok := guarded.User(rbac.SuperAdmin)
	priv := guarded.create(t, gtok, map[string]any{"provider": "openai_compatible", "name": "local",
		"settings": map[string]any{"base_url": guarded.fake.URL + "/v1"}, "secrets": map[string]any{"api_key": guarded.fake.APIKey}})
	resp, b = guarded.call(http.MethodPost, fmt.Sprintf("/integrations/%d/verify", priv.Id), gtok, nil)
	if res := ixWant[api.IntegrationVerifyResult](t, resp, b, http.StatusOK); res.Ok || !strings.Contains(res.Detail, "outbound guard") {
		t.Fatalf("guarded verify %+v", res)
	}
	if n := len(guarded.fake.Requests()); n != 0 {
		t.Fatalf("the blocked server received %d request(s)", n)
	}

	// An unreachable configured endpoint is an outage.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	down := newIxEnv(t, map[string]string{"ANTHROPIC_BASE_URL": deadURL})
	_, dtok := down.User(rbac.SuperAdmin)
	a := down.create(t, dtok, ixAIBody("anthropic", "a", down.fake.APIKey))
	resp, b = down.call(http.MethodPost, fmt.Sprintf("/integrations/%d/verify", a.Id), dtok, nil)
	if p := problemOf(t, resp, b); p.Status != http.StatusServiceUnavailable || p.Dependency != "anthropic" || !strings.Contains(p.Detail, "could not be reached") {
		t.Fatalf("unreachable: %+v", p)
	}
}

// ---------------------------------------------------------------------------------------------------
// Permissions (PRODUCT §4.2): the matrix test covers every op; this pins the integration rows.

func TestIntegrationsPermissions(t *testing.T) {
	x := newIxEnv(t)
	_, super := x.User(rbac.SuperAdmin)
	in := x.create(t, super, ixAIBody("gemini", "g", "k"))
	id := fmt.Sprintf("/integrations/%d", in.Id)
	type op struct {
		method, path string
		body         any
		perm         string
	}
	ops := []op{
		{"GET", "/integrations", nil, "integration:list"},
		{"GET", id, nil, "integration:read"},
		{"POST", "/integrations", ixAIBody("openai", "perm-test", "k"), "integration:create"},
		{"PATCH", id, map[string]any{}, "integration:update"},
		{"DELETE", id + "0", nil, "integration:delete"}, // a missing row: allowed callers get 404, not 204
	}
	allowed := map[rbac.Role][]string{
		rbac.SuperAdmin: {"integration:list", "integration:read", "integration:create", "integration:update", "integration:delete"},
		rbac.Admin:      {"integration:list", "integration:read", "integration:create", "integration:update"},
		rbac.Manager:    {"integration:list", "integration:read", "integration:update"},
		rbac.Editor:     {"integration:list", "integration:read"},
		rbac.Viewer:     {"integration:list", "integration:read"},
		rbac.User:       {},
	}
	for role, perms := range allowed {
		_, tok := x.User(role)
		for _, o := range ops {
			body := o.body
			if m, ok := body.(map[string]any); ok && o.method == "POST" {
				m = maps.Clone(m)
				m["name"] = fmt.Sprintf("perm-%s", role)
				body = m
			}
			resp, b := x.call(o.method, o.path, tok, body)
			if slices.Contains(perms, o.perm) {
				if resp.StatusCode == http.StatusForbidden || resp.StatusCode >= 500 {
					t.Errorf("%s %s as %s: %d %s", o.method, o.path, role, resp.StatusCode, b)
				}
				continue
			}
			p := problemOf(t, resp, b)
			if p.Status != http.StatusForbidden || p.MissingPermission != o.perm {
				t.Errorf("%s %s as %s: %d missing %q, want 403 %s", o.method, o.path, role, p.Status, p.MissingPermission, o.perm)
			}
		}
	}
}

// ---------------------------------------------------------------------------------------------------
// Secrets never leave: responses, logs, audit rows; the column holds only a ciphertext

func TestIntegrationSecretsNeverLeak(t *testing.T) {
	x := newIxEnv(t)
	_, tok := x.User(rbac.SuperAdmin)
	// Distinctive plaintexts: the fake accepts the first two, so the happy paths run with them too.
	const (
		aiKey     = "sk-LEAKCANARY-ai-7c1e9d0b4a2f8e6d"
		appSecret = "LEAKCANARY-app-secret-5b3a1f9e7d"
		badKey    = "sk-LEAKCANARY-wrong-3e8f2a6c1d9b" // the fake quotes a refused key in its error
		newKey    = "sk-LEAKCANARY-new-0a9b8c7d6e5f4a3b"
	)
	canaries := []string{aiKey, appSecret, badKey, newKey}
	x.fake.APIKey, x.fake.AppSecret = aiKey, appSecret

	ai := x.create(t, tok, ixAIBody("openai", "AI", aiKey))
	meta := x.create(t, tok, map[string]any{"provider": "meta", "name": "Meta", "settings": map[string]any{"client_id": x.fake.AppID},
		"secrets": map[string]any{"client_secret": appSecret}})
	bad := x.create(t, tok, ixAIBody("openai", "Bad", badKey))
	for _, in := range []api.Integration{ai, meta, bad} {
		x.get(t, tok, in.Id)
		resp, b := x.call(http.MethodPost, fmt.Sprintf("/integrations/%d/verify", in.Id), tok, nil)
		ixWant[api.IntegrationVerifyResult](t, resp, b, http.StatusOK)
	}
	x.call(http.MethodGet, "/integrations", tok, nil)
	// Replace a key, fail to verify through an outage, and send refused bodies that carry secrets.
	resp, b := x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", ai.Id), tok, map[string]any{"name": "AI 2", "secrets": map[string]any{"api_key": newKey}})
	ixWant[api.Integration](t, resp, b, http.StatusOK)
	x.fake.FailNext(http.StatusBadGateway, "")
	if resp, _ := x.call(http.MethodPost, fmt.Sprintf("/integrations/%d/verify", ai.Id), tok, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("outage: %d", resp.StatusCode)
	}
	for _, body := range []string{
		`{"provider":"openai","name":"x","secrets":{"api_key":"` + newKey + `"},"bogus":1}`,                             // 400
		`{"provider":"meta","name":"x","settings":{"client_id":"abc"},"secrets":{"client_secret":"` + appSecret + `"}}`, // 422
		`{"provider":"openai","name":"AI 2","secrets":{"api_key":"` + newKey + `"}}`,                                    // 409
		`{"provider":"openai","name":"y","secrets":{"api_key":"` + aiKey + `","client_secret":"` + badKey + `"}}`,       // 422 unknown name
	} {
		if resp, b := x.call(http.MethodPost, "/integrations", tok, body); resp.StatusCode < 400 {
			t.Fatalf("refused body answered %d: %s", resp.StatusCode, b)
		}
	}
	if resp, b := x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", ai.Id), tok, `{"secrets":{"api_key":"`+badKey+`"},"provider":"gemini"}`); resp.StatusCode != 400 {
		t.Fatalf("refused patch answered %d: %s", resp.StatusCode, b)
	}
	// Wrong-key verification quoted the key in the provider's message: the detail has it removed.
	resp, b = x.call(http.MethodPost, fmt.Sprintf("/integrations/%d/verify", bad.Id), tok, nil)
	if res := ixWant[api.IntegrationVerifyResult](t, resp, b, http.StatusOK); res.Ok || !strings.Contains(res.Detail, "[redacted]") {
		t.Fatalf("wrong key verify %+v", res)
	}

	// The column holds ciphertexts that open with ENCRYPTION_KEY and nothing else.
	ctx := context.Background()
	ring, err := secretbox.New(x.key)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := store.GetIntegration(ctx, x.DB.DB, ai.Id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(*stored.SecretsCiphertext, "v1:"+secretbox.KeyID(x.key)+":") {
		t.Fatalf("ciphertext %q does not name ENCRYPTION_KEY's id", *stored.SecretsCiphertext)
	}
	if s, err := integration.NewBox(ring).Open(stored); err != nil || s["api_key"] != newKey {
		t.Fatalf("ENCRYPTION_KEY does not open the row: %v", err)
	}
	if _, err := integration.NewBox(mustRing(t, ixRandomKey(t))).Open(stored); err == nil {
		t.Fatal("another key opened the row")
	}

	// Swapping two rows' ciphertexts makes both unusable (the ciphertext is bound to its row), and the
	// failure is a logged 500 that still carries no secret.
	rowA, errA := store.GetIntegration(ctx, x.DB.DB, ai.Id)
	rowB, errB := store.GetIntegration(ctx, x.DB.DB, bad.Id)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	for id, ct := range map[int64]string{ai.Id: *rowB.SecretsCiphertext, bad.Id: *rowA.SecretsCiphertext} {
		if err := x.DB.Exec("UPDATE integrations SET secrets_ciphertext = ? WHERE id = ?", ct, id).Error; err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []int64{ai.Id, bad.Id} {
		resp, b := x.call(http.MethodPost, fmt.Sprintf("/integrations/%d/verify", id), tok, nil)
		if p := problemOf(t, resp, b); p.Status != http.StatusInternalServerError {
			t.Fatalf("verify of a swapped row: %d %s", p.Status, b)
		}
		resp, b = x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", id), tok, map[string]any{"secrets": map[string]any{"api_key": "sk-whatever"}})
		if p := problemOf(t, resp, b); p.Status != http.StatusInternalServerError {
			t.Fatalf("update of a swapped row: %d %s", p.Status, b)
		}
	}
	if !strings.Contains(x.Logs.String(), "secrets cannot be opened") {
		t.Fatal("the swapped rows' failures were not logged")
	}

	// Scan everything the server produced.
	var everything strings.Builder
	for _, b := range x.bodies {
		everything.Write(b)
		everything.WriteByte('\n')
	}
	everything.WriteString(x.Logs.String())
	var audits []store.AuditLog
	if err := x.DB.Order("id").Find(&audits).Error; err != nil {
		t.Fatal(err)
	}
	if len(audits) < 8 {
		t.Fatalf("only %d audit rows", len(audits))
	}
	auditJSON, _ := json.Marshal(audits)
	everything.Write(auditJSON)
	var rows []map[string]any
	if err := x.DB.Raw("SELECT * FROM integrations").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	rowsJSON, _ := json.Marshal(rows)
	everything.Write(rowsJSON)
	text := everything.String()
	for _, c := range canaries {
		for _, probe := range []string{c, base64.StdEncoding.EncodeToString([]byte(c)), base64.RawURLEncoding.EncodeToString([]byte(c))} {
			if i := strings.Index(text, probe); i >= 0 {
				lo, hi := max(0, i-200), min(len(text), i+len(probe)+50)
				t.Fatalf("secret %q appears in what the server wrote:\n…%s…", c, text[lo:hi])
			}
		}
	}
	// The scan saw real traffic: every request's access-log line is in the captured logs.
	if n := strings.Count(x.Logs.String(), `"msg":"request"`); len(x.bodies) < 20 || n < len(x.bodies) {
		t.Fatalf("the scan saw %d bodies and %d access-log lines", len(x.bodies), n)
	}
}

func mustRing(t *testing.T, key []byte, previous ...[]byte) *secretbox.Keyring {
	t.Helper()
	r, err := secretbox.New(key, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// ---------------------------------------------------------------------------------------------------
// Key rotation across servers sharing one database

// ixServerOn starts a second server on an existing database with its own configuration.
func ixServerOn(t *testing.T, db *store.DB, env map[string]string) *testEnv {
	t.Helper()
	cfg := testConfig(t, env)
	tokens, err := auth.TokensFromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, nil))
	// The engine is built, not started: one test database runs one set of workers.
	eng, err := engine.FromConfig(context.Background(), cfg, db, nil, log, engine.Options{BusNamespace: "ix-" + hex.EncodeToString(ixRandomKey(t)[:6])})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Deps{Config: cfg, DB: db, Tokens: tokens, Logger: log, Shared: auth.NewMemoryShared(), Engine: eng})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, DB: db, Server: srv, Tokens: tokens, Config: cfg, Logs: logs}
	e.HTTP = httptest.NewServer(newResponseValidator(t, srv.Echo, &e.checked))
	t.Cleanup(e.HTTP.Close)
	return e
}

func TestIntegrationKeyRotation(t *testing.T) {
	x := newIxEnv(t) // key A
	keyA := x.key
	u, tok := x.User(rbac.SuperAdmin)
	x.fake.APIKey = "sk-rotation-accepted-key-00000000"
	one := x.create(t, tok, ixAIBody("openai", "one", x.fake.APIKey))
	two := x.create(t, tok, ixAIBody("gemini", "two", x.fake.APIKey))
	kid := func(id int64) string {
		t.Helper()
		in, err := store.GetIntegration(context.Background(), x.DB.DB, id)
		if err != nil {
			t.Fatal(err)
		}
		k, err := secretbox.KeyIDOf(*in.SecretsCiphertext)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if kid(one.Id) != secretbox.KeyID(keyA) {
		t.Fatal("not sealed under A")
	}

	// B current, A previous: the rows still open (verify decrypts), and a secret write re-seals under B.
	keyB := ixRandomKey(t)
	envB := ixProviderEnv(x.fake, keyB)
	envB["ENCRYPTION_KEYS_PREVIOUS"] = base64.StdEncoding.EncodeToString(keyA)
	b := ixServerOn(t, x.DB, envB)
	tokB := b.Token(u)
	for _, id := range []int64{one.Id, two.Id} {
		resp, body := b.Do(http.MethodPost, fmt.Sprintf("%s/integrations/%d/verify", BasePath, id), tokB, "", nil)
		if res := ixWant[api.IntegrationVerifyResult](t, resp, body, http.StatusOK); !res.Ok {
			t.Fatalf("verify under B with A previous: %+v", res)
		}
	}
	resp, body := b.Do(http.MethodPatch, fmt.Sprintf("%s/integrations/%d", BasePath, one.Id), tokB, "application/json",
		strings.NewReader(`{"secrets":{"api_key":"sk-rotated-by-write"}}`))
	ixWant[api.Integration](t, resp, body, http.StatusOK)
	if kid(one.Id) != secretbox.KeyID(keyB) || kid(two.Id) != secretbox.KeyID(keyA) {
		t.Fatalf("after a write: one under %s, two under %s", kid(one.Id), kid(two.Id))
	}
	// The rotation re-seals the rest.
	st, err := integration.Rotate(context.Background(), x.DB, mustRing(t, keyB, keyA))
	if err != nil || st.Rotated != 1 {
		t.Fatalf("Rotate = %+v, %v", st, err)
	}
	if kid(two.Id) != secretbox.KeyID(keyB) {
		t.Fatal("the rotation left a row under A")
	}
	// B alone now serves every row; A alone serves none.
	onlyB := ixServerOn(t, x.DB, ixProviderEnv(x.fake, keyB))
	resp, body = onlyB.Do(http.MethodPost, fmt.Sprintf("%s/integrations/%d/verify", BasePath, two.Id), onlyB.Token(u), "", nil)
	if res := ixWant[api.IntegrationVerifyResult](t, resp, body, http.StatusOK); !res.Ok {
		t.Fatalf("verify under B alone: %+v", res)
	}
	resp, body = x.call(http.MethodPost, fmt.Sprintf("/integrations/%d/verify", two.Id), tok, nil)
	if p := problemOf(t, resp, body); p.Status != http.StatusInternalServerError {
		t.Fatalf("A alone opened a row under B: %d", p.Status)
	}
}

// Credentials replaced while the check runs: its outcome is not recorded for the new ones.
func TestIntegrationsVerifyRecordsOnlyWhatItChecked(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"gpt-4o","object":"model"}]}`))
	}))
	defer slow.Close()
	x := newIxEnv(t, map[string]string{"OPENAI_BASE_URL": slow.URL})
	_, tok := x.User(rbac.Admin)
	in := x.create(t, tok, ixAIBody("openai", "racy", "sk-checked-key"))
	done := make(chan struct{})
	var resp *http.Response
	var body []byte
	go func() {
		defer close(done)
		resp, body = x.call(http.MethodPost, fmt.Sprintf("/integrations/%d/verify", in.Id), tok, nil)
	}()
	<-arrived
	r, b := x.call(http.MethodPatch, fmt.Sprintf("/integrations/%d", in.Id), tok, map[string]any{"secrets": map[string]any{"api_key": "sk-replaced-key"}})
	ixWant[api.Integration](t, r, b, http.StatusOK)
	close(release)
	<-done
	if p := problemOf(t, resp, body); p.Status != http.StatusConflict || p.Type != "urn:wataomi:problem:invalid-state" {
		t.Fatalf("verify across a secret change: %d %s", p.Status, body)
	}
	if got := x.get(t, tok, in.Id); got.Status != "unverified" || !got.LastVerifiedAt.IsNull() {
		t.Fatalf("the outcome was recorded for credentials never checked: %+v", got)
	}
}
