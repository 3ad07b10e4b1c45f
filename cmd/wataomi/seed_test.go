package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"github.com/wataomi/wataomi/flow"
	"github.com/wataomi/wataomi/store"
)

func countSystemTemplates(t *testing.T, db *store.DB) int64 {
	t.Helper()
	var n int64
	if err := db.Model(&store.Template{}).Where("is_system = ?", true).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// `wataomi seed` inserts the missing built-in templates once; --force resets drifted ones.
func TestSeed(t *testing.T) {
	setupCLI(t)
	n := len(flow.BuiltinTemplates())
	if out := mustCLI(t, "seed"); !strings.Contains(out, "templates: "+strconv.Itoa(n)+" inserted, 0 updated") {
		t.Fatalf("first seed printed %q", out)
	}
	if out := mustCLI(t, "seed"); !strings.Contains(out, "templates: 0 inserted, 0 updated") {
		t.Fatalf("second seed printed %q", out)
	}
	db := openTestDB(t)
	key := flow.BuiltinTemplates()[0].Key
	if err := db.Model(&store.Template{}).Where("system_key = ?", key).Update("name", "Renamed by hand").Error; err != nil {
		t.Fatal(err)
	}
	db.Close()
	if out := mustCLI(t, "seed", "--force"); !strings.Contains(out, "templates: 0 inserted, 1 updated") {
		t.Fatalf("forced seed printed %q", out)
	}
	db = openTestDB(t)
	row, err := store.GetTemplateBySystemKey(context.Background(), db.DB, key)
	if err != nil || row.Name != flow.BuiltinTemplates()[0].Name {
		t.Fatalf("after --force: %+v %v", row, err)
	}
	audit, err := store.ListAuditForResource(context.Background(), db.DB, "template", row.ID)
	if err != nil || len(audit) != 2 || audit[0].Action != "template.seed" || audit[0].ActorType != store.ActorSystem {
		t.Fatalf("audit: %+v %v", audit, err)
	}
	if got := countSystemTemplates(t, db); got != int64(n) {
		t.Fatalf("%d system templates, want %d", got, n)
	}
	db.Close()
	for _, bad := range [][]string{{"seed", "now"}, {"seed", "--bogus"}} {
		wantCLIError(t, bad...)
	}
}

// SEED_ON_START (the default) seeds at startup; false leaves the catalogue out.
func TestSeedOnStart(t *testing.T) {
	setupCLI(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Setenv("SEED_ON_START", "false")
	db := openTestDB(t)
	if err := seedOnStart(context.Background(), loadTestConfig(t), db, log); err != nil {
		t.Fatal(err)
	}
	if n := countSystemTemplates(t, db); n != 0 {
		t.Fatalf("SEED_ON_START=false seeded %d templates", n)
	}
	t.Setenv("SEED_ON_START", "true")
	for range 2 { // idempotent: a restart seeds nothing twice
		if err := seedOnStart(context.Background(), loadTestConfig(t), db, log); err != nil {
			t.Fatal(err)
		}
	}
	if n := countSystemTemplates(t, db); n != int64(len(flow.BuiltinTemplates())) {
		t.Fatalf("SEED_ON_START seeded %d templates", n)
	}
}
