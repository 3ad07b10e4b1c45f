package server

import (
	"context"
	"net/http"
	"testing"

	"github.com/wataomi/wataomi/gen/api"
	"github.com/wataomi/wataomi/rbac"
)

func TestSmokeCreateAndGet(t *testing.T) {
	e := newTestEnv(t)
	_, tok := e.User(rbac.Editor)
	c := e.Client(tok)
	ctx := context.Background()
	created, err := c.CreateFlowWithResponse(ctx, nil, api.FlowCreate{Name: "Hello"})
	if err != nil || created.StatusCode() != http.StatusCreated {
		t.Fatalf("create: %v %d %s", err, created.StatusCode(), created.Body)
	}
	got, err := c.GetFlowWithResponse(ctx, created.JSON201.Id)
	if err != nil || got.StatusCode() != http.StatusOK || got.JSON200.Name != "Hello" {
		t.Fatalf("get: %v %d %s", err, got.StatusCode(), got.Body)
	}
	list, err := c.ListFlowsWithResponse(ctx, &api.ListFlowsParams{})
	if err != nil || list.StatusCode() != http.StatusOK || list.JSON200.Total != 1 {
		t.Fatalf("list: %v %d %s", err, list.StatusCode(), list.Body)
	}
	resp, body := e.Do("GET", "/api/v1/flows/99999", tok, "", nil)
	if p := problemOf(t, resp, body); p.Status != 404 {
		t.Fatalf("got %+v", p)
	}
}
