package integration

import (
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"testing"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestCheckSettings(t *testing.T) {
	yes, no := true, false
	tests := []struct {
		name, provider, in string
		stored             string // JSON of the stored settings when valid
		isDefault          *bool
		errs               []FieldError
	}{
		{"meta", Meta, `{"client_id":"1234567890","graph_api_version":"v22.0","scopes":["pages_messaging","pages_show_list"]}`,
			`{"client_id":"1234567890","graph_api_version":"v22.0","scopes":["pages_messaging","pages_show_list"]}`, nil, nil},
		{"meta minimal", Meta, `{"client_id":"1"}`, `{"client_id":"1"}`, nil, nil},
		{"meta without client_id", Meta, `{}`, "", nil, []FieldError{{"/settings/client_id", "is required", "required"}}},
		{"meta with a non-numeric app id", Meta, `{"client_id":"app-1"}`, "", nil, []FieldError{{"/settings/client_id", "must be the app id (digits)", "pattern"}}},
		{"meta with a number for client_id", Meta, `{"client_id":123}`, "", nil, []FieldError{{"/settings/client_id", "must be a string", "type"}}},
		{"meta with a bad version", Meta, `{"client_id":"1","graph_api_version":"21"}`, "", nil, []FieldError{{"/settings/graph_api_version", "must look like v21.0", "pattern"}}},
		{"meta with duplicate scopes", Meta, `{"client_id":"1","scopes":["a_b","a_b"]}`, "", nil, []FieldError{{"/settings/scopes/1", "is listed twice", "uniqueItems"}}},
		{"meta with a bad scope", Meta, `{"client_id":"1","scopes":["Pages Messaging"]}`, "", nil, []FieldError{{"/settings/scopes/0", "must be a permission name such as pages_messaging", "pattern"}}},
		{"meta with scopes not a list", Meta, `{"client_id":"1","scopes":"pages_messaging"}`, "", nil, []FieldError{{"/settings/scopes", "must be an array of permission names", "type"}}},
		{"instagram has no graph version", Instagram, `{"client_id":"1","graph_api_version":"v21.0"}`, "", nil,
			[]FieldError{{"/settings/graph_api_version", "is not a setting of the instagram provider", "additionalProperties"}}},
		{"openai default", OpenAI, `{"is_default":true}`, `{}`, &yes, nil},
		{"gemini not default", Gemini, `{"is_default":false}`, `{}`, &no, nil},
		{"anthropic empty", Anthropic, `{}`, `{}`, nil, nil},
		{"openai is_default not a boolean", OpenAI, `{"is_default":"yes"}`, "", nil, []FieldError{{"/settings/is_default", "must be a boolean", "type"}}},
		{"openai unknown member", OpenAI, `{"base_url":"https://x"}`, "", nil, []FieldError{{"/settings/base_url", "is not a setting of the openai provider", "additionalProperties"}}},
		{"compatible", OpenAICompatible, `{"base_url":"https://llm.example.com/v1/","models":[{"id":"llama-3.1-70b","display_name":"Llama 3.1 70B","context_window":131072},{"id":"mistral"}]}`,
			`{"base_url":"https://llm.example.com/v1","models":[{"id":"llama-3.1-70b","display_name":"Llama 3.1 70B","context_window":131072},{"id":"mistral"}]}`, nil, nil},
		{"compatible without base_url", OpenAICompatible, `{}`, "", nil, []FieldError{{"/settings/base_url", "is required", "required"}}},
		{"compatible with an ftp base_url", OpenAICompatible, `{"base_url":"ftp://llm.example.com"}`, "", nil, []FieldError{{"/settings/base_url", "must be an absolute http or https URL", "format"}}},
		{"compatible with credentials in base_url", OpenAICompatible, `{"base_url":"https://u:p@llm.example.com"}`, "", nil,
			[]FieldError{{"/settings/base_url", "must not carry credentials; put the key in secrets.api_key", "format"}}},
		{"compatible with a query", OpenAICompatible, `{"base_url":"https://llm.example.com/v1?key=x"}`, "", nil, []FieldError{{"/settings/base_url", "must not have a query or fragment", "format"}}},
		{"compatible model without id", OpenAICompatible, `{"base_url":"https://x.example.com","models":[{"display_name":"X"}]}`, "", nil,
			[]FieldError{{"/settings/models/0/id", "is required", "required"}}},
		{"compatible model duplicate id", OpenAICompatible, `{"base_url":"https://x.example.com","models":[{"id":"a"},{"id":"a"}]}`, "", nil,
			[]FieldError{{"/settings/models/1/id", "is listed twice", "uniqueItems"}}},
		{"compatible model unknown member", OpenAICompatible, `{"base_url":"https://x.example.com","models":[{"id":"a","price":1}]}`, "", nil,
			[]FieldError{{"/settings/models/0/price", "is not a member of a model", "additionalProperties"}}},
		{"compatible model fractional window", OpenAICompatible, `{"base_url":"https://x.example.com","models":[{"id":"a","context_window":1.5}]}`, "", nil,
			[]FieldError{{"/settings/models/0/context_window", "must be an integer from 1 to 100000000", "type"}}},
		{"several problems, sorted", Meta, `{"zeta":1,"client_id":"x"}`, "", nil, []FieldError{
			{"/settings/client_id", "must be the app id (digits)", "pattern"},
			{"/settings/zeta", "is not a setting of the meta provider", "additionalProperties"}}},
		{"member name escaped in the pointer", Gemini, `{"a/b~c":1}`, "", nil, []FieldError{{"/settings/a~1b~0c", "is not a setting of the gemini provider", "additionalProperties"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored, isDefault, errs := CheckSettings(tt.provider, decode(t, tt.in))
			if !slices.Equal(errs, tt.errs) {
				t.Fatalf("errors\n got  %+v\n want %+v", errs, tt.errs)
			}
			if !reflect.DeepEqual(isDefault, tt.isDefault) {
				t.Fatalf("isDefault = %v, want %v", isDefault, tt.isDefault)
			}
			if len(tt.errs) > 0 {
				return
			}
			got, _ := json.Marshal(stored)
			if !reflect.DeepEqual(decode(t, string(got)), decode(t, tt.stored)) {
				t.Fatalf("stored %s, want %s", got, tt.stored)
			}
		})
	}
	if _, _, errs := CheckSettings("slack", map[string]any{}); len(errs) != 1 || errs[0].Pointer != "/provider" {
		t.Fatalf("unknown provider: %+v", errs)
	}
}

func TestMergeSecrets(t *testing.T) {
	s := func(v string) *string { return &v }
	meta, _ := Spec(Meta)
	openai, _ := Spec(OpenAI)
	tests := []struct {
		name     string
		spec     ProviderSpec
		current  map[string]string
		changes  map[string]*string
		creating bool
		want     map[string]string
		changed  []string
		errs     []FieldError
	}{
		{"create", openai, nil, map[string]*string{"api_key": s("k1")}, true, map[string]string{"api_key": "k1"}, []string{"api_key"}, nil},
		{"create without the secret", openai, nil, map[string]*string{}, true, map[string]string{}, nil,
			[]FieldError{{"/secrets/api_key", "is required", "required"}}},
		{"create with another provider's secret", meta, nil, map[string]*string{"api_key": s("k")}, true, map[string]string{}, nil,
			[]FieldError{{"/secrets/api_key", "is not a secret of the meta provider (it takes client_secret)", "additionalProperties"},
				{"/secrets/client_secret", "is required", "required"}}},
		{"replace", meta, map[string]string{"client_secret": "old"}, map[string]*string{"client_secret": s("new")}, false,
			map[string]string{"client_secret": "new"}, []string{"client_secret"}, nil},
		{"same value is no change", meta, map[string]string{"client_secret": "old"}, map[string]*string{"client_secret": s("old")}, false,
			map[string]string{"client_secret": "old"}, nil, nil},
		{"absent keys are kept", meta, map[string]string{"client_secret": "old"}, map[string]*string{}, false,
			map[string]string{"client_secret": "old"}, nil, nil},
		{"a required secret cannot be removed", openai, map[string]string{"api_key": "k"}, map[string]*string{"api_key": nil}, false,
			map[string]string{"api_key": "k"}, nil, []FieldError{{"/secrets/api_key", "is required and cannot be removed; send a new value to replace it", "required"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, errs := MergeSecrets(tt.spec, tt.current, tt.changes, tt.creating)
			if !slices.Equal(errs, tt.errs) {
				t.Fatalf("errors\n got  %+v\n want %+v", errs, tt.errs)
			}
			if len(errs) > 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) || !slices.Equal(changed, tt.changed) {
				t.Fatalf("got %v changed %v, want %v changed %v", got, changed, tt.want, tt.changed)
			}
		})
	}
	// The current map is never modified.
	cur := map[string]string{"client_secret": "old"}
	MergeSecrets(meta, cur, map[string]*string{"client_secret": s("new")}, false)
	if cur["client_secret"] != "old" {
		t.Fatal("MergeSecrets modified its input")
	}
}

func TestRandomValues(t *testing.T) {
	tokRe := regexp.MustCompile(`^[A-Za-z0-9]{32}$`)
	keyRe := regexp.MustCompile(`^[A-Za-z0-9_-]{32}$`)
	seen := map[string]bool{}
	for range 200 {
		tok, key := NewVerifyToken(), NewEndpointKey()
		if !tokRe.MatchString(tok) || !keyRe.MatchString(key) {
			t.Fatalf("verify token %q / endpoint key %q", tok, key)
		}
		if seen[tok] || seen[key] {
			t.Fatal("a random value repeated")
		}
		seen[tok], seen[key] = true, true
	}
}
