package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/wataomi/wataomi/auth"
	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/gen/permissions"
	"github.com/wataomi/wataomi/openapi"
	"github.com/wataomi/wataomi/rbac"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

// azOp is one operation of the contract.
type azOp struct {
	ID, Method, Path string // Path is the spec's template, without the base
	Item             *openapi3.PathItem
	Op               *openapi3.Operation
}

func (o azOp) String() string { return o.ID + " (" + o.Method + " " + o.Path + ")" }

// azSpec loads a private copy of the embedded contract (TestAuthzGuards edits it).
func azSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := loadSpec(openapi.BundledJSON)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// azOperations lists every operation of doc in a stable order.
func azOperations(doc *openapi3.T) []azOp {
	var out []azOp
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, azOp{ID: op.OperationID, Method: method, Path: path, Item: item, Op: op})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out
}

// azBodies are hand-written minimal bodies for request schemas the generator cannot fill sensibly,
// keyed by component name. Anything not listed is generated from the schema's required members.
var azBodies = map[string]any{
	"FlowCreate":     map[string]any{"name": "Authz matrix"},
	"TemplateCreate": map[string]any{"name": "Authz matrix", "data": map[string]any{"nodes": []any{}, "edges": []any{}}},
	"IconCreate":     map[string]any{"name": "AuthzMatrix"},
	"CategoryCreate": map[string]any{"name": "Authz matrix", "slug": "authz-matrix", "entity_type": "flow"},
	"UserRoleUpdate": map[string]any{"role": "viewer"}, // granting super_admin is a role rule, not the guard
	"IntegrationCreate": map[string]any{"provider": "openai_compatible", "name": "Authz matrix",
		"settings": map[string]any{"base_url": "http://127.0.0.1:9/v1"}, "secrets": map[string]any{"api_key": "authz-matrix-key"}},
}

// azSample builds a minimal value that satisfies s: required members only, lower bounds, the first
// enum value.
func azSample(s *openapi3.Schema, depth int) any {
	if s == nil || depth > 8 {
		return nil
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	typ := ""
	if s.Type != nil {
		for _, t := range s.Type.Slice() {
			if t != openapi3.TypeNull {
				typ = t
				break
			}
		}
	}
	switch {
	case typ == openapi3.TypeObject || (typ == "" && len(s.Properties) > 0):
		m := map[string]any{}
		for _, name := range s.Required {
			if p := s.Properties[name]; p != nil {
				m[name] = azSample(p.Value, depth+1)
			}
		}
		return m
	case typ == openapi3.TypeArray:
		out := []any{}
		if s.Items != nil {
			for i := uint64(0); i < s.MinItems; i++ {
				out = append(out, azSample(s.Items.Value, depth+1))
			}
		}
		return out
	case typ == openapi3.TypeString:
		switch s.Format {
		case "date-time":
			return "2026-01-01T00:00:00.000Z"
		case "email":
			return "authz@example.com"
		case "uuid":
			return "00000000-0000-4000-8000-000000000000"
		case "iana-tz":
			return "UTC"
		}
		n := int(s.MinLength)
		if n == 0 {
			n = 1
		}
		return strings.Repeat("a", n)
	case typ == openapi3.TypeInteger || typ == openapi3.TypeNumber:
		if s.Min != nil && *s.Min > 1 {
			return int64(*s.Min)
		}
		return 1
	case typ == openapi3.TypeBoolean:
		return false
	}
	return map[string]any{}
}

// azParamValue is the value sent for a parameter: the caller's flow for a flow id, else a minimal
// valid value.
func azParamValue(p *openapi3.Parameter, ids map[string]int64) string {
	if id, ok := ids[p.Name]; ok && p.In == openapi3.ParameterInPath {
		return strconv.FormatInt(id, 10)
	}
	var s *openapi3.Schema
	if p.Schema != nil {
		s = p.Schema.Value
	}
	return fmt.Sprint(azSample(s, 0))
}

// azRequest builds a request for o from the contract: path parameters filled from ids (see azIDs),
// required query and header parameters, and a minimal body when the operation takes one.
func azRequest(o azOp, ids map[string]int64) (path string, header http.Header, body []byte) {
	header = http.Header{}
	path = o.Path
	var query []string
	params := append(openapi3.Parameters{}, o.Item.Parameters...)
	params = append(params, o.Op.Parameters...)
	for _, ref := range params {
		p := ref.Value
		switch p.In {
		case openapi3.ParameterInPath:
			path = strings.ReplaceAll(path, "{"+p.Name+"}", azParamValue(p, ids))
		case openapi3.ParameterInQuery:
			if p.Required {
				query = append(query, p.Name+"="+azParamValue(p, ids))
			}
		case openapi3.ParameterInHeader:
			if p.Required {
				header.Set(p.Name, azParamValue(p, ids))
			}
		}
	}
	path = BasePath + path
	if len(query) > 0 {
		path += "?" + strings.Join(query, "&")
	}
	if o.Op.RequestBody == nil || o.Op.RequestBody.Value == nil {
		return path, header, nil
	}
	content := o.Op.RequestBody.Value.Content
	if mt := content.Get("application/json"); mt != nil {
		var v any
		name := ""
		if mt.Schema != nil {
			name = strings.TrimPrefix(mt.Schema.Ref, "#/components/schemas/")
		}
		if b, ok := azBodies[name]; ok {
			v = b
		} else if mt.Schema != nil {
			v = azSample(mt.Schema.Value, 0)
		}
		body, _ = json.Marshal(v)
		header.Set("Content-Type", "application/json")
		return path, header, body
	}
	types := make([]string, 0, len(content))
	for k := range content {
		types = append(types, k)
	}
	sort.Strings(types)
	if len(types) > 0 {
		header.Set("Content-Type", types[0])
	}
	return path, header, nil
}

// azDo sends a raw request with the given headers; a token, when set, goes in as a Bearer credential.
func azDo(t *testing.T, e *testEnv, method, path, token string, header http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return e.Send(t, method, path, h, r)
}

// azFlow creates a private draft flow owned by owner, with its version 1, straight in the DB.
func azFlow(t *testing.T, e *testEnv, owner *store.User) int64 {
	t.Helper()
	data := store.DefaultFlowData()
	g, err := flow.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	f := &store.Flow{Name: "authz", OwnerID: owner.ID, Status: "draft", Visibility: "private", Data: data,
		ContentHash: g.Hash(), Revision: 1, Version: 1}
	ctx := t.Context()
	if err := store.SaveFlow(ctx, e.DB.DB, f); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateFlowVersion(ctx, e.DB.DB, &store.FlowVersion{FlowID: f.ID, Version: 1, Name: "Initial version",
		Data: data, ContentHash: f.ContentHash, CreatedBy: &owner.ID}); err != nil {
		t.Fatal(err)
	}
	return f.ID
}

// azIDs makes the rows an operation's path names, so that ownership or a missing row never masks
// the authorization outcome and no call disturbs the caller: a flow the caller owns, one of the
// caller's API tokens, or a throwaway user (with a token of its own) for the user administration paths.
func azIDs(t *testing.T, e *testEnv, o azOp, caller *store.User) map[string]int64 {
	t.Helper()
	switch {
	case strings.HasPrefix(o.Path, "/users/"):
		target, _ := e.User(rbac.Viewer)
		return map[string]int64{"id": target.ID, "user_id": target.ID}
	case strings.HasPrefix(o.Path, "/api-tokens/"):
		return map[string]int64{"id": azAPIToken(t, e, caller)}
	case strings.HasPrefix(o.Path, "/templates/"):
		return map[string]int64{"id": azTemplate(t, e, caller)}
	case strings.HasPrefix(o.Path, "/agent-configs/"):
		flowID := azFlow(t, e, caller)
		if err := store.SaveAgentConfig(t.Context(), e.DB.DB, &store.AgentConfig{FlowID: flowID, Name: "authz",
			Personality: "friendly", Tone: "informal", Language: "en", SystemPrompt: "authz"}); err != nil {
			t.Fatal(err)
		}
		return map[string]int64{"flow_id": flowID}
	case strings.HasPrefix(o.Path, "/audit-logs/"):
		return map[string]int64{"id": azAuditRow(t, e, caller)}
	case strings.HasPrefix(o.Path, "/integrations/"):
		return map[string]int64{"id": azIntegration(t, e, caller)}
	case strings.HasPrefix(o.Path, "/media/"):
		return map[string]int64{"id": azMedia(t, e, caller)}
	case strings.HasPrefix(o.Path, "/metadata/"):
		return map[string]int64{"id": azMetadata(t, e, o.Path)}
	case strings.HasPrefix(o.Path, "/stats/flows/"):
		return map[string]int64{"flow_id": azFlow(t, e, caller)}
	case strings.HasPrefix(o.Path, "/archives/"):
		return map[string]int64{"id": azArchive(t, e, caller)}
	}
	return map[string]int64{"id": azFlow(t, e, caller), "version": 1}
}

var azMediaSeq atomic.Int64

// azMedia stores a local media row uploaded by uploader straight in the DB (its file need not exist:
// deleting a missing local file succeeds).
func azMedia(t *testing.T, e *testEnv, uploader *store.User) int64 {
	t.Helper()
	key := strings.Repeat("A", 30) + fmt.Sprintf("%013d", azMediaSeq.Add(1)) + ".png"
	m := &store.Media{Storage: store.MediaStorageLocal, PublicID: "wataomi/authz/" + key, FileKey: &key, URL: "http://x/" + key,
		SecureURL: "http://x/" + key, ResourceType: "image", Format: "png", MimeType: "image/png", Bytes: 1,
		Filename: "authz.png", UploadedBy: uploader.ID}
	if err := store.CreateMedia(t.Context(), e.DB.DB, m); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// azMetadata stores the (non-system) tag, category or icon a /metadata/{kind}/{id} path names.
func azMetadata(t *testing.T, e *testEnv, path string) int64 {
	t.Helper()
	ctx, db := t.Context(), e.DB.DB
	n := e.users.Add(1)
	var err error
	var id int64
	switch {
	case strings.HasPrefix(path, "/metadata/tags/"):
		tag := &store.Tag{Name: fmt.Sprintf("authz %d", n), Color: "#6366f1"}
		err, id = store.SaveTag(ctx, db, tag), tag.ID
	case strings.HasPrefix(path, "/metadata/categories/"):
		c := &store.Category{Name: fmt.Sprintf("authz %d", n), Slug: fmt.Sprintf("authz-%d", n), EntityType: "flow", Color: "#6366f1"}
		err, id = store.SaveCategory(ctx, db, c), c.ID
	default:
		i := &store.Icon{Name: fmt.Sprintf("Authz%d", n), Library: "react-icons/fi", Category: "general"}
		err, id = store.SaveIcon(ctx, db, i), i.ID
	}
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// azArchive archives a fresh flow of owner straight in the DB and returns its archive record's id, so
// that restore and purge find a record the caller may see and act on.
func azArchive(t *testing.T, e *testEnv, owner *store.User) int64 {
	t.Helper()
	ctx := t.Context()
	var f store.Flow
	if err := e.DB.Where("id = ?", azFlow(t, e, owner)).Take(&f).Error; err != nil {
		t.Fatal(err)
	}
	now := store.Now()
	a := &store.Archive{EntityType: store.ArchiveFlow, EntityID: f.ID, EntityName: f.Name,
		Snapshot:       store.JSON(`{"name":"authz","status":"draft","visibility":"private","data":{"nodes":[],"edges":[]}}`),
		PreviousStatus: f.Status, OwnerID: &owner.ID, Visibility: f.Visibility, ArchivedBy: &owner.ID, ArchivedAt: now}
	if err := store.SaveArchive(ctx, e.DB.DB, a); err != nil {
		t.Fatal(err)
	}
	f.Status, f.ArchivedAt = "archived", &now
	if err := store.SaveFlow(ctx, e.DB.DB, &f); err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// azTemplate stores a (non-system, so changeable) template created by creator straight in the DB.
func azTemplate(t *testing.T, e *testEnv, creator *store.User) int64 {
	t.Helper()
	tpl := &store.Template{Name: "authz", Data: store.DefaultFlowData(), CreatedBy: &creator.ID}
	if err := store.SaveTemplate(t.Context(), e.DB.DB, tpl); err != nil {
		t.Fatal(err)
	}
	return tpl.ID
}

// azAuditRow stores an audit entry about actor straight in the DB and returns its id.
func azAuditRow(t *testing.T, e *testEnv, actor *store.User) int64 {
	t.Helper()
	a := &store.AuditLog{Action: "user.activated", ActorType: store.ActorSystem, ActorDisplay: "authz", ResourceType: "user", ResourceID: &actor.ID}
	if err := store.InsertAudit(context.Background(), e.DB.DB, a); err != nil {
		t.Fatal(err)
	}
	return a.ID
}

// azIntegration stores an openai_compatible integration, sealed as the API seals it, and returns its
// id. Its base URL is on loopback, which the outbound guard refuses here (no HTTP_ALLOWED_HOSTS), so a
// verify answers 200 ok=false without any network traffic.
func azIntegration(t *testing.T, e *testEnv, creator *store.User) int64 {
	t.Helper()
	ctx := context.Background()
	in := &store.Integration{Provider: "openai_compatible", Name: fmt.Sprintf("authz %d", time.Now().UnixNano()), IsActive: true,
		Settings: store.JSON(`{"base_url":"http://127.0.0.1:9/v1"}`), Status: "unverified", CreatedBy: &creator.ID}
	if err := store.SaveIntegration(ctx, e.DB.DB, in); err != nil {
		t.Fatal(err)
	}
	ct, err := e.Server.integ.box.Seal(in.ID, map[string]string{"api_key": "authz-matrix-key"})
	if err != nil {
		t.Fatal(err)
	}
	in.SecretsCiphertext = ct
	if err := store.SaveIntegration(ctx, e.DB.DB, in); err != nil {
		t.Fatal(err)
	}
	return in.ID
}

// azAPIToken stores an API token of owner straight in the DB and returns its id.
func azAPIToken(t *testing.T, e *testEnv, owner *store.User) int64 {
	t.Helper()
	_, prefix, hash := auth.NewAPIToken()
	tok := &store.APIToken{OwnerID: owner.ID, Name: "authz " + hash[:8], Prefix: prefix, TokenHash: hash,
		Scopes: store.StringList{"flow:read"}, ExpiresAt: time.Now().Add(time.Hour)}
	if err := store.CreateAPIToken(context.Background(), e.DB.DB, tok); err != nil {
		t.Fatal(err)
	}
	return tok.ID
}

// azPublicNotGuarded: a public operation is never refused for lack of credentials or permission. Its
// handler may still answer 401 on its own terms (an unknown refresh token), without a bearer challenge.
func azPublicNotGuarded(t *testing.T, label string, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode == http.StatusForbidden ||
		(resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") != "") {
		t.Errorf("%s: public operation refused by a guard with %d: %s", label, resp.StatusCode, body)
	}
}

// azExpect derives, from the generated guard table and rbac only, whether a user of role may call
// the operation, and the permission a refusal names.
func azExpect(g permissions.Guard, role rbac.Role) (allowed bool, missing string) {
	switch {
	case g.Public:
		return true, ""
	case len(g.Principals) > 0 && !slices.Contains(g.Principals, httpx.KindUser):
		return false, ""
	case g.Authenticated:
		return true, ""
	case g.Permission != "":
		return rbac.Has(role, g.Permission), g.Permission
	}
	return false, ""
}

// tpTokenExpect derives, from the generated guard table and rbac only, whether an API token with
// scopes, owned by a user of role, may call the operation (its effective set is scopes ∩ role), and the
// permission a refusal names ("" for an operation closed to API tokens).
func tpTokenExpect(g permissions.Guard, role rbac.Role, scopes []string) (allowed bool, missing string) {
	switch {
	case g.Public:
		return true, ""
	case len(g.Principals) > 0 && !slices.Contains(g.Principals, httpx.KindAPIToken):
		return false, ""
	case g.Authenticated:
		return true, ""
	case g.Permission != "":
		return rbac.SetOf(scopes).Intersect(rbac.RoleSet(role)).Has(g.Permission), g.Permission
	}
	return false, ""
}

// azUnauthenticated checks a 401 problem with its WWW-Authenticate challenge.
func azUnauthenticated(t *testing.T, label string, resp *http.Response, body []byte) problemBody {
	t.Helper()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("%s: status %d, want 401: %s", label, resp.StatusCode, body)
		return problemBody{}
	}
	p := problemOf(t, resp, body)
	if p.Type != "urn:wataomi:problem:unauthenticated" {
		t.Errorf("%s: type %q, want unauthenticated", label, p.Type)
	}
	if h := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer") {
		t.Errorf("%s: WWW-Authenticate = %q, want a Bearer challenge", label, h)
	}
	return p
}

func TestAuthzMatrix(t *testing.T) {
	e := newTestEnv(t, ssoEnv(t))
	doc := azSpec(t)
	ops := azOperations(doc)
	if len(ops) == 0 {
		t.Fatal("the contract has no operations")
	}
	roles := rbac.AllRoles()
	type caller struct {
		user  *store.User
		token string
	}
	callers := map[rbac.Role]caller{}
	for _, r := range roles {
		u, tok := e.User(r)
		callers[r] = caller{u, tok}
	}
	// API token principals with narrow scopes. They act with scopes ∩ the owner's role: the second
	// carries user:read, which an editor's role lacks, so it grants nothing.
	tokenCallers := []struct {
		label  string
		owner  *store.User
		scopes []string
	}{
		{"an editor's API token scoped to [flow:read]", callers[rbac.Editor].user, []string{"flow:read"}},
		{"an editor's API token scoped to [flow:read flow:update user:read]", callers[rbac.Editor].user, []string{"flow:read", "flow:update", "user:read"}},
		{"an admin's API token scoped to [user:read token:manage]", callers[rbac.Admin].user, []string{"user:read", "token:manage"}},
	}
	cells, statuses := 0, map[int]int{}
	for _, o := range ops {
		g, ok := permissions.Operations[o.ID]
		if !ok {
			t.Errorf("%s has no guard", o)
			continue
		}
		// No credential.
		{
			path, hdr, body := azRequest(o, azIDs(t, e, o, callers[rbac.SuperAdmin].user))
			resp, b := azDo(t, e, o.Method, path, "", hdr, body)
			cells++
			statuses[resp.StatusCode]++
			label := o.String() + " without a token"
			if resp.StatusCode >= 500 {
				t.Errorf("%s: status %d: %s", label, resp.StatusCode, b)
			}
			if g.Public {
				azPublicNotGuarded(t, label, resp, b)
			} else {
				azUnauthenticated(t, label, resp, b)
			}
		}
		for _, r := range roles {
			c := callers[r]
			path, hdr, body := azRequest(o, azIDs(t, e, o, c.user))
			// A fresh token each time: logout revokes the one it is called with.
			resp, b := azDo(t, e, o.Method, path, e.Token(c.user), hdr, body)
			cells++
			statuses[resp.StatusCode]++
			label := fmt.Sprintf("%s as %s", o, r)
			if resp.StatusCode >= 500 {
				t.Errorf("%s: status %d: %s", label, resp.StatusCode, b)
				continue
			}
			allowed, missing := azExpect(g, r)
			if g.Public {
				azPublicNotGuarded(t, label, resp, b)
				continue
			}
			if allowed {
				if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
					t.Errorf("%s: holds the guard but got %d: %s", label, resp.StatusCode, b)
				}
				continue
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: lacks %q but got %d: %s", label, missing, resp.StatusCode, b)
				continue
			}
			p := problemOf(t, resp, b)
			if p.Type != "urn:wataomi:problem:forbidden" || p.MissingPermission != missing {
				t.Errorf("%s: got type %q missing_permission %q, want forbidden %q", label, p.Type, p.MissingPermission, missing)
			}
		}
		for _, tc := range tokenCallers {
			path, hdr, body := azRequest(o, azIDs(t, e, o, tc.owner))
			// A fresh token each time, so no operation can disturb the next.
			secret, _ := tpScopedToken(t, e, tc.owner, tc.scopes...)
			resp, b := azDo(t, e, o.Method, path, secret, hdr, body)
			cells++
			statuses[resp.StatusCode]++
			label := fmt.Sprintf("%s as %s", o, tc.label)
			// The token is valid: a guard never answers 401 (a public operation's handler may, on its own terms).
			if resp.StatusCode >= 500 || (resp.StatusCode == http.StatusUnauthorized && !g.Public) {
				t.Errorf("%s: status %d: %s", label, resp.StatusCode, b)
				continue
			}
			allowed, missing := tpTokenExpect(g, rbac.Role(tc.owner.Role), tc.scopes)
			if g.Public {
				azPublicNotGuarded(t, label, resp, b)
				continue
			}
			if allowed {
				if resp.StatusCode == http.StatusForbidden {
					t.Errorf("%s: holds the guard but got %d: %s", label, resp.StatusCode, b)
				}
				continue
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: lacks %q but got %d: %s", label, missing, resp.StatusCode, b)
				continue
			}
			p := problemOf(t, resp, b)
			if p.Type != "urn:wataomi:problem:forbidden" || p.MissingPermission != missing {
				t.Errorf("%s: got type %q missing_permission %q, want forbidden %q", label, p.Type, p.MissingPermission, missing)
			}
		}
	}
	t.Logf("authorisation matrix: %d operations × %d principals (%d roles + %d API tokens + no token) = %d requests; statuses %v",
		len(ops), len(roles)+len(tokenCallers)+1, len(roles), len(tokenCallers), cells, statuses)

	// An inactive user is refused on every secured operation, whatever the role; an unknown user id
	// in an otherwise valid token is not authenticated.
	inactive, inactiveTok := e.User(rbac.SuperAdmin)
	if err := e.DB.Model(&store.User{}).Where("id = ?", inactive.ID).Update("is_active", false).Error; err != nil {
		t.Fatal(err)
	}
	ghostTok, _, err := e.Tokens.Issue(inactive.ID+1_000_000, string(rbac.SuperAdmin), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		if permissions.Operations[o.ID].Public {
			continue
		}
		path, hdr, body := azRequest(o, azIDs(t, e, o, inactive))
		resp, b := azDo(t, e, o.Method, path, inactiveTok, hdr, body)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s as an inactive user: status %d, want 403: %s", o, resp.StatusCode, b)
		} else if p := problemOf(t, resp, b); p.Type != "urn:wataomi:problem:account-disabled" {
			t.Errorf("%s as an inactive user: type %q, want account-disabled", o, p.Type)
		}
		resp, b = azDo(t, e, o.Method, path, ghostTok, hdr, body)
		azUnauthenticated(t, o.String()+" as an unknown user", resp, b)
	}
}

// azClaims are the claims of a valid access token for uid; cases mutate a copy.
func azClaims(e *testEnv, uid int64) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"sub": strconv.FormatInt(uid, 10), "role": "super_admin", "jti": "authz-jti-0123456789", "sid": "authz-sid-0123456789",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"iss": e.Config.JWTIssuer, "aud": e.Config.JWTAudience, "token_use": "access",
	}
}

// azSign signs claims with method and key, with our typ header unless typ is overridden.
func azSign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims, typ string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	tok.Header["typ"] = typ
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// azDetailHints are words the 401 detail must contain for some TestAuthzTokens cases.
var azDetailHints = map[string]string{
	"alg none": "algorithm", "RS256 (HS/RS confusion)": "algorithm", "HS512 with the right secret": "algorithm",
	"wrong secret": "signature", "expired": "expired", "wrong iss": "issuer", "wrong aud": "audience",
	"token_use refresh": "not an access token", "missing Bearer prefix": "Bearer", "unknown user": "user",
	"inactive user": "disabled",
}

func TestAuthzTokens(t *testing.T) {
	e := newTestEnv(t)
	u, good := e.User(rbac.SuperAdmin)
	inactive, inactiveTok := e.User(rbac.Editor)
	if err := e.DB.Model(&store.User{}).Where("id = ?", inactive.ID).Update("is_active", false).Error; err != nil {
		t.Fatal(err)
	}
	secret := []byte(testSecret)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	with := func(k string, v any) jwt.MapClaims {
		c := azClaims(e, u.ID)
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	tampered := func() string {
		parts := strings.Split(azSign(t, jwt.SigningMethodHS256, secret, with("role", "viewer"), "at+jwt"), ".")
		payload, _ := json.Marshal(with("sub", strconv.FormatInt(u.ID+1, 10)))
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		return strings.Join(parts, ".")
	}

	// Sanity: the valid token is accepted, so every refusal below is about the one thing changed.
	if resp, b := azDo(t, e, "GET", "/api/v1/flows", good, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid token: %d %s", resp.StatusCode, b)
	}
	if resp, b := azDo(t, e, "GET", "/api/v1/flows", azSign(t, jwt.SigningMethodHS256, secret, azClaims(e, u.ID), "at+jwt"), nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("hand-built valid token: %d %s", resp.StatusCode, b)
	}

	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, azClaims(e, u.ID)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	unknownTok, _, err := e.Tokens.Issue(u.ID+1_000_000, "super_admin", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, auth, token string
		status            int
		slug              string
	}{
		{"alg none", "Bearer ", noneTok, 401, "unauthenticated"},
		{"alg none, typ at+jwt", "Bearer ", azSign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, azClaims(e, u.ID), "at+jwt"), 401, "unauthenticated"},
		{"RS256 (HS/RS confusion)", "Bearer ", azSign(t, jwt.SigningMethodRS256, rsaKey, azClaims(e, u.ID), "at+jwt"), 401, "unauthenticated"},
		{"HS256 keyed with an RSA public key", "Bearer ", azSign(t, jwt.SigningMethodHS256, pubPEM, azClaims(e, u.ID), "at+jwt"), 401, "unauthenticated"},
		{"HS512 with the right secret", "Bearer ", azSign(t, jwt.SigningMethodHS512, secret, azClaims(e, u.ID), "at+jwt"), 401, "unauthenticated"},
		{"wrong secret", "Bearer ", azSign(t, jwt.SigningMethodHS256, []byte("another-secret-0123456789-abcdefghijkl"), azClaims(e, u.ID), "at+jwt"), 401, "unauthenticated"},
		{"expired", "Bearer ", azSign(t, jwt.SigningMethodHS256, secret, func() jwt.MapClaims {
			c := azClaims(e, u.ID)
			c["iat"], c["exp"] = time.Now().Add(-time.Hour).Unix(), time.Now().Add(-5*time.Minute).Unix()
			return c
		}(), "at+jwt"), 401, "unauthenticated"},
		{"wrong iss", "Bearer ", azSign(t, jwt.SigningMethodHS256, secret, with("iss", "someone-else"), "at+jwt"), 401, "unauthenticated"},
		{"no iss", "Bearer ", azSign(t, jwt.SigningMethodHS256, secret, with("iss", nil), "at+jwt"), 401, "unauthenticated"},
		{"wrong aud", "Bearer ", azSign(t, jwt.SigningMethodHS256, secret, with("aud", "webchat"), "at+jwt"), 401, "unauthenticated"},
		{"token_use refresh", "Bearer ", azSign(t, jwt.SigningMethodHS256, secret, with("token_use", "refresh"), "at+jwt"), 401, "unauthenticated"},
		{"no token_use", "Bearer ", azSign(t, jwt.SigningMethodHS256, secret, with("token_use", nil), "at+jwt"), 401, "unauthenticated"},
		{"typ JWT", "Bearer ", azSign(t, jwt.SigningMethodHS256, secret, azClaims(e, u.ID), "JWT"), 401, "unauthenticated"},
		{"no exp", "Bearer ", azSign(t, jwt.SigningMethodHS256, secret, with("exp", nil), "at+jwt"), 401, "unauthenticated"},
		{"tampered payload", "Bearer ", tampered(), 401, "unauthenticated"},
		{"missing Bearer prefix", "", good, 401, "unauthenticated"},
		{"Basic scheme", "Basic ", good, 401, "unauthenticated"},
		{"token in the scheme position", "", "Bearer" + good, 401, "unauthenticated"},
		{"garbage", "Bearer ", "garbage-credential-zq7xk", 401, "unauthenticated"},
		{"three garbage segments", "Bearer ", "aaaa.bbbb.cccc-zq7xk", 401, "unauthenticated"},
		{"unknown user", "Bearer ", unknownTok, 401, "unauthenticated"},
		{"inactive user", "Bearer ", inactiveTok, 403, "account-disabled"},
	}
	for _, tc := range cases {
		hdr := http.Header{"Authorization": {tc.auth + tc.token}}
		resp, b := azDo(t, e, "GET", "/api/v1/flows", "", hdr, nil)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d: %s", tc.name, resp.StatusCode, tc.status, b)
			continue
		}
		var p problemBody
		if tc.status == 401 {
			p = azUnauthenticated(t, tc.name, resp, b)
		} else {
			p = problemOf(t, resp, b)
		}
		if p.Type != "urn:wataomi:problem:"+tc.slug {
			t.Errorf("%s: type %q, want %s", tc.name, p.Type, tc.slug)
		}
		if p.Detail == "" {
			t.Errorf("%s: no detail", tc.name)
		}
		// The detail says which case it is.
		if want := azDetailHints[tc.name]; want != "" && !strings.Contains(p.Detail, want) {
			t.Errorf("%s: detail %q does not mention %q", tc.name, p.Detail, want)
		}
		// Neither the token nor any of its segments is echoed.
		for _, seg := range append(strings.Split(tc.token, "."), tc.token) {
			if len(seg) >= 8 && (strings.Contains(string(b), seg) || strings.Contains(resp.Header.Get("WWW-Authenticate"), seg)) {
				t.Errorf("%s: the response echoes the credential: %s", tc.name, b)
				break
			}
		}
	}
	logs := e.Logs.String()
	for _, tc := range cases {
		for _, seg := range strings.Split(tc.token, ".") {
			if len(seg) >= 8 && strings.Contains(logs, seg) {
				t.Errorf("%s: the log contains the credential", tc.name)
				break
			}
		}
	}
}

func TestAuthzGuards(t *testing.T) {
	doc := azSpec(t)
	ops := azOperations(doc)
	seen := map[string]bool{}
	for _, o := range ops {
		if seen[o.ID] {
			t.Errorf("operationId %q is used twice", o.ID)
		}
		seen[o.ID] = true
		g, ok := permissions.Operations[o.ID]
		if !ok {
			t.Errorf("%s has no guard in gen/permissions", o)
			continue
		}
		if g.OperationID != o.ID || g.Method != o.Method || g.Path != o.Path {
			t.Errorf("%s: guard is for %s %s (%s)", o, g.Method, g.Path, g.OperationID)
		}
		if n := btoi(g.Permission != "") + btoi(g.Public) + btoi(g.Authenticated); n != 1 {
			t.Errorf("%s: %d guards, want exactly one: %+v", o, n, g)
		}
		// The guard is what the operation's own markers say.
		perm, _ := o.Op.Extensions["x-permission"].(string)
		public, _ := o.Op.Extensions["x-public"].(bool)
		authn, _ := o.Op.Extensions["x-authenticated"].(bool)
		if perm != g.Permission || public != g.Public || authn != g.Authenticated {
			t.Errorf("%s: markers (x-permission %q, x-public %v, x-authenticated %v) differ from the guard %+v", o, perm, public, authn, g)
		}
		if g.Permission != "" && !rbac.IsKnown(g.Permission) {
			t.Errorf("%s: permission %q is not in the catalogue", o, g.Permission)
		}
		// x-public ⇔ security: [].
		security := o.Op.Security
		if security == nil {
			security = &doc.Security
		}
		if g.Public != (len(*security) == 0) {
			t.Errorf("%s: x-public is %v but the operation has %d security requirements", o, g.Public, len(*security))
		}
	}
	for id := range permissions.Operations {
		if !seen[id] {
			t.Errorf("guard %q has no operation in the contract", id)
		}
	}
	if err := checkGuards(doc); err != nil {
		t.Fatalf("checkGuards on the real contract: %v", err)
	}

	// A contract with an operation the guard table does not know must be refused.
	extra := azSpec(t)
	extra.Paths.Set("/authz-unguarded", &openapi3.PathItem{Get: &openapi3.Operation{
		OperationID: "authzUnguarded", Responses: openapi3.NewResponses(),
	}})
	if err := checkGuards(extra); err == nil || !strings.Contains(err.Error(), "authzUnguarded") {
		t.Errorf("checkGuards accepted an unguarded operation: %v", err)
	}
	// So must a guard whose operation moved to another method or path.
	moved := azSpec(t)
	item := moved.Paths.Value("/flows")
	item.Delete, item.Get = item.Get, nil
	if err := checkGuards(moved); err == nil || !strings.Contains(err.Error(), "listFlows") {
		t.Errorf("checkGuards accepted a stale guard: %v", err)
	}
	// And a guard left without an operation.
	removed := azSpec(t)
	removed.Paths.Value("/flows").Get = nil
	if err := checkGuards(removed); err == nil || !strings.Contains(err.Error(), "listFlows") {
		t.Errorf("checkGuards accepted a guard without an operation: %v", err)
	}
	// newOpenAPI (and so New) refuses to start on such a contract.
	if _, err := newOpenAPI(extra, nil, nil); err == nil {
		t.Error("newOpenAPI accepted a contract with an unguarded operation")
	}
}
