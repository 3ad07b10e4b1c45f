package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/config"
	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/integration"
	"github.com/wataomi/wataomi/netguard"
	"github.com/wataomi/wataomi/openapi/apitime"
	"github.com/wataomi/wataomi/secretbox"
	"github.com/wataomi/wataomi/server/httpx"
	"github.com/wataomi/wataomi/store"
)

// integrations is what the integration handlers need besides the database: the box that seals
// secrets to their rows and the verifier that checks them against the providers.
type integrations struct {
	box      *integration.Box
	verifier *integration.Verifier
	// webhookBase is {PUBLIC_BASE_URL}/api/v1/webhooks/meta/, the prefix of a Meta app's webhook URL.
	webhookBase string
}

func newIntegrations(cfg *config.Config, ring *secretbox.Keyring) (*integrations, error) {
	// An openai_compatible base_url comes from an integration, so its check goes through the SSRF
	// guard; redirects are not followed, so a key never travels on to another host.
	guard, err := netguard.New(netguard.Options{AllowedHosts: cfg.HTTPAllowedHosts, BlockPrivate: cfg.HTTPBlockPrivateNetworks, MaxRedirects: -1})
	if err != nil {
		return nil, fmt.Errorf("integrations: outbound guard: %w", err)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	transport.TLSHandshakeTimeout = 10 * time.Second
	trusted := &http.Client{Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &integrations{
		box: integration.NewBox(ring),
		verifier: &integration.Verifier{
			Endpoints: integration.Endpoints{OpenAI: cfg.OpenAIBaseURL, Gemini: cfg.GeminiBaseURL, Anthropic: cfg.AnthropicBaseURL,
				MetaGraph: cfg.MetaGraphBaseURL, MetaGraphVersion: cfg.MetaGraphAPIVersion},
			Client:  trusted,
			Guarded: guard.Client(),
		},
		webhookBase: strings.TrimRight(cfg.PublicBaseURL, "/") + BasePath + "/webhooks/meta/",
	}, nil
}

func integrationErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return notFound("Integration")
	}
	return err
}

func integrationLocation(id int64) string { return fmt.Sprintf("%s/integrations/%d", BasePath, id) }

// fieldErrors maps the integration package's checks to errors[] items.
func fieldErrors(errs []integration.FieldError) []FieldError {
	out := make([]FieldError, len(errs))
	for i, e := range errs {
		out[i] = FieldError{Pointer: e.Pointer, Detail: e.Detail, Code: e.Code}
	}
	return out
}

func invalidIntegration(errs []integration.FieldError) *Problem {
	return unprocessable("unprocessable", fmt.Sprintf("The integration has %d invalid field(s) for its provider.", len(errs)), fieldErrors(errs)...)
}

// integrationConflict turns a unique violation into 409 after the transaction has rolled back (see
// teamConflict): a taken (provider, name) names the existing row; otherwise another integration of
// the provider became the default at the same moment.
func integrationConflict(ctx context.Context, db *gorm.DB, provider, name string, self int64, err error) error {
	if !errors.Is(err, store.ErrConflict) {
		return err
	}
	if in, lookupErr := store.GetIntegrationByName(ctx, db, provider, name); lookupErr == nil && in.ID != self {
		p := conflict("already-exists", "An integration of this provider with this name already exists.")
		p.ExistingID = &in.ID
		return p
	}
	return conflict("invalid-state", "Another integration of this provider was made the default at the same time; retry.")
}

// secretsSet shows, for every secret of the provider, whether it is set, with its hint.
func secretsSet(spec integration.ProviderSpec, meta store.JSON) (api.IntegrationSecretsSet, error) {
	hints, err := integration.Hints(meta)
	if err != nil {
		return nil, err
	}
	out := api.IntegrationSecretsSet{}
	for _, name := range spec.Secrets {
		st := api.IntegrationSecretState{Last4: NullableFrom[string](nil), UpdatedAt: NullableFrom[apitime.Time](nil)}
		if h, ok := hints[name]; ok {
			at := apitime.From(h.UpdatedAt)
			st = api.IntegrationSecretState{Set: true, Last4: NullableFrom(h.Last4), UpdatedAt: NullableFrom(&at)}
		}
		out[name] = st
	}
	return out, nil
}

func integrationSummary(in *store.Integration) (api.IntegrationSummary, error) {
	spec, ok := integration.Spec(in.Provider)
	if !ok {
		return api.IntegrationSummary{}, fmt.Errorf("integration %d: unknown provider %q", in.ID, in.Provider)
	}
	set, err := secretsSet(spec, in.SecretsMeta)
	if err != nil {
		return api.IntegrationSummary{}, err
	}
	return api.IntegrationSummary{Id: in.ID, Provider: api.IntegrationProvider(in.Provider), Name: in.Name, IsActive: in.IsActive,
		Status: api.IntegrationStatus(in.Status), LastVerifiedAt: NullableFrom(apitime.FromPtr(in.LastVerifiedAt)), SecretsSet: set,
		CreatedBy: NullableFrom(in.CreatedBy), CreatedAt: apitime.From(in.CreatedAt), UpdatedAt: apitime.From(in.UpdatedAt)}, nil
}

func (x *integrations) full(in *store.Integration) (api.Integration, error) {
	sum, err := integrationSummary(in)
	if err != nil {
		return api.Integration{}, err
	}
	settings := map[string]any{}
	if err := json.Unmarshal(in.Settings, &settings); err != nil {
		return api.Integration{}, fmt.Errorf("integration %d: stored settings: %w", in.ID, err)
	}
	if spec, _ := integration.Spec(in.Provider); spec.AI {
		settings["is_default"] = in.IsDefault
	}
	var webhookURL *string
	if in.EndpointKey != nil {
		u := x.webhookBase + *in.EndpointKey
		webhookURL = &u
	}
	return api.Integration{Id: sum.Id, Provider: sum.Provider, Name: sum.Name, IsActive: sum.IsActive, Status: sum.Status,
		LastVerifiedAt: sum.LastVerifiedAt, SecretsSet: sum.SecretsSet, CreatedBy: sum.CreatedBy, CreatedAt: sum.CreatedAt,
		UpdatedAt: sum.UpdatedAt, Settings: settings, VerifyToken: NullableFrom(in.VerifyToken), EndpointKey: NullableFrom(in.EndpointKey),
		WebhookUrl: NullableFrom(webhookURL)}, nil
}

func (h *handlers) ListIntegrations(ctx context.Context, req api.ListIntegrationsRequestObject) (api.ListIntegrationsResponseObject, error) {
	prm := req.Params
	page, size := pageParams(prm.Page, prm.PageSize)
	f := store.IntegrationFilter{Page: page, PageSize: size, IsActive: prm.IsActive}
	if prm.Provider != nil {
		f.Provider = string(*prm.Provider)
	}
	f.Sort = sortKeys(prm.Sort)
	rows, total, err := store.ListIntegrations(ctx, h.s.deps.DB.DB, f)
	if err != nil {
		return nil, err
	}
	out := api.IntegrationPage{Items: make([]api.IntegrationSummary, 0, len(rows)), Total: total, Page: page, PageSize: size}
	out.TotalPages, out.HasNext, out.HasPrev = pageMeta(total, page, size)
	for i := range rows {
		sum, err := integrationSummary(&rows[i])
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, sum)
	}
	cc := noStore
	return api.ListIntegrations200JSONResponse{Body: out, Headers: api.ListIntegrations200ResponseHeaders{CacheControl: &cc}}, nil
}

func (h *handlers) CreateIntegration(ctx context.Context, req api.CreateIntegrationRequestObject) (api.CreateIntegrationResponseObject, error) {
	p := httpx.PrincipalFrom(ctx)
	b := req.Body
	spec, ok := integration.Spec(string(b.Provider))
	if !ok { // the contract's enum already refused it
		return nil, fmt.Errorf("unknown provider %q", b.Provider)
	}
	settingsIn := map[string]any{}
	if b.Settings != nil {
		settingsIn = *b.Settings
	}
	stored, isDefault, errs := integration.CheckSettings(spec.ID, settingsIn)
	changes := map[string]*string{}
	if b.Secrets != nil {
		for k, v := range *b.Secrets {
			changes[k] = &v
		}
	}
	secrets, changed, secretErrs := integration.MergeSecrets(spec, nil, changes, true)
	if errs = append(errs, secretErrs...); len(errs) > 0 {
		return nil, invalidIntegration(errs)
	}
	settings, err := json.Marshal(stored)
	if err != nil {
		return nil, err
	}
	in := &store.Integration{Provider: spec.ID, Name: b.Name, IsActive: true, Settings: settings, Status: integration.StatusUnverified,
		CreatedBy: &p.UserID}
	if b.IsActive != nil {
		in.IsActive = *b.IsActive
	}
	if spec.Webhook {
		tok, key := integration.NewVerifyToken(), integration.NewEndpointKey()
		in.VerifyToken, in.EndpointKey = &tok, &key
	}
	x := h.s.integ
	db := h.s.deps.DB
	err = db.Tx(ctx, func(tx *gorm.DB) error {
		if spec.AI {
			if isDefault != nil {
				in.IsDefault = *isDefault
			} else if in.IsActive {
				// The provider's first active integration becomes its default.
				has, err := store.HasDefaultIntegration(ctx, tx, spec.ID)
				if err != nil {
					return err
				}
				in.IsDefault = !has
			}
			if in.IsDefault {
				if err := store.ClearDefaultIntegration(ctx, tx, spec.ID, 0); err != nil {
					return err
				}
			}
		}
		if err := store.SaveIntegration(ctx, tx, in); err != nil {
			return err
		}
		// The ciphertext is bound to the row's id, so it is sealed once the row has one.
		ct, err := x.box.Seal(in.ID, secrets)
		if err != nil {
			return err
		}
		meta, err := integration.UpdateHints(nil, secrets, changed, store.Now())
		if err != nil {
			return err
		}
		in.SecretsCiphertext, in.SecretsMeta = ct, meta
		if err := store.SaveIntegration(ctx, tx, in); err != nil {
			return err
		}
		fields := []string{"provider", "name", "is_active"}
		after := map[string]any{"provider": in.Provider, "name": in.Name, "is_active": in.IsActive}
		if spec.AI {
			fields, after["is_default"] = append(fields, "is_default"), in.IsDefault
		}
		if len(stored) > 0 {
			fields = append(fields, "settings")
		}
		for _, name := range changed {
			fields = append(fields, "secrets."+name)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "integration.create", ResourceType: "integration", ResourceID: in.ID,
			Fields: fields, After: after})
	})
	if err != nil {
		return nil, integrationConflict(ctx, db.DB, spec.ID, b.Name, 0, err)
	}
	out, err := x.full(in)
	if err != nil {
		return nil, err
	}
	cc := noStore
	return api.CreateIntegration201JSONResponse{Body: out,
		Headers: api.CreateIntegration201ResponseHeaders{Location: integrationLocation(in.ID), CacheControl: &cc}}, nil
}

func (h *handlers) GetIntegration(ctx context.Context, req api.GetIntegrationRequestObject) (api.GetIntegrationResponseObject, error) {
	in, err := store.GetIntegration(ctx, h.s.deps.DB.DB, req.Id)
	if err != nil {
		return nil, integrationErr(err)
	}
	out, err := h.s.integ.full(in)
	if err != nil {
		return nil, err
	}
	cc := noStore
	return api.GetIntegration200JSONResponse{IntegrationJSONResponse: api.IntegrationJSONResponse{Body: out,
		Headers: api.IntegrationResponseHeaders{CacheControl: &cc}}}, nil
}

func (h *handlers) UpdateIntegration(ctx context.Context, req api.UpdateIntegrationRequestObject) (api.UpdateIntegrationResponseObject, error) {
	b := req.Body
	x := h.s.integ
	db := h.s.deps.DB
	var in *store.Integration
	err := db.Tx(ctx, func(tx *gorm.DB) error {
		cur, err := store.GetIntegrationForUpdate(ctx, tx, req.Id)
		if err != nil {
			return integrationErr(err)
		}
		in = cur
		spec, ok := integration.Spec(cur.Provider)
		if !ok {
			return fmt.Errorf("integration %d: unknown provider %q", cur.ID, cur.Provider)
		}
		var fields []string
		before, after := map[string]any{}, map[string]any{}
		credentials := false // settings or secrets changed: the last check no longer applies
		if b.Name != nil && *b.Name != cur.Name {
			fields, before["name"], after["name"] = append(fields, "name"), cur.Name, *b.Name
			cur.Name = *b.Name
		}
		if b.IsActive != nil && *b.IsActive != cur.IsActive {
			fields, before["is_active"], after["is_active"] = append(fields, "is_active"), cur.IsActive, *b.IsActive
			cur.IsActive = *b.IsActive
		}
		var errs []integration.FieldError
		if b.Settings != nil {
			stored, isDefault, serrs := integration.CheckSettings(spec.ID, *b.Settings)
			errs = append(errs, serrs...)
			if len(serrs) == 0 {
				settings, err := json.Marshal(stored)
				if err != nil {
					return err
				}
				if !sameJSON(settings, cur.Settings) {
					fields, cur.Settings, credentials = append(fields, "settings"), settings, true
				}
				// Settings are replaced whole: without is_default, the integration is not the default.
				if def := isDefault != nil && *isDefault; spec.AI && def != cur.IsDefault {
					fields, before["is_default"], after["is_default"] = append(fields, "is_default"), cur.IsDefault, def
					cur.IsDefault = def
					if def {
						if err := store.ClearDefaultIntegration(ctx, tx, spec.ID, cur.ID); err != nil {
							return err
						}
					}
				}
			}
		}
		if b.Secrets != nil && len(*b.Secrets) > 0 {
			current, err := x.box.Open(cur)
			if err != nil {
				return internalError(err)
			}
			merged, changed, serrs := integration.MergeSecrets(spec, current, *b.Secrets, false)
			errs = append(errs, serrs...)
			if len(serrs) == 0 && len(changed) > 0 {
				// Sealed again under the current key: a secret write also completes a key rotation for the row.
				ct, err := x.box.Seal(cur.ID, merged)
				if err != nil {
					return err
				}
				meta, err := integration.UpdateHints(cur.SecretsMeta, merged, changed, store.Now())
				if err != nil {
					return err
				}
				cur.SecretsCiphertext, cur.SecretsMeta, credentials = ct, meta, true
				for _, name := range changed {
					fields = append(fields, "secrets."+name)
				}
			}
			clear(current)
			clear(merged)
		}
		if len(errs) > 0 {
			return invalidIntegration(errs)
		}
		if len(fields) == 0 {
			return nil // {} and values equal to the stored ones change nothing
		}
		if credentials && cur.Status != integration.StatusUnverified {
			fields, before["status"], after["status"] = append(fields, "status"), cur.Status, integration.StatusUnverified
			cur.Status = integration.StatusUnverified
		}
		if err := store.SaveIntegration(ctx, tx, cur); err != nil {
			return err
		}
		if len(before) == 0 {
			before, after = nil, nil
		}
		return writeAudit(ctx, tx, auditEntry{Action: "integration.update", ResourceType: "integration", ResourceID: cur.ID,
			Fields: fields, Before: before, After: after})
	})
	if err != nil {
		name := ""
		if b.Name != nil {
			name = *b.Name
		}
		provider := ""
		if in != nil {
			provider = in.Provider
		}
		return nil, integrationConflict(ctx, db.DB, provider, name, req.Id, err)
	}
	if in, err = store.GetIntegration(ctx, db.DB, req.Id); err != nil {
		return nil, integrationErr(err)
	}
	out, err := x.full(in)
	if err != nil {
		return nil, err
	}
	cc := noStore
	return api.UpdateIntegration200JSONResponse{IntegrationJSONResponse: api.IntegrationJSONResponse{Body: out,
		Headers: api.IntegrationResponseHeaders{CacheControl: &cc}}}, nil
}

func (h *handlers) DeleteIntegration(ctx context.Context, req api.DeleteIntegrationRequestObject) (api.DeleteIntegrationResponseObject, error) {
	err := h.s.deps.DB.Tx(ctx, func(tx *gorm.DB) error {
		in, err := store.GetIntegrationForUpdate(ctx, tx, req.Id)
		if err != nil {
			return integrationErr(err)
		}
		if err := store.DeleteIntegration(ctx, tx, in.ID); err != nil {
			return integrationErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "integration.delete", ResourceType: "integration", ResourceID: in.ID,
			Before: map[string]any{"provider": in.Provider, "name": in.Name}})
	})
	if err != nil {
		return nil, err
	}
	return api.DeleteIntegration204Response{}, nil
}

func (h *handlers) VerifyIntegration(ctx context.Context, req api.VerifyIntegrationRequestObject) (api.VerifyIntegrationResponseObject, error) {
	x := h.s.integ
	db := h.s.deps.DB
	in, err := store.GetIntegration(ctx, db.DB, req.Id)
	if err != nil {
		return nil, integrationErr(err)
	}
	secrets, err := x.box.Open(in)
	if err != nil {
		return nil, internalError(err)
	}
	defer clear(secrets)
	settings := map[string]any{}
	if err := json.Unmarshal(in.Settings, &settings); err != nil {
		return nil, fmt.Errorf("integration %d: stored settings: %w", in.ID, err)
	}
	// The provider is called outside any transaction: no connection is held while waiting on it.
	res, err := x.verifier.Verify(ctx, in.Provider, settings, secrets)
	var down *integration.UnavailableError
	if errors.As(err, &down) {
		p := dependencyDown(in.Provider, err)
		p.Detail = fmt.Sprintf("The %s check could not be made: %s. Nothing was changed.", in.Provider, down.Reason)
		if down.RetryAfter > 0 {
			p.RetryAfter = down.RetryAfter
		}
		return nil, p
	}
	if err != nil {
		return nil, err
	}
	status := integration.StatusError
	if res.OK {
		status = integration.StatusOK
	}
	now := store.Now()
	err = db.Tx(ctx, func(tx *gorm.DB) error {
		cur, err := store.GetIntegrationForUpdate(ctx, tx, in.ID)
		if err != nil {
			return integrationErr(err)
		}
		// The outcome belongs to the credentials that were checked: if they were replaced meanwhile,
		// recording it would vouch for ones never checked.
		if !equalPtr(cur.SecretsCiphertext, in.SecretsCiphertext) || !sameJSON(cur.Settings, in.Settings) {
			return conflict("invalid-state", "The integration's credentials changed while they were being checked; check again.")
		}
		if err := store.SetIntegrationVerified(ctx, tx, in.ID, status, now); err != nil {
			return integrationErr(err)
		}
		return writeAudit(ctx, tx, auditEntry{Action: "integration.verify", ResourceType: "integration", ResourceID: in.ID,
			Fields: []string{"status", "last_verified_at"}, Before: map[string]any{"status": in.Status},
			After: map[string]any{"status": status, "ok": res.OK}})
	})
	if err != nil {
		return nil, err
	}
	return api.VerifyIntegration200JSONResponse{Body: api.IntegrationVerifyResult{Ok: res.OK, Detail: res.Detail,
		Status: api.IntegrationStatus(status), LastVerifiedAt: apitime.From(now)}}, nil
}
