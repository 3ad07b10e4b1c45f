package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

func ptr[T any](v T) *T { return &v }

func mustCreate(t *testing.T, db *gorm.DB, v any) {
	t.Helper()
	if err := db.Create(v).Error; err != nil {
		t.Fatalf("create %T: %v", v, err)
	}
}

func newUser(t *testing.T, db *store.DB, email string) *store.User {
	t.Helper()
	u := &store.User{Email: email, Name: "N", IsActive: true, SearchText: store.SearchText("N", email)}
	mustCreate(t, db.DB, u)
	return u
}

func newFlow(t *testing.T, db *store.DB, owner int64) *store.Flow {
	t.Helper()
	f := &store.Flow{Name: "F", OwnerID: owner, Data: store.DefaultFlowData(), SearchText: store.SearchText("F")}
	mustCreate(t, db.DB, f)
	return f
}

func TestForeignKeysEnforced(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		err := store.Classify(db.Create(&store.Flow{Name: "x", OwnerID: 987654, Data: store.DefaultFlowData()}).Error)
		if !errors.Is(err, store.ErrForeignKey) {
			t.Fatalf("flow with unknown owner: err = %v, want ErrForeignKey", err)
		}
		var n int64
		db.Model(&store.Flow{}).Count(&n)
		if n != 0 {
			t.Fatalf("%d flows stored", n)
		}

		owner := newUser(t, db, "owner@example.com")
		newFlow(t, db, owner.ID)
		err = store.Classify(db.Delete(&store.User{}, owner.ID).Error)
		if !errors.Is(err, store.ErrForeignKey) {
			t.Fatalf("delete of a flow owner: err = %v, want ErrForeignKey (RESTRICT)", err)
		}
	})
}

func TestOnDeleteRules(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		owner := newUser(t, db, "owner@example.com")
		author := newUser(t, db, "author@example.com")
		team := &store.Team{Name: "Ops"}
		mustCreate(t, db.DB, team)
		mustCreate(t, db.DB, &store.TeamMember{TeamID: team.ID, UserID: author.ID})
		f := newFlow(t, db, owner.ID)
		if err := db.Model(f).Update("team_id", team.ID).Error; err != nil {
			t.Fatal(err)
		}
		mustCreate(t, db.DB, &store.FlowVersion{FlowID: f.ID, Version: 1, Data: f.Data, CreatedBy: &author.ID})

		// User → team_members CASCADE, flow_versions.created_by SET NULL.
		if err := db.Delete(&store.User{}, author.ID).Error; err != nil {
			t.Fatal(err)
		}
		var members int64
		db.Model(&store.TeamMember{}).Count(&members)
		var v store.FlowVersion
		if err := db.First(&v).Error; err != nil {
			t.Fatal(err)
		}
		if members != 0 || v.CreatedBy != nil {
			t.Fatalf("after user delete: members=%d created_by=%v", members, v.CreatedBy)
		}

		// Team → flows.team_id SET NULL.
		if err := db.Delete(&store.Team{}, team.ID).Error; err != nil {
			t.Fatal(err)
		}
		var got store.Flow
		if err := db.First(&got, f.ID).Error; err != nil {
			t.Fatal(err)
		}
		if got.TeamID != nil {
			t.Fatalf("team_id = %d after team delete", *got.TeamID)
		}

		// Flow → flow_versions CASCADE.
		if err := db.Delete(&store.Flow{}, f.ID).Error; err != nil {
			t.Fatal(err)
		}
		var versions int64
		db.Model(&store.FlowVersion{}).Count(&versions)
		if versions != 0 {
			t.Fatalf("%d versions left after flow delete", versions)
		}
	})
}

func TestUniqueConstraints(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		newUser(t, db, "Ann@Example.com")
		err := store.Classify(db.Create(&store.User{Email: "ann@EXAMPLE.com", IsActive: true}).Error)
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate lower(email): err = %v, want ErrConflict", err)
		}
		// Several users may lack an external id; a set one is unique.
		mustCreate(t, db.DB, &store.User{Email: "b@example.com"})
		mustCreate(t, db.DB, &store.User{Email: "c@example.com", ExternalID: ptr("sub-1")})
		err = store.Classify(db.Create(&store.User{Email: "d@example.com", ExternalID: ptr("sub-1")}).Error)
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate external_id: err = %v, want ErrConflict", err)
		}

		mustCreate(t, db.DB, &store.Team{Name: "A"})
		if err := store.Classify(db.Create(&store.Team{Name: "A"}).Error); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate team: err = %v", err)
		}

		owner := newUser(t, db, "o@example.com")
		f := newFlow(t, db, owner.ID)
		mustCreate(t, db.DB, &store.FlowVersion{FlowID: f.ID, Version: 1, Data: f.Data})
		err = store.Classify(db.Create(&store.FlowVersion{FlowID: f.ID, Version: 1, Data: f.Data}).Error)
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate (flow_id, version): err = %v", err)
		}
		// Still usable after the failed statements.
		mustCreate(t, db.DB, &store.FlowVersion{FlowID: f.ID, Version: 2, Data: f.Data})
	})
}

func TestDefaultsTimesAndJSON(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		u := &store.User{Email: "u@example.com"}
		mustCreate(t, db.DB, u)
		if u.Role != "user" || u.IsActive {
			t.Fatalf("user defaults: role=%q is_active=%v", u.Role, u.IsActive)
		}
		data := store.JSON(`{"nodes": [{"id": "a", "data": {"type": "trigger-manual"}}], "edges": []}`)
		f := &store.Flow{Name: "F", OwnerID: u.ID, Data: data}
		mustCreate(t, db.DB, f)
		if f.Status != "draft" || f.Visibility != "private" || f.Revision != 1 || f.Version != 1 {
			t.Fatalf("flow defaults: %+v", f)
		}

		var got store.Flow
		if err := db.First(&got, f.ID).Error; err != nil {
			t.Fatal(err)
		}
		if !jsonEqual(t, got.Data, data) {
			t.Fatalf("data = %s, want %s", got.Data, data)
		}
		for name, pair := range map[string][2]time.Time{
			"created_at": {got.CreatedAt, f.CreatedAt},
			"updated_at": {got.UpdatedAt, f.UpdatedAt},
		} {
			if pair[0].Location() != time.UTC || !pair[0].Equal(pair[1]) || pair[0].Nanosecond()%int(time.Millisecond) != 0 {
				t.Errorf("%s read back %v (%v), written %v", name, pair[0], pair[0].Location(), pair[1])
			}
		}
		if time.Since(got.CreatedAt) > time.Minute || time.Since(got.CreatedAt) < 0 {
			t.Errorf("created_at %v is not now", got.CreatedAt)
		}

		// Set by hand: archived_at, and ordering on time columns.
		now := store.Now()
		if err := db.Model(&got).Updates(map[string]any{"archived_at": now, "status": "archived"}).Error; err != nil {
			t.Fatal(err)
		}
		var again store.Flow
		if err := db.Where("archived_at >= ? AND archived_at < ?", now, now.Add(time.Millisecond)).First(&again).Error; err != nil {
			t.Fatalf("range query on archived_at: %v", err)
		}
		if again.ArchivedAt == nil || !again.ArchivedAt.Equal(now) || again.ArchivedAt.Location() != time.UTC {
			t.Fatalf("archived_at = %v, want %v", again.ArchivedAt, now)
		}

		// Raw scan of a time column works on both dialects.
		var raw time.Time
		if err := db.Raw("SELECT created_at FROM flows WHERE id = ?", f.ID).Row().Scan(&raw); err != nil {
			t.Fatalf("raw scan of created_at: %v", err)
		}
		if !raw.Equal(f.CreatedAt) {
			t.Fatalf("raw created_at = %v, want %v", raw, f.CreatedAt)
		}

		// nil JSON is SQL NULL, refused by data NOT NULL.
		if err := db.Create(&store.Flow{Name: "nil data", OwnerID: u.ID}).Error; err == nil {
			t.Fatal("flow with nil data was stored")
		}
	})
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func TestJSONType(t *testing.T) {
	var j store.JSON
	if v, err := j.Value(); v != nil || err != nil {
		t.Fatalf("nil Value = %v, %v", v, err)
	}
	buf := []byte(`{"a":1}`)
	if err := j.Scan(buf); err != nil {
		t.Fatal(err)
	}
	buf[2] = 'b'
	if string(j) != `{"a":1}` {
		t.Fatalf("Scan kept the driver's buffer: %s", j)
	}
	if err := j.Scan(`[1]`); err != nil || string(j) != `[1]` {
		t.Fatalf("Scan string: %s, %v", j, err)
	}
	if err := j.Scan(42); err == nil {
		t.Fatal("Scan int accepted")
	}
	out, err := json.Marshal(struct {
		D store.JSON `json:"d"`
		N store.JSON `json:"n"`
	}{D: store.JSON(`{"x":[1,2]}`)})
	if err != nil || string(out) != `{"d":{"x":[1,2]},"n":null}` {
		t.Fatalf("Marshal = %s, %v", out, err)
	}
	var in struct{ D store.JSON }
	if err := json.Unmarshal([]byte(`{"D": {"y": true}}`), &in); err != nil || string(in.D) != `{"y": true}` {
		t.Fatalf("Unmarshal = %s, %v", in.D, err)
	}
}

func TestNotFoundAndTx(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		err := store.Classify(db.First(&store.User{}, 12345).Error)
		if !errors.Is(err, store.ErrNotFound) || !errors.Is(err, gorm.ErrRecordNotFound) {
			t.Fatalf("err = %v, want ErrNotFound wrapping gorm.ErrRecordNotFound", err)
		}
		if store.Classify(nil) != nil {
			t.Fatal("Classify(nil) != nil")
		}

		// A failing transaction leaves nothing behind; its error is classified.
		err = db.Tx(ctx, func(tx *gorm.DB) error {
			if _, ok := store.SQLTx(tx); !ok {
				t.Error("SQLTx: no *sql.Tx inside Tx")
			}
			if err := tx.Create(&store.User{Email: "t@example.com"}).Error; err != nil {
				return err
			}
			return tx.Create(&store.User{Email: "T@example.com"}).Error
		})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("Tx err = %v, want ErrConflict", err)
		}
		var n int64
		db.Model(&store.User{}).Count(&n)
		if n != 0 {
			t.Fatalf("%d users after rollback", n)
		}
		if _, ok := store.SQLTx(db.DB); ok {
			t.Error("SQLTx: found a transaction outside Tx")
		}

		if err := db.Tx(ctx, func(tx *gorm.DB) error {
			return tx.Create(&store.User{Email: "ok@example.com"}).Error
		}); err != nil {
			t.Fatal(err)
		}
		db.Model(&store.User{}).Count(&n)
		if n != 1 {
			t.Fatalf("%d users after commit", n)
		}
		if err := db.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := store.Open(ctx, "mysql", "x", 1); err == nil {
		t.Error("unknown dialect accepted")
	}
	if _, err := store.Open(ctx, store.SQLite, "", 1); err == nil {
		t.Error("empty sqlite path accepted")
	}
	// A DSN that already has a query string gets the pragmas joined with &.
	db, err := store.Open(ctx, store.SQLite, "sqlite:"+t.TempDir()+"/q.db?_pragma=cache_size(-2000)", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.Raw("PRAGMA journal_mode").Scan(&mode).Error; err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v", mode, err)
	}
	var timeout int
	if err := db.Raw("PRAGMA busy_timeout").Scan(&timeout).Error; err != nil || timeout != 5000 {
		t.Fatalf("busy_timeout = %d, %v", timeout, err)
	}
}
