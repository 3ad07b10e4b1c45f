package integration

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// The providers of PRODUCT §5.11.
const (
	Meta             = "meta"
	Instagram        = "instagram"
	OpenAI           = "openai"
	Gemini           = "gemini"
	Anthropic        = "anthropic"
	OpenAICompatible = "openai_compatible"
)

// The secret names.
const (
	SecretClientSecret = "client_secret"
	SecretAPIKey       = "api_key"
)

// The verification states of an integration.
const (
	StatusUnverified = "unverified"
	StatusOK         = "ok"
	StatusError      = "error"
)

// ProviderSpec describes what a provider's integration holds.
type ProviderSpec struct {
	ID string
	// Secrets are the provider's secret names; each is required.
	Secrets []string
	// Webhook marks Meta apps: they get a verify token, an endpoint key and a webhook URL.
	Webhook bool
	// AI marks the AI providers whose api_key Secrets.ProviderKey resolves; they carry is_default.
	AI bool
}

var specs = map[string]ProviderSpec{
	Meta:             {ID: Meta, Secrets: []string{SecretClientSecret}, Webhook: true},
	Instagram:        {ID: Instagram, Secrets: []string{SecretClientSecret}, Webhook: true},
	OpenAI:           {ID: OpenAI, Secrets: []string{SecretAPIKey}, AI: true},
	Gemini:           {ID: Gemini, Secrets: []string{SecretAPIKey}, AI: true},
	Anthropic:        {ID: Anthropic, Secrets: []string{SecretAPIKey}, AI: true},
	OpenAICompatible: {ID: OpenAICompatible, Secrets: []string{SecretAPIKey}},
}

// Spec returns the provider's description.
func Spec(provider string) (ProviderSpec, bool) {
	s, ok := specs[provider]
	return s, ok
}

// FieldError is one invalid member of a request, with an RFC 6901 pointer from the body root and
// the failed rule as code (PRODUCT §2.2).
type FieldError struct {
	Pointer, Detail, Code string
}

var (
	appIDRe        = regexp.MustCompile(`^[0-9]{1,32}$`)
	graphVersionRe = regexp.MustCompile(`^v[0-9]+\.[0-9]+$`)
	scopeRe        = regexp.MustCompile(`^[a-z][a-z0-9_.]{0,99}$`)
)

// Limits of the settings.
const (
	maxScopes        = 50
	maxModels        = 100
	maxModelID       = 200
	maxDisplayName   = 200
	maxBaseURL       = 2048
	maxContextWindow = 100_000_000
)

// CheckSettings checks a provider's settings (PRODUCT §5.11: the non-secret fields) and returns what
// the settings column stores, with is_default apart (AI providers; nil when not given). Unknown
// members are refused.
func CheckSettings(provider string, in map[string]any) (stored map[string]any, isDefault *bool, errs []FieldError) {
	stored = map[string]any{}
	bad := func(member, detail, code string) {
		errs = append(errs, FieldError{Pointer: "/settings/" + member, Detail: detail, Code: code})
	}
	allowed := map[string]bool{}
	switch provider {
	case Meta, Instagram:
		allowed["client_id"], allowed["scopes"] = true, true
		if provider == Meta {
			allowed["graph_api_version"] = true
		}
		if id, ok := checkString(in, "client_id", bad, true); ok {
			if !appIDRe.MatchString(id) {
				bad("client_id", "must be the app id (digits)", "pattern")
			} else {
				stored["client_id"] = id
			}
		}
		if v, ok := checkString(in, "graph_api_version", bad, false); ok {
			if !graphVersionRe.MatchString(v) {
				bad("graph_api_version", "must look like v21.0", "pattern")
			} else {
				stored["graph_api_version"] = v
			}
		}
		if scopes, ok := checkScopes(in, bad); ok {
			stored["scopes"] = scopes
		}
	case OpenAI, Gemini, Anthropic:
		allowed["is_default"] = true
		if raw, present := in["is_default"]; present {
			b, ok := raw.(bool)
			if !ok {
				bad("is_default", "must be a boolean", "type")
			} else {
				isDefault = &b
			}
		}
	case OpenAICompatible:
		allowed["base_url"], allowed["models"] = true, true
		if u, ok := checkString(in, "base_url", bad, true); ok {
			if detail := baseURLProblem(u); detail != "" {
				bad("base_url", detail, "format")
			} else {
				stored["base_url"] = strings.TrimRight(u, "/")
			}
		}
		if models, ok := checkModels(in, func(pointer, detail, code string) {
			errs = append(errs, FieldError{Pointer: "/settings/models" + pointer, Detail: detail, Code: code})
		}); ok {
			stored["models"] = models
		}
	default:
		return nil, nil, []FieldError{{Pointer: "/provider", Detail: "is not a known provider", Code: "enum"}}
	}
	unknown := make([]string, 0)
	for k := range in {
		if !allowed[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		bad(escapePointer(k), "is not a setting of the "+provider+" provider", "additionalProperties")
	}
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Pointer < errs[j].Pointer })
	return stored, isDefault, errs
}

// checkString reads an optional or required string member of 1..100 characters.
func checkString(in map[string]any, key string, bad func(member, detail, code string), required bool) (string, bool) {
	raw, present := in[key]
	if !present {
		if required {
			bad(key, "is required", "required")
		}
		return "", false
	}
	s, ok := raw.(string)
	switch {
	case !ok:
		bad(key, "must be a string", "type")
		return "", false
	case s == "":
		bad(key, "must not be empty", "minLength")
		return "", false
	case key == "base_url" && len(s) > maxBaseURL:
		bad(key, fmt.Sprintf("must be at most %d characters", maxBaseURL), "maxLength")
		return "", false
	case key != "base_url" && utf8.RuneCountInString(s) > 100:
		bad(key, "must be at most 100 characters", "maxLength")
		return "", false
	}
	return s, true
}

func checkScopes(in map[string]any, bad func(member, detail, code string)) ([]string, bool) {
	raw, present := in["scopes"]
	if !present {
		return nil, false
	}
	list, ok := raw.([]any)
	if !ok {
		bad("scopes", "must be an array of permission names", "type")
		return nil, false
	}
	if len(list) > maxScopes {
		bad("scopes", fmt.Sprintf("must have at most %d items", maxScopes), "maxItems")
		return nil, false
	}
	out := make([]string, 0, len(list))
	valid := true
	for i, item := range list {
		s, ok := item.(string)
		switch {
		case !ok:
			bad(fmt.Sprintf("scopes/%d", i), "must be a string", "type")
			valid = false
		case !scopeRe.MatchString(s):
			bad(fmt.Sprintf("scopes/%d", i), "must be a permission name such as pages_messaging", "pattern")
			valid = false
		case slices.Contains(out, s):
			bad(fmt.Sprintf("scopes/%d", i), "is listed twice", "uniqueItems")
			valid = false
		default:
			out = append(out, s)
		}
	}
	return out, valid
}

// Model is one custom model of an openai_compatible integration.
type Model struct {
	ID            string `json:"id"`
	DisplayName   string `json:"display_name,omitempty"`
	ContextWindow int64  `json:"context_window,omitempty"`
}

func checkModels(in map[string]any, bad func(pointer, detail, code string)) ([]Model, bool) {
	raw, present := in["models"]
	if !present {
		return nil, false
	}
	list, ok := raw.([]any)
	if !ok {
		bad("", "must be an array of models", "type")
		return nil, false
	}
	if len(list) > maxModels {
		bad("", fmt.Sprintf("must have at most %d items", maxModels), "maxItems")
		return nil, false
	}
	out := make([]Model, 0, len(list))
	seen := map[string]bool{}
	valid := true
	for i, item := range list {
		at := fmt.Sprintf("/%d", i)
		m, ok := item.(map[string]any)
		if !ok {
			bad(at, "must be an object {id, display_name?, context_window?}", "type")
			valid = false
			continue
		}
		var model Model
		for k, v := range m {
			switch k {
			case "id":
				s, ok := v.(string)
				switch {
				case !ok:
					bad(at+"/id", "must be a string", "type")
					valid = false
				case s == "" || utf8.RuneCountInString(s) > maxModelID:
					bad(at+"/id", fmt.Sprintf("must be 1 to %d characters", maxModelID), "maxLength")
					valid = false
				case seen[s]:
					bad(at+"/id", "is listed twice", "uniqueItems")
					valid = false
				default:
					model.ID, seen[s] = s, true
				}
			case "display_name":
				s, ok := v.(string)
				if !ok || utf8.RuneCountInString(s) > maxDisplayName {
					bad(at+"/display_name", fmt.Sprintf("must be a string of at most %d characters", maxDisplayName), "type")
					valid = false
				}
				model.DisplayName = s
			case "context_window":
				n, ok := v.(float64)
				if !ok || n != math.Trunc(n) || n < 1 || n > maxContextWindow {
					bad(at+"/context_window", fmt.Sprintf("must be an integer from 1 to %d", maxContextWindow), "type")
					valid = false
				}
				model.ContextWindow = int64(n)
			default:
				bad(at+"/"+escapePointer(k), "is not a member of a model", "additionalProperties")
				valid = false
			}
		}
		if _, ok := m["id"]; !ok {
			bad(at+"/id", "is required", "required")
			valid = false
		}
		out = append(out, model)
	}
	return out, valid
}

// baseURLProblem explains why an openai_compatible base URL is unacceptable, or returns "". Where
// it points is checked when it is called (the outbound guard), not here.
func baseURLProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return "must be an absolute http or https URL"
	case u.User != nil:
		return "must not carry credentials; put the key in secrets.api_key"
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return "must not have a query or fragment"
	}
	return ""
}

// escapePointer escapes a member name for an RFC 6901 pointer.
func escapePointer(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// MergeSecrets applies a create (creating: every required secret must be given) or an update
// (a value replaces, nil deletes) to the current secrets. It returns the new secrets and the names
// that changed, sorted. Unknown names and the removal of a required secret are refused.
func MergeSecrets(spec ProviderSpec, current map[string]string, changes map[string]*string, creating bool) (map[string]string, []string, []FieldError) {
	out := make(map[string]string, len(current)+len(changes))
	for k, v := range current {
		out[k] = v
	}
	var changed []string
	var errs []FieldError
	names := make([]string, 0, len(changes))
	for k := range changes {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		v := changes[name]
		if !slices.Contains(spec.Secrets, name) {
			errs = append(errs, FieldError{Pointer: "/secrets/" + escapePointer(name),
				Detail: fmt.Sprintf("is not a secret of the %s provider (it takes %s)", spec.ID, strings.Join(spec.Secrets, ", ")), Code: "additionalProperties"})
			continue
		}
		if v == nil {
			errs = append(errs, FieldError{Pointer: "/secrets/" + name, Detail: "is required and cannot be removed; send a new value to replace it", Code: "required"})
			continue
		}
		if cur, ok := out[name]; !ok || cur != *v {
			changed = append(changed, name)
		}
		out[name] = *v
	}
	if creating {
		for _, name := range spec.Secrets {
			if _, ok := out[name]; !ok {
				errs = append(errs, FieldError{Pointer: "/secrets/" + name, Detail: "is required", Code: "required"})
			}
		}
	}
	return out, changed, errs
}

// NewVerifyToken returns the 32 random characters Meta's webhook handshake echoes (PRODUCT §5.11).
func NewVerifyToken() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	out := make([]byte, 0, 32)
	buf := make([]byte, 64)
	for len(out) < 32 {
		if _, err := rand.Read(buf); err != nil {
			panic("integration: crypto/rand: " + err.Error()) // never fails on supported platforms
		}
		for _, c := range buf {
			// Rejection sampling: 248 = 4 × 62, so every character is equally likely.
			if c < 248 && len(out) < 32 {
				out = append(out, alphabet[int(c)%len(alphabet)])
			}
		}
	}
	return string(out)
}

// NewEndpointKey returns the random key of a Meta app's inbound webhook URL (32 URL-safe characters).
func NewEndpointKey() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic("integration: crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
