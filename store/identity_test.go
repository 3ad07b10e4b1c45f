package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/wataomi/wataomi/store"
	"github.com/wataomi/wataomi/store/storetest"
)

func newRefresh(t *testing.T, db *gorm.DB, userID int64, family, hash string, expires time.Time) *store.RefreshToken {
	t.Helper()
	rt := &store.RefreshToken{FamilyID: family, UserID: userID, TokenHash: hash, ExpiresAt: expires}
	if err := store.CreateRefreshToken(context.Background(), db, rt); err != nil {
		t.Fatalf("create refresh token %s: %v", hash, err)
	}
	return rt
}

func newAPIToken(t *testing.T, db *gorm.DB, ownerID int64, name string) *store.APIToken {
	t.Helper()
	at := &store.APIToken{OwnerID: ownerID, Name: name, Prefix: "wto_" + name, TokenHash: fmt.Sprintf("h-%d-%s", ownerID, name),
		Scopes: store.StringList{"flow:read"}, ExpiresAt: store.Now().Add(90 * 24 * time.Hour)}
	if err := store.CreateAPIToken(context.Background(), db, at); err != nil {
		t.Fatalf("create api token %s: %v", name, err)
	}
	return at
}

func getRefresh(t *testing.T, db *gorm.DB, hash string) *store.RefreshToken {
	t.Helper()
	rt, err := store.GetRefreshTokenByHash(context.Background(), db, hash)
	if err != nil {
		t.Fatalf("get refresh %s: %v", hash, err)
	}
	return rt
}

func TestStringList(t *testing.T) {
	var l store.StringList
	if v, err := l.Value(); v != "[]" || err != nil {
		t.Fatalf("nil Value = %v, %v; want []", v, err)
	}
	if v, err := (store.StringList{"a", `b"c`}).Value(); v != `["a","b\"c"]` || err != nil {
		t.Fatalf("Value = %v, %v", v, err)
	}
	if err := l.Scan([]byte(`["x", "y"]`)); err != nil || !slices.Equal(l, store.StringList{"x", "y"}) {
		t.Fatalf("Scan bytes = %q, %v", l, err)
	}
	if err := l.Scan(`[]`); err != nil || l == nil || len(l) != 0 {
		t.Fatalf("Scan [] = %#v, %v; want empty non-nil", l, err)
	}
	if err := l.Scan(nil); err != nil || l != nil {
		t.Fatalf("Scan nil = %#v, %v", l, err)
	}
	for _, bad := range []any{42, `{"a":1}`, `not json`} {
		if err := l.Scan(bad); err == nil {
			t.Errorf("Scan(%v) accepted", bad)
		}
	}

	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := newUser(t, db, "s@example.com")
		scopes := store.StringList{"flow:read", "flow:update", "ünïcode:x"}
		a := &store.APIToken{OwnerID: u.ID, Name: "a", Prefix: "p", TokenHash: "ha", Scopes: scopes, ExpiresAt: store.Now().Add(time.Hour)}
		b := &store.APIToken{OwnerID: u.ID, Name: "b", Prefix: "p", TokenHash: "hb", ExpiresAt: store.Now().Add(time.Hour)}
		for _, tok := range []*store.APIToken{a, b} {
			if err := store.CreateAPIToken(ctx, db.DB, tok); err != nil {
				t.Fatal(err)
			}
		}
		got, err := store.GetAPIToken(ctx, db.DB, u.ID, a.ID)
		if err != nil || !slices.Equal(got.Scopes, scopes) {
			t.Fatalf("scopes read back %q, %v; want %q", got.Scopes, err, scopes)
		}
		got, err = store.GetAPITokenByHash(ctx, db.DB, "hb")
		if err != nil || got.Scopes == nil || len(got.Scopes) != 0 {
			t.Fatalf("nil scopes read back %#v, %v; want empty", got.Scopes, err)
		}
		// Stored as a JSON array on both dialects.
		var raw string
		if err := db.Raw("SELECT scopes FROM api_tokens WHERE id = ?", b.ID).Row().Scan(&raw); err != nil || raw != "[]" {
			t.Fatalf("raw scopes = %q, %v", raw, err)
		}
		if db.Dialect == store.Postgres {
			var n int
			if err := db.Raw("SELECT jsonb_array_length(scopes) FROM api_tokens WHERE id = ?", a.ID).Row().Scan(&n); err != nil || n != 3 {
				t.Fatalf("jsonb_array_length = %d, %v", n, err)
			}
		}
	})
}

// TestMarkRefreshUsedRace runs two rotations of the same token at once. On
// PostgreSQL both transactions are open before either writes; on SQLite the
// single connection serialises them. Exactly one must win.
func TestMarkRefreshUsedRace(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := newUser(t, db, "race@example.com")
		exp := store.Now().Add(time.Hour)

		// 1. The guarded UPDATE alone.
		rt := newRefresh(t, db.DB, u.ID, "fam-1", "hash-1", exp)
		succ := []*store.RefreshToken{
			newRefresh(t, db.DB, u.ID, "fam-1", "succ-a", exp),
			newRefresh(t, db.DB, u.ID, "fam-1", "succ-b", exp),
		}
		won := raceTx(t, db, func(i int, tx *gorm.DB) (bool, error) {
			ok, err := store.MarkRefreshUsed(ctx, tx, rt.ID, succ[i].ID, store.Now())
			if ok {
				time.Sleep(50 * time.Millisecond) // hold the row lock while the other waits
			}
			return ok, err
		})
		if len(won) != 1 {
			t.Fatalf("winners = %v, want exactly one", won)
		}
		got := getRefresh(t, db.DB, "hash-1")
		if got.UsedAt == nil || got.ReplacedByID == nil || *got.ReplacedByID != succ[won[0]].ID {
			t.Fatalf("after race: used_at=%v replaced_by=%v, want successor %d", got.UsedAt, got.ReplacedByID, succ[won[0]].ID)
		}
		// Used: a later attempt loses too.
		if ok, err := store.MarkRefreshUsed(ctx, db.DB, rt.ID, 0, store.Now()); ok || err != nil {
			t.Fatalf("mark of a used token = %v, %v", ok, err)
		}

		// 2. The whole rotation: lock, check, issue a successor, mark.
		newRefresh(t, db.DB, u.ID, "fam-2", "hash-2", exp)
		won = raceTx(t, db, func(i int, tx *gorm.DB) (bool, error) {
			cur, err := store.GetRefreshTokenByHash(ctx, tx, "hash-2")
			if err != nil {
				return false, err
			}
			if cur.UsedAt != nil || cur.RevokedAt != nil {
				return false, nil // reuse
			}
			next := &store.RefreshToken{FamilyID: cur.FamilyID, UserID: cur.UserID, TokenHash: fmt.Sprintf("hash-2-%d", i), ExpiresAt: exp}
			if err := store.CreateRefreshToken(ctx, tx, next); err != nil {
				return false, err
			}
			ok, err := store.MarkRefreshUsed(ctx, tx, cur.ID, next.ID, store.Now())
			if err == nil && !ok {
				err = errLostMark // roll back the successor
			}
			return ok, err
		})
		if len(won) != 1 {
			t.Fatalf("rotation winners = %v, want exactly one", won)
		}
		var successors int64
		db.Model(&store.RefreshToken{}).Where("family_id = ? AND token_hash <> ?", "fam-2", "hash-2").Count(&successors)
		if successors != 1 {
			t.Fatalf("%d successors issued, want 1", successors)
		}
	})
}

var errLostMark = errors.New("lost the guarded mark")

// raceTx runs fn(0) and fn(1) in two goroutines, each in its own transaction,
// and returns the indexes for which fn reported true and committed.
func raceTx(t *testing.T, db *store.DB, fn func(i int, tx *gorm.DB) (bool, error)) []int {
	t.Helper()
	ctx := context.Background()
	var (
		ready   sync.WaitGroup
		done    sync.WaitGroup
		mu      sync.Mutex
		winners []int
		start   = make(chan struct{})
	)
	ready.Add(2)
	for i := range 2 {
		done.Go(func() {
			<-start
			var ok bool
			err := db.Tx(ctx, func(tx *gorm.DB) error {
				if db.Dialect == store.Postgres {
					// Both transactions are open before either touches the row.
					if err := tx.Exec("SELECT 1").Error; err != nil {
						return err
					}
					ready.Done()
					ready.Wait()
				}
				var err error
				ok, err = fn(i, tx)
				return err
			})
			if err != nil && !errors.Is(err, errLostMark) {
				t.Errorf("caller %d: %v", i, err)
			}
			if err == nil && ok {
				mu.Lock()
				winners = append(winners, i)
				mu.Unlock()
			}
		})
	}
	close(start)
	done.Wait()
	return winners
}

func TestRevokeFamilies(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := newUser(t, db, "fam@example.com")
		other := newUser(t, db, "other@example.com")
		now := store.Now()
		live, expired := now.Add(time.Hour), now.Add(-time.Hour)

		a1 := newRefresh(t, db.DB, u.ID, "A", "a1", live)
		a2 := newRefresh(t, db.DB, u.ID, "A", "a2", live)
		if ok, err := store.MarkRefreshUsed(ctx, db.DB, a1.ID, a2.ID, now); !ok || err != nil {
			t.Fatalf("rotate a1: %v, %v", ok, err)
		}
		newRefresh(t, db.DB, u.ID, "B", "b1", live)
		newRefresh(t, db.DB, u.ID, "C", "c1", expired)
		newRefresh(t, db.DB, u.ID, "D", "d1", live)
		newRefresh(t, db.DB, other.ID, "E", "e1", live)

		// One family.
		if n, err := store.RevokeFamily(ctx, db.DB, "D", now); n != 1 || err != nil {
			t.Fatalf("RevokeFamily D = %d, %v", n, err)
		}
		if n, err := store.RevokeFamily(ctx, db.DB, "D", now.Add(time.Second)); n != 0 || err != nil {
			t.Fatalf("RevokeFamily D again = %d, %v", n, err)
		}
		if d := getRefresh(t, db.DB, "d1"); d.RevokedAt == nil || !d.RevokedAt.Equal(now) {
			t.Fatalf("d1 revoked_at = %v, want %v (the first revocation)", d.RevokedAt, now)
		}
		if ok, err := store.MarkRefreshUsed(ctx, db.DB, getRefresh(t, db.DB, "d1").ID, 0, now); ok || err != nil {
			t.Fatalf("mark of a revoked token = %v, %v", ok, err)
		}
		if n, err := store.RevokeFamily(ctx, db.DB, "unknown", now); n != 0 || err != nil {
			t.Fatalf("RevokeFamily unknown = %d, %v", n, err)
		}

		// Every family of a user: A and B were live, C only expired, D already revoked.
		at := now.Add(2 * time.Second)
		fams, err := store.RevokeUserFamilies(ctx, db.DB, u.ID, at)
		if err != nil || !slices.Equal(fams, []string{"A", "B"}) {
			t.Fatalf("RevokeUserFamilies = %q, %v; want [A B]", fams, err)
		}
		var toks []store.RefreshToken
		db.Where("user_id = ?", u.ID).Find(&toks)
		for _, tk := range toks {
			want := at
			if tk.FamilyID == "D" {
				want = now
			}
			if tk.RevokedAt == nil || !tk.RevokedAt.Equal(want) {
				t.Errorf("%s revoked_at = %v, want %v", tk.TokenHash, tk.RevokedAt, want)
			}
		}
		if e := getRefresh(t, db.DB, "e1"); e.RevokedAt != nil {
			t.Fatalf("another user's token revoked")
		}
		fams, err = store.RevokeUserFamilies(ctx, db.DB, u.ID, at)
		if err != nil || fams == nil || len(fams) != 0 {
			t.Fatalf("RevokeUserFamilies again = %#v, %v; want empty", fams, err)
		}
		// Inside a transaction too.
		err = db.Tx(ctx, func(tx *gorm.DB) error {
			fams, err = store.RevokeUserFamilies(ctx, tx, other.ID, at)
			return err
		})
		if err != nil || !slices.Equal(fams, []string{"E"}) {
			t.Fatalf("RevokeUserFamilies in tx = %q, %v", fams, err)
		}

		if _, err := store.GetRefreshTokenByHash(ctx, db.DB, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown hash: %v", err)
		}
		if got := getRefresh(t, db.DB, "a1"); got.IssuedAt.IsZero() || got.IssuedAt.Location() != time.UTC {
			t.Fatalf("issued_at = %v", got.IssuedAt)
		}
	})
}

func TestIdentityUniqueConstraints(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := newUser(t, db, "u@example.com")
		v := newUser(t, db, "v@example.com")
		exp := store.Now().Add(time.Hour)

		newRefresh(t, db.DB, u.ID, "F", "same", exp)
		err := store.CreateRefreshToken(ctx, db.DB, &store.RefreshToken{FamilyID: "G", UserID: v.ID, TokenHash: "same", ExpiresAt: exp})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate refresh token_hash: %v, want ErrConflict", err)
		}
		err = store.CreateRefreshToken(ctx, db.DB, &store.RefreshToken{FamilyID: "G", UserID: 999999, TokenHash: "x", ExpiresAt: exp})
		if !errors.Is(err, store.ErrForeignKey) {
			t.Fatalf("refresh token of an unknown user: %v, want ErrForeignKey", err)
		}

		newAPIToken(t, db.DB, u.ID, "ci")
		newAPIToken(t, db.DB, v.ID, "ci") // the name is unique per owner only
		dup := &store.APIToken{OwnerID: u.ID, Name: "ci", Prefix: "p", TokenHash: "other", ExpiresAt: exp}
		if err := store.CreateAPIToken(ctx, db.DB, dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate (owner_id, name): %v, want ErrConflict", err)
		}
		dup = &store.APIToken{OwnerID: u.ID, Name: "ci2", Prefix: "p", TokenHash: fmt.Sprintf("h-%d-ci", v.ID), ExpiresAt: exp}
		if err := store.CreateAPIToken(ctx, db.DB, dup); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate api token_hash: %v, want ErrConflict", err)
		}
		// A failed insert inside a transaction surfaces as ErrConflict from Tx.
		err = db.Tx(ctx, func(tx *gorm.DB) error {
			return store.CreateAPIToken(ctx, tx, &store.APIToken{OwnerID: v.ID, Name: "ci", Prefix: "p", TokenHash: "z", ExpiresAt: exp})
		})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate in Tx: %v", err)
		}
	})
}

func TestIdentityOnDelete(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		gone := newUser(t, db, "gone@example.com")
		keep := newUser(t, db, "keep@example.com")
		exp := store.Now().Add(time.Hour)

		r1 := newRefresh(t, db.DB, gone.ID, "F", "r1", exp)
		r2 := newRefresh(t, db.DB, gone.ID, "F", "r2", exp)
		if ok, err := store.MarkRefreshUsed(ctx, db.DB, r1.ID, r2.ID, store.Now()); !ok || err != nil {
			t.Fatalf("rotate: %v, %v", ok, err)
		}
		tok := newAPIToken(t, db.DB, gone.ID, "t")
		k1 := newRefresh(t, db.DB, keep.ID, "K", "k1", exp)
		k2 := newRefresh(t, db.DB, keep.ID, "K", "k2", exp)
		if ok, err := store.MarkRefreshUsed(ctx, db.DB, k1.ID, k2.ID, store.Now()); !ok || err != nil {
			t.Fatalf("rotate: %v, %v", ok, err)
		}
		newAPIToken(t, db.DB, keep.ID, "t")

		changes := store.JSON(`{"fields":["role"],"before":{"role":"user"},"after":{"role":"admin"}}`)
		audit := []*store.AuditLog{
			{Action: "token.created", ActorType: store.ActorUser, ActorUserID: &gone.ID, ActorDisplay: gone.Email, ResourceType: "api_token", ResourceID: &tok.ID},
			{Action: "flow.update", ActorType: store.ActorAPIToken, ActorUserID: &gone.ID, APITokenID: &tok.ID, ActorDisplay: "t", ResourceType: "flow", ResourceID: ptr(int64(7))},
			{Action: "user.role_changed", ActorType: store.ActorUser, ActorUserID: &keep.ID, ActorDisplay: keep.Email, ResourceType: "user", ResourceID: &gone.ID, Changes: &changes},
		}
		for _, a := range audit {
			if err := store.InsertAudit(ctx, db.DB, a); err != nil {
				t.Fatal(err)
			}
		}

		// refresh_tokens.replaced_by_id SET NULL when the successor goes.
		if err := db.Delete(&store.RefreshToken{}, k2.ID).Error; err != nil {
			t.Fatal(err)
		}
		if k := getRefresh(t, db.DB, "k1"); k.ReplacedByID != nil {
			t.Fatalf("replaced_by_id = %d after the successor's delete", *k.ReplacedByID)
		}

		if err := store.DeleteUser(ctx, db.DB, gone.ID); err != nil {
			t.Fatal(err)
		}
		var n int64
		db.Model(&store.RefreshToken{}).Where("user_id = ?", gone.ID).Count(&n)
		if n != 0 {
			t.Fatalf("%d refresh tokens left after the user's delete", n)
		}
		db.Model(&store.APIToken{}).Where("owner_id = ?", gone.ID).Count(&n)
		if n != 0 {
			t.Fatalf("%d api tokens left after the user's delete", n)
		}
		db.Model(&store.RefreshToken{}).Count(&n)
		if n != 1 {
			t.Fatalf("%d refresh tokens in all, want the other user's 1", n)
		}
		db.Model(&store.APIToken{}).Count(&n)
		if n != 1 {
			t.Fatalf("%d api tokens in all, want the other user's 1", n)
		}
		var rows []store.AuditLog
		db.Order("id").Find(&rows)
		if len(rows) != 3 {
			t.Fatalf("%d audit rows survive, want 3", len(rows))
		}
		if r := rows[1]; r.ActorUserID == nil || *r.ActorUserID != gone.ID || r.APITokenID == nil || *r.APITokenID != tok.ID || r.ActorDisplay != "t" {
			t.Fatalf("audit row changed: %+v", r)
		}

		if err := store.DeleteUser(ctx, db.DB, gone.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete of a deleted user: %v, want ErrNotFound", err)
		}
		newFlow(t, db, keep.ID)
		if err := store.DeleteUser(ctx, db.DB, keep.ID); !errors.Is(err, store.ErrForeignKey) {
			t.Fatalf("delete of a flow owner: %v, want ErrForeignKey", err)
		}
	})
}

func TestAPITokenQueries(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := newUser(t, db, "owner@example.com")
		v := newUser(t, db, "v@example.com")
		base := store.Now().Add(-time.Hour)
		mk := func(name string, created time.Time, lastUsed *time.Time) *store.APIToken {
			tk := &store.APIToken{OwnerID: u.ID, Name: name, Prefix: "wto_" + name, TokenHash: "h" + name,
				Scopes: store.StringList{"flow:read"}, ExpiresAt: base.Add(48 * time.Hour), CreatedAt: created, LastUsedAt: lastUsed}
			if err := store.CreateAPIToken(ctx, db.DB, tk); err != nil {
				t.Fatal(err)
			}
			return tk
		}
		b := mk("b", base.Add(1*time.Minute), ptr(base.Add(10*time.Minute)))
		c := mk("c", base.Add(2*time.Minute), nil)
		a := mk("a", base.Add(3*time.Minute), ptr(base.Add(20*time.Minute)))
		d := mk("d", base.Add(3*time.Minute), nil) // same created_at as a: id breaks the tie
		newAPIToken(t, db.DB, v.ID, "x")

		list := func(sort []string, page, size int) ([]int64, int64) {
			t.Helper()
			rows, total, err := store.ListAPITokens(ctx, db.DB, u.ID, sort, page, size)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]int64, len(rows))
			for i, r := range rows {
				ids[i] = r.ID
			}
			return ids, total
		}
		for _, tc := range []struct {
			sort []string
			want []int64
		}{
			{nil, []int64{d.ID, a.ID, c.ID, b.ID}},
			{[]string{"created_at"}, []int64{b.ID, c.ID, a.ID, d.ID}},
			{[]string{"name"}, []int64{a.ID, b.ID, c.ID, d.ID}},
			{[]string{"-name"}, []int64{d.ID, c.ID, b.ID, a.ID}},
			{[]string{"last_used_at"}, []int64{b.ID, a.ID, c.ID, d.ID}},  // never used last
			{[]string{"-last_used_at"}, []int64{a.ID, b.ID, d.ID, c.ID}}, // never used last; id DESC
			{[]string{"-last_used_at", "name"}, []int64{a.ID, b.ID, c.ID, d.ID}},
		} {
			if got, total := list(tc.sort, 1, 10); !slices.Equal(got, tc.want) || total != 4 {
				t.Errorf("sort %q = %v (total %d), want %v (4)", tc.sort, got, total, tc.want)
			}
		}
		if got, total := list([]string{"name"}, 2, 3); !slices.Equal(got, []int64{d.ID}) || total != 4 {
			t.Errorf("page 2 = %v (total %d)", got, total)
		}

		if got, err := store.GetAPIToken(ctx, db.DB, u.ID, a.ID); err != nil || got.Name != "a" || !slices.Equal(got.Scopes, store.StringList{"flow:read"}) {
			t.Fatalf("GetAPIToken = %+v, %v", got, err)
		}
		if _, err := store.GetAPIToken(ctx, db.DB, v.ID, a.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another owner's token: %v, want ErrNotFound", err)
		}
		if got, err := store.GetAPITokenByHash(ctx, db.DB, "hc"); err != nil || got.ID != c.ID {
			t.Fatalf("GetAPITokenByHash = %+v, %v", got, err)
		}
		if _, err := store.GetAPITokenByHash(ctx, db.DB, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown hash: %v", err)
		}

		// Revoke: the owner only, idempotent, the first time kept.
		t1 := store.Now()
		if err := store.RevokeAPIToken(ctx, db.DB, v.ID, a.ID, t1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoke by another owner: %v, want ErrNotFound", err)
		}
		if err := store.RevokeAPIToken(ctx, db.DB, u.ID, 987654, t1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoke of an unknown token: %v, want ErrNotFound", err)
		}
		if err := store.RevokeAPIToken(ctx, db.DB, u.ID, a.ID, t1); err != nil {
			t.Fatal(err)
		}
		if err := store.RevokeAPIToken(ctx, db.DB, u.ID, a.ID, t1.Add(time.Minute)); err != nil {
			t.Fatalf("second revoke: %v", err)
		}
		got, _ := store.GetAPIToken(ctx, db.DB, u.ID, a.ID)
		if got.RevokedAt == nil || !got.RevokedAt.Equal(t1) || !got.UpdatedAt.Equal(t1) {
			t.Fatalf("revoked_at = %v updated_at = %v, want %v", got.RevokedAt, got.UpdatedAt, t1)
		}
		if _, total := list(nil, 1, 10); total != 4 {
			t.Fatalf("a revoked token left the list: total %d", total)
		}
	})
}

func TestTouchAPIToken(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := newUser(t, db, "touch@example.com")
		tok := newAPIToken(t, db.DB, u.ID, "t")
		t0 := store.Now()
		check := func(step string, wantAt time.Time, wantIP *string) {
			t.Helper()
			got, err := store.GetAPIToken(ctx, db.DB, u.ID, tok.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.LastUsedAt == nil || !got.LastUsedAt.Equal(wantAt) {
				t.Fatalf("%s: last_used_at = %v, want %v", step, got.LastUsedAt, wantAt)
			}
			if (got.LastUsedIP == nil) != (wantIP == nil) || (wantIP != nil && *got.LastUsedIP != *wantIP) {
				t.Fatalf("%s: last_used_ip = %v, want %v", step, got.LastUsedIP, wantIP)
			}
			if !got.UpdatedAt.Equal(tok.UpdatedAt) {
				t.Fatalf("%s: updated_at moved", step)
			}
		}
		touch := func(ip string, at time.Time) {
			t.Helper()
			if err := store.TouchAPIToken(ctx, db.DB, tok.ID, ip, at); err != nil {
				t.Fatal(err)
			}
		}
		touch("10.0.0.1", t0)
		check("first use", t0, ptr("10.0.0.1"))
		touch("10.0.0.2", t0.Add(30*time.Second))
		check("within a minute", t0, ptr("10.0.0.1"))
		touch("10.0.0.3", t0.Add(59*time.Second+999*time.Millisecond))
		check("just under a minute", t0, ptr("10.0.0.1"))
		touch("10.0.0.4", t0.Add(time.Minute))
		check("a minute later", t0.Add(time.Minute), ptr("10.0.0.4"))
		touch("", t0.Add(3*time.Minute))
		check("no ip", t0.Add(3*time.Minute), nil)
		if err := store.TouchAPIToken(ctx, db.DB, 987654, "x", t0); err != nil {
			t.Fatalf("touch of an unknown token: %v", err)
		}
	})
}

func TestUserLookupsAndSave(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		u := &store.User{Email: "Ann.Lee@Example.com", Name: "Ann LEE", ExternalID: ptr("sub-ann"), IsActive: true}
		if err := store.SaveUser(ctx, db.DB, u); err != nil {
			t.Fatal(err)
		}
		if u.ID == 0 || u.Role != "user" || u.SearchText != "ann lee ann.lee@example.com" {
			t.Fatalf("created %+v", u)
		}
		for _, email := range []string{"ann.lee@example.com", "ANN.LEE@EXAMPLE.COM", "Ann.Lee@Example.com"} {
			if got, err := store.GetUserByEmail(ctx, db.DB, email); err != nil || got.ID != u.ID {
				t.Fatalf("GetUserByEmail(%s) = %v, %v", email, got, err)
			}
		}
		if _, err := store.GetUserByEmail(ctx, db.DB, "ann%"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetUserByEmail pattern: %v", err)
		}
		if got, err := store.GetUserByExternalID(ctx, db.DB, "sub-ann"); err != nil || got.ID != u.ID {
			t.Fatalf("GetUserByExternalID = %v, %v", got, err)
		}
		if _, err := store.GetUserByExternalID(ctx, db.DB, "sub-x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown external id: %v", err)
		}
		if _, err := store.GetUser(ctx, db.DB, 987654); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown id: %v", err)
		}

		u.Name, u.Role, u.IsActive = "Annie", "super_admin", false
		if err := store.SaveUser(ctx, db.DB, u); err != nil {
			t.Fatal(err)
		}
		got, err := store.GetUser(ctx, db.DB, u.ID)
		if err != nil || got.Name != "Annie" || got.SearchText != "annie ann.lee@example.com" || got.IsActive || got.Role != "super_admin" {
			t.Fatalf("after save: %+v, %v", got, err)
		}
		if err := store.SaveUser(ctx, db.DB, &store.User{Email: "ANN.lee@example.com", Name: "dup"}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate email: %v, want ErrConflict", err)
		}

		// Active super_admins only.
		for i, active := range []bool{true, true, false} {
			su := &store.User{Email: fmt.Sprintf("su%d@example.com", i), Role: "super_admin", IsActive: active}
			if err := store.SaveUser(ctx, db.DB, su); err != nil {
				t.Fatal(err)
			}
		}
		if err := store.SaveUser(ctx, db.DB, &store.User{Email: "admin@example.com", Role: "admin", IsActive: true}); err != nil {
			t.Fatal(err)
		}
		if n, err := store.CountActiveSuperAdmins(ctx, db.DB); n != 2 || err != nil {
			t.Fatalf("CountActiveSuperAdmins = %d, %v; want 2", n, err)
		}
	})
}

func TestListUsers(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		base := store.Now().Add(-time.Hour)
		mk := func(i int, name, email, role string, active bool, lastLogin *time.Time) *store.User {
			u := &store.User{Name: name, Email: email, Role: role, IsActive: active, LastLoginAt: lastLogin,
				CreatedAt: base.Add(time.Duration(i) * time.Minute)}
			if err := store.SaveUser(ctx, db.DB, u); err != nil {
				t.Fatal(err)
			}
			return u
		}
		ann := mk(1, "Ann Lee", "ann@example.com", "admin", true, ptr(base.Add(5*time.Minute)))
		bob := mk(2, "Bob", "bob.ann@example.com", "editor", true, nil)
		cat := mk(3, "Çat 100%", "cat@example.com", "editor", false, ptr(base.Add(time.Minute)))
		dan := mk(4, "Dan_X", "dan@example.com", "user", true, nil)
		team := &store.Team{Name: "Ops", SearchText: "ops"}
		other := &store.Team{Name: "Dev", SearchText: "dev"}
		mustCreate(t, db.DB, team)
		mustCreate(t, db.DB, other)
		mustCreate(t, db.DB, &store.TeamMember{TeamID: team.ID, UserID: ann.ID})
		mustCreate(t, db.DB, &store.TeamMember{TeamID: team.ID, UserID: cat.ID})
		mustCreate(t, db.DB, &store.TeamMember{TeamID: other.ID, UserID: ann.ID})

		ids := func(us []store.User) []int64 {
			out := make([]int64, len(us))
			for i, u := range us {
				out[i] = u.ID
			}
			return out
		}
		for name, tc := range map[string]struct {
			f     store.UserFilter
			want  []int64
			total int64
		}{
			"default":            {store.UserFilter{}, []int64{dan.ID, cat.ID, bob.ID, ann.ID}, 4},
			"role":               {store.UserFilter{Role: "editor"}, []int64{cat.ID, bob.ID}, 2},
			"inactive":           {store.UserFilter{IsActive: ptr(false)}, []int64{cat.ID}, 1},
			"active":             {store.UserFilter{IsActive: ptr(true), Sort: []string{"created_at"}}, []int64{ann.ID, bob.ID, dan.ID}, 3},
			"team":               {store.UserFilter{TeamID: team.ID, Sort: []string{"name"}}, []int64{ann.ID, cat.ID}, 2},
			"team and active":    {store.UserFilter{TeamID: team.ID, IsActive: ptr(true)}, []int64{ann.ID}, 1},
			"search email+name":  {store.UserFilter{Search: "ANN", Sort: []string{"email"}}, []int64{ann.ID, bob.ID}, 2},
			"search folded":      {store.UserFilter{Search: "çAT"}, []int64{cat.ID}, 1},
			"search percent":     {store.UserFilter{Search: "%"}, []int64{cat.ID}, 1},
			"search underscore":  {store.UserFilter{Search: "_"}, []int64{dan.ID}, 1},
			"search 100%":        {store.UserFilter{Search: "0%"}, []int64{cat.ID}, 1},
			"search no match":    {store.UserFilter{Search: "zzz"}, []int64{}, 0},
			"sort -email":        {store.UserFilter{Sort: []string{"-email"}}, []int64{dan.ID, cat.ID, bob.ID, ann.ID}, 4},
			"sort last_login":    {store.UserFilter{Sort: []string{"last_login_at"}}, []int64{cat.ID, ann.ID, bob.ID, dan.ID}, 4},
			"sort -last_login":   {store.UserFilter{Sort: []string{"-last_login_at"}}, []int64{ann.ID, cat.ID, dan.ID, bob.ID}, 4},
			"page":               {store.UserFilter{Sort: []string{"email"}, Page: 2, PageSize: 3}, []int64{dan.ID}, 4},
			"page size":          {store.UserFilter{Sort: []string{"email"}, Page: 1, PageSize: 2}, []int64{ann.ID, bob.ID}, 4},
			"role and no member": {store.UserFilter{Role: "user", TeamID: team.ID}, []int64{}, 0},
		} {
			rows, total, err := store.ListUsers(ctx, db.DB, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := ids(rows); !slices.Equal(got, tc.want) || total != tc.total {
				t.Errorf("%s: %v (total %d), want %v (%d)", name, got, total, tc.want, tc.total)
			}
		}

		// The directory: active users, by name, searching names only.
		rows, total, err := store.ListDirectory(ctx, db.DB, "", 1, 10)
		if err != nil || !slices.Equal(ids(rows), []int64{ann.ID, bob.ID, dan.ID}) || total != 3 {
			t.Fatalf("directory = %v (%d), %v", ids(rows), total, err)
		}
		rows, total, err = store.ListDirectory(ctx, db.DB, " ann ", 1, 10)
		if err != nil || !slices.Equal(ids(rows), []int64{ann.ID}) || total != 1 {
			t.Fatalf("directory search ann = %v (%d), %v; bob's email must not match", ids(rows), total, err)
		}
		for _, q := range []string{"example", "lee ann", "çat", "@"} {
			rows, total, err = store.ListDirectory(ctx, db.DB, q, 1, 10)
			if err != nil || len(rows) != 0 || total != 0 {
				t.Fatalf("directory search %q = %v (%d), %v; want none", q, ids(rows), total, err)
			}
		}
		rows, total, err = store.ListDirectory(ctx, db.DB, "n", 2, 1)
		if err != nil || !slices.Equal(ids(rows), []int64{dan.ID}) || total != 2 {
			t.Fatalf("directory page 2 = %v (%d), %v", ids(rows), total, err)
		}
	})
}

func TestTeamIDsOf(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		a, b, c := newUser(t, db, "a@example.com"), newUser(t, db, "b@example.com"), newUser(t, db, "c@example.com")
		t1, t2 := &store.Team{Name: "T1"}, &store.Team{Name: "T2"}
		mustCreate(t, db.DB, t1)
		mustCreate(t, db.DB, t2)
		mustCreate(t, db.DB, &store.TeamMember{TeamID: t2.ID, UserID: a.ID})
		mustCreate(t, db.DB, &store.TeamMember{TeamID: t1.ID, UserID: a.ID})
		mustCreate(t, db.DB, &store.TeamMember{TeamID: t2.ID, UserID: b.ID})
		mustCreate(t, db.DB, &store.TeamMember{TeamID: t1.ID, UserID: c.ID})

		var queries int
		count := func(*gorm.DB) { queries++ }
		if err := db.Callback().Query().After("gorm:query").Register("test:count_queries", count); err != nil {
			t.Fatal(err)
		}
		if err := db.Callback().Row().After("gorm:row").Register("test:count_rows", count); err != nil {
			t.Fatal(err)
		}
		got, err := store.TeamIDsOf(ctx, db.DB, []int64{a.ID, b.ID, 987654})
		if err != nil {
			t.Fatal(err)
		}
		if queries != 1 {
			t.Fatalf("%d queries, want 1", queries)
		}
		if len(got) != 3 || !slices.Equal(got[a.ID], []int64{t1.ID, t2.ID}) || !slices.Equal(got[b.ID], []int64{t2.ID}) ||
			got[987654] == nil || len(got[987654]) != 0 {
			t.Fatalf("TeamIDsOf = %v", got)
		}
		got, err = store.TeamIDsOf(ctx, db.DB, nil)
		if err != nil || got == nil || len(got) != 0 || queries != 1 {
			t.Fatalf("TeamIDsOf(nil) = %v, %v after %d queries", got, err, queries)
		}
	})
}

func TestTransferOwnership(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		from, to, third := newUser(t, db, "from@example.com"), newUser(t, db, "to@example.com"), newUser(t, db, "third@example.com")
		shared, foreign := &store.Team{Name: "Shared"}, &store.Team{Name: "Foreign"}
		mustCreate(t, db.DB, shared)
		mustCreate(t, db.DB, foreign)
		mustCreate(t, db.DB, &store.TeamMember{TeamID: shared.ID, UserID: to.ID})
		mustCreate(t, db.DB, &store.TeamMember{TeamID: shared.ID, UserID: from.ID})
		mustCreate(t, db.DB, &store.TeamMember{TeamID: foreign.ID, UserID: from.ID})

		mk := func(owner int64, visibility string, team *int64) *store.Flow {
			f := &store.Flow{Name: "F", OwnerID: owner, Visibility: visibility, TeamID: team, Data: store.DefaultFlowData()}
			mustCreate(t, db.DB, f)
			return f
		}
		private := mk(from.ID, "private", nil)
		public := mk(from.ID, "public", &foreign.ID) // not a team flow: keeps its team
		inShared := mk(from.ID, "team", &shared.ID)
		inForeign := mk(from.ID, "team", &foreign.ID)
		noTeam := mk(from.ID, "team", nil)
		othersTeamFlow := mk(third.ID, "team", &foreign.ID)
		toOwn := mk(to.ID, "team", &foreign.ID)

		err := db.Tx(ctx, func(tx *gorm.DB) error {
			if err := store.TransferOwnership(ctx, tx, from.ID, to.ID); err != nil {
				return err
			}
			return store.DeleteUser(ctx, tx, from.ID)
		})
		if err != nil {
			t.Fatal(err)
		}
		type want struct {
			owner      int64
			visibility string
			team       *int64
			revision   int
		}
		for name, tc := range map[string]struct {
			f *store.Flow
			w want
		}{
			"private":       {private, want{to.ID, "private", nil, 2}},
			"public":        {public, want{to.ID, "public", &foreign.ID, 2}},
			"team shared":   {inShared, want{to.ID, "team", &shared.ID, 2}},
			"team foreign":  {inForeign, want{to.ID, "private", nil, 3}},
			"team no team":  {noTeam, want{to.ID, "private", nil, 3}},
			"another owner": {othersTeamFlow, want{third.ID, "team", &foreign.ID, 1}},
			"new owner's":   {toOwn, want{to.ID, "team", &foreign.ID, 1}},
		} {
			var got store.Flow
			if err := db.First(&got, tc.f.ID).Error; err != nil {
				t.Fatal(err)
			}
			teamOK := (got.TeamID == nil) == (tc.w.team == nil) && (tc.w.team == nil || *got.TeamID == *tc.w.team)
			if got.OwnerID != tc.w.owner || got.Visibility != tc.w.visibility || !teamOK || got.Revision != tc.w.revision {
				t.Errorf("%s: owner=%d visibility=%s team=%v revision=%d, want %+v", name, got.OwnerID, got.Visibility, got.TeamID, got.Revision, tc.w)
			}
		}
		if err := store.TransferOwnership(ctx, db.DB, to.ID, 987654); !errors.Is(err, store.ErrForeignKey) {
			t.Fatalf("transfer to an unknown user: %v, want ErrForeignKey", err)
		}
		if err := store.TransferOwnership(ctx, db.DB, to.ID, to.ID); err != nil {
			t.Fatalf("transfer to oneself: %v", err)
		}
	})
}

func TestAuditLogs(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		changes := store.JSON(`{"fields":["name"],"before":{"name":"a"},"after":{"name":"b"}}`)
		meta := store.JSON(`{"source":"test"}`)
		t0 := store.Now().Add(-time.Minute)
		first := &store.AuditLog{OccurredAt: t0, Action: "flow.update", ActorType: store.ActorSystem, ActorDisplay: "system",
			ResourceType: "flow", ResourceID: ptr(int64(5)), RequestID: ptr("req-1"), IP: ptr("10.0.0.1"), Changes: &changes, Metadata: &meta}
		second := &store.AuditLog{Action: "flow.delete", Status: store.AuditDenied, ActorType: store.ActorWebhook, ResourceType: "flow", ResourceID: ptr(int64(5))}
		unrelated := &store.AuditLog{Action: "flow.update", ActorType: store.ActorSystem, ResourceType: "flow", ResourceID: ptr(int64(6))}
		for _, a := range []*store.AuditLog{first, second, unrelated} {
			if err := store.InsertAudit(ctx, db.DB, a); err != nil {
				t.Fatal(err)
			}
		}
		if first.Status != store.AuditSuccess || second.OccurredAt.IsZero() {
			t.Fatalf("defaults: status=%q occurred_at=%v", first.Status, second.OccurredAt)
		}
		rows, err := store.ListAuditForResource(ctx, db.DB, "flow", 5)
		if err != nil || len(rows) != 2 || rows[0].ID != second.ID || rows[1].ID != first.ID {
			t.Fatalf("ListAuditForResource = %+v, %v; want newest first", rows, err)
		}
		got := rows[1]
		if !got.OccurredAt.Equal(t0) || got.OccurredAt.Location() != time.UTC || *got.RequestID != "req-1" || *got.IP != "10.0.0.1" ||
			got.Changes == nil || !jsonEqual(t, *got.Changes, changes) || got.Metadata == nil || !jsonEqual(t, *got.Metadata, meta) {
			t.Fatalf("read back %+v", got)
		}
		if rows[0].Changes != nil || rows[0].Metadata != nil || rows[0].Status != store.AuditDenied {
			t.Fatalf("nil JSON read back as %v / %v, status %q", rows[0].Changes, rows[0].Metadata, rows[0].Status)
		}
		var nulls int64
		db.Model(&store.AuditLog{}).Where("changes IS NULL AND metadata IS NULL").Count(&nulls)
		if nulls != 2 {
			t.Fatalf("%d rows with NULL changes and metadata, want 2", nulls)
		}
		if rows, err := store.ListAuditForResource(ctx, db.DB, "bot", 5); err != nil || rows == nil || len(rows) != 0 {
			t.Fatalf("other resource type = %v, %v", rows, err)
		}
	})
}
