package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

func auditIDs(rows []store.AuditLog) []int64 {
	out := make([]int64, len(rows))
	for i, r := range rows {
		out[i] = r.ID
	}
	return out
}

func TestListAuditFilters(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		t0 := store.Now().Add(-time.Hour)
		add := func(at time.Duration, action, status, resType string, resID, actor, token int64) int64 {
			t.Helper()
			a := &store.AuditLog{OccurredAt: t0.Add(at), Action: action, Status: status, ActorType: store.ActorUser,
				ActorDisplay: "x", ResourceType: resType}
			if resID > 0 {
				a.ResourceID = &resID
			}
			if actor > 0 {
				a.ActorUserID = &actor
			}
			if token > 0 {
				a.ActorType, a.APITokenID = store.ActorAPIToken, &token
			}
			if err := store.InsertAudit(ctx, db.DB, a); err != nil {
				t.Fatal(err)
			}
			return a.ID
		}
		a := add(0, "flow.create", store.AuditSuccess, "flow", 1, 7, 0)
		b := add(time.Minute, "flow.update", store.AuditSuccess, "flow", 1, 7, 3)
		c := add(2*time.Minute, "flow_x.update", store.AuditSuccess, "flow", 2, 8, 0) // "_" must not act as a wildcard
		d := add(3*time.Minute, "permission.denied", store.AuditDenied, "user", 9, 8, 0)
		e := add(4*time.Minute, "auth.refresh_reuse_detected", store.AuditDenied, "user", 7, 0, 0)
		from, to := t0.Add(time.Minute), t0.Add(3*time.Minute)
		cases := []struct {
			name string
			f    store.AuditFilter
			want []int64
		}{
			{"all, newest first", store.AuditFilter{}, []int64{e, d, c, b, a}},
			{"actor", store.AuditFilter{ActorUserID: 7}, []int64{b, a}},
			{"token", store.AuditFilter{APITokenID: 3}, []int64{b}},
			{"action prefix", store.AuditFilter{ActionPrefix: "flow."}, []int64{b, a}},
			{"action exact", store.AuditFilter{ActionPrefix: "flow.update"}, []int64{b}},
			{"action with underscore", store.AuditFilter{ActionPrefix: "auth.refresh_"}, []int64{e}},
			{"resource type", store.AuditFilter{ResourceType: "user"}, []int64{e, d}},
			{"resource", store.AuditFilter{ResourceType: "flow", ResourceID: 1}, []int64{b, a}},
			{"status", store.AuditFilter{Status: store.AuditDenied}, []int64{e, d}},
			{"from (inclusive) to (exclusive)", store.AuditFilter{From: &from, To: &to}, []int64{c, b}},
			{"before id and limit", store.AuditFilter{BeforeID: d, Limit: 2}, []int64{c, b}},
			{"combined", store.AuditFilter{ActorUserID: 8, Status: store.AuditSuccess}, []int64{c}},
			{"nothing", store.AuditFilter{ActionPrefix: "team."}, []int64{}},
		}
		for _, tc := range cases {
			rows, err := store.ListAudit(ctx, db.DB, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if got := auditIDs(rows); !equalInt64s(got, tc.want) {
				t.Errorf("%s: ids %v, want %v", tc.name, got, tc.want)
			}
		}
		got, err := store.GetAudit(ctx, db.DB, d)
		if err != nil || got.Action != "permission.denied" {
			t.Fatalf("GetAudit = %+v, %v", got, err)
		}
		if _, err := store.GetAudit(ctx, db.DB, e+100); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetAudit unknown = %v, want ErrNotFound", err)
		}
	})
}

func equalInt64s(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// The purge keeps what is newer than the cutoff and deletes the rest in statements of at most
// AuditPurgeBatch rows.
func TestPurgeAuditBefore(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := store.Now()
		cutoff := now.Add(-24 * time.Hour)
		const old, fresh = 2*store.AuditPurgeBatch + 37, 25
		rows := make([]store.AuditLog, 0, old+fresh)
		for i := range old {
			rows = append(rows, store.AuditLog{OccurredAt: cutoff.Add(-time.Duration(i+1) * time.Second), Action: "flow.update",
				Status: store.AuditSuccess, ActorType: store.ActorSystem, ActorDisplay: "old"})
		}
		// One row exactly at the cutoff is kept (occurred_at < cutoff is deleted).
		rows = append(rows, store.AuditLog{OccurredAt: cutoff, Action: "flow.update", Status: store.AuditSuccess, ActorType: store.ActorSystem, ActorDisplay: "fresh"})
		for i := range fresh - 1 {
			rows = append(rows, store.AuditLog{OccurredAt: now.Add(-time.Duration(i) * time.Minute), Action: "flow.update",
				Status: store.AuditSuccess, ActorType: store.ActorSystem, ActorDisplay: "fresh"})
		}
		if err := db.CreateInBatches(rows, 200).Error; err != nil {
			t.Fatal(err)
		}

		var deletes []int64
		// Count the DELETE statements and the rows each removed.
		if err := db.Callback().Raw().After("gorm:raw").Register("test:count_deletes", func(tx *gorm.DB) {
			if strings.HasPrefix(strings.TrimSpace(tx.Statement.SQL.String()), "DELETE FROM audit_logs") {
				deletes = append(deletes, tx.RowsAffected)
			}
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Callback().Raw().Remove("test:count_deletes") })

		n, err := store.PurgeAuditBefore(ctx, db.DB, cutoff)
		if err != nil || n != old {
			t.Fatalf("PurgeAuditBefore = %d, %v; want %d", n, err, old)
		}
		if want := []int64{store.AuditPurgeBatch, store.AuditPurgeBatch, 37}; !equalInt64s(deletes, want) {
			t.Fatalf("delete statements removed %v rows, want %v", deletes, want)
		}
		var left []store.AuditLog
		if err := db.Find(&left).Error; err != nil {
			t.Fatal(err)
		}
		if len(left) != fresh {
			t.Fatalf("%d rows left, want %d", len(left), fresh)
		}
		for _, r := range left {
			if r.ActorDisplay != "fresh" || r.OccurredAt.Before(cutoff) {
				t.Fatalf("kept %+v", r)
			}
		}
		// Nothing older is left: a second run deletes nothing, in one statement.
		deletes = nil
		if n, err := store.PurgeAuditBefore(ctx, db.DB, cutoff); err != nil || n != 0 || len(deletes) != 1 {
			t.Fatalf("second purge = %d, %v (%d statements)", n, err, len(deletes))
		}
		// A cancelled context stops before any statement.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := store.PurgeAuditBefore(cctx, db.DB, now.Add(time.Hour)); err == nil {
			t.Fatal("a cancelled purge reported no error")
		}
	})
}

func TestSettings(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// The migration's row holds exactly the Go defaults.
		s, err := store.GetSettings(ctx, db.DB)
		if err != nil {
			t.Fatal(err)
		}
		want := store.DefaultSettings()
		want.UpdatedAt = s.UpdatedAt
		if *s != want || s.UpdatedAt.IsZero() {
			t.Fatalf("migrated settings\n got  %+v\n want %+v", *s, want)
		}
		if s.AIModel("gemini-2.5-flash") != "gemini-2.5-flash" || s.Location() != time.UTC {
			t.Fatalf("defaults: model %q, location %v", s.AIModel("gemini-2.5-flash"), s.Location())
		}

		model := "gpt-4o"
		s.OrgName, s.DefaultTimezone, s.DefaultAIModel, s.ResetBotOnResolve, s.AutoResolveAfterHours = "Acme", "Europe/Paris", &model, false, 48
		if err := db.Tx(ctx, func(tx *gorm.DB) error {
			locked, err := store.GetSettingsForUpdate(ctx, tx)
			if err != nil || locked.ID != store.SettingsID {
				return err
			}
			return store.SaveSettings(ctx, tx, s)
		}); err != nil {
			t.Fatal(err)
		}
		got, err := store.GetSettings(ctx, db.DB)
		if err != nil {
			t.Fatal(err)
		}
		if got.OrgName != "Acme" || got.DefaultAIModel == nil || *got.DefaultAIModel != model || got.ResetBotOnResolve ||
			got.AutoResolveAfterHours != 48 || !got.AutoHandoffOnAgentReply || got.AIModel("x") != model {
			t.Fatalf("read back %+v", got)
		}
		if loc := got.Location(); loc.String() != "Europe/Paris" {
			t.Fatalf("location %v", loc)
		}
		var n int64
		db.Model(&store.Settings{}).Count(&n)
		if n != 1 {
			t.Fatalf("%d settings rows, want 1", n)
		}

		// Without the row (deleted by hand), the defaults are read and a save recreates it.
		if err := db.Exec("DELETE FROM settings").Error; err != nil {
			t.Fatal(err)
		}
		s, err = store.GetSettings(ctx, db.DB)
		if err != nil || s.OrgName != "WataOmi" || s.DefaultAIModel != nil {
			t.Fatalf("missing row read as %+v, %v", s, err)
		}
		if err := store.SaveSettings(ctx, db.DB, s); err != nil {
			t.Fatal(err)
		}
		db.Model(&store.Settings{}).Count(&n)
		if n != 1 {
			t.Fatalf("%d settings rows after the save, want 1", n)
		}
	})
}
