package server

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// kin-openapi checks only a few string formats by itself; loadSpec registers email, uuid and iana-tz.
// This runs the real request filter options over a small contract that uses them.
func TestFormatsAreValidated(t *testing.T) {
	spec := `{"openapi":"3.1.0","info":{"title":"t","version":"1"},"servers":[{"url":"/api/v1"}],
	"paths":{"/x":{"post":{"operationId":"x","requestBody":{"required":true,"content":{"application/json":{"schema":{
	"type":"object","additionalProperties":false,"properties":{
	"email":{"type":"string","format":"email"},"id":{"type":"string","format":"uuid"},"tz":{"type":"string","format":"iana-tz"}}}}}},
	"responses":{"200":{"description":"ok"}}}}}}`
	doc, err := loadSpec([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	opts := requestOptions()
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"email":"ada@example.com","id":"0b9c5a4e-8f3c-4b1e-9d2a-3c4d5e6f7a8b","tz":"Europe/Paris"}`, true},
		{`{"email":"not an email"}`, false},
		{`{"id":"1234"}`, false},
		{`{"tz":"Mars/Olympus"}`, false},
		{`{"tz":"Local"}`, false},
	} {
		req := httptest.NewRequest("POST", "/api/v1/x", strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatal(err)
		}
		err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: &opts})
		if (err == nil) != tc.ok {
			t.Errorf("%s: valid=%v, want %v (%v)", tc.body, err == nil, tc.ok, err)
		}
		if err != nil {
			if p := fromValidation(err); p.Status != 400 || len(p.Errors) != 1 || p.Errors[0].Code != "format" {
				t.Errorf("%s: mapped to %+v", tc.body, p)
			}
		}
	}
}
