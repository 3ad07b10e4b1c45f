package engine

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wataomi/wataomi/store"
)

// A run interrupted on its last River attempt is failed (worker-lost), not left running for ever.
func TestAbandonAfterLastAttempt(t *testing.T) {
	env := newDBEnv(t)
	srv := newGateServer(t, true, 30*time.Second)
	g := linearGraph(t, srv.URL+"/slow", nil)
	flowID := env.flow(g)
	e := env.engine(NewMemoryBus(), Config{})
	id := env.enqueue(e, flowID, g)

	ctx, kill := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx, id) }()
	srv.waitArrived(t, 10*time.Second)
	kill()
	if err := <-done; err == nil {
		t.Fatal("an interrupted Run returned nil")
	}
	if err := e.abandon(context.Background(), id, errors.New("context canceled")); err != nil {
		t.Fatal(err)
	}
	ex := env.exec(id)
	if ex.Status != store.ExecFailed || ex.Error == nil || !strings.Contains(string(*ex.Error), "worker-lost") {
		t.Fatalf("after abandon: %s %v", ex.Status, jsonText(ex.Error))
	}
	for nodeID, n := range env.nodes(id) {
		if n.Status == NodeRunning {
			t.Fatalf("node %s left running", nodeID)
		}
	}
	// A finished run is left alone.
	if err := e.abandon(context.Background(), id, errors.New("again")); err != nil || env.exec(id).Status != store.ExecFailed {
		t.Fatalf("second abandon: %v", err)
	}
}
