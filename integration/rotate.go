package integration

import (
	"context"
	"fmt"

	"github.com/wataomi/wataomi/secretbox"
	"github.com/wataomi/wataomi/store"
)

// RotateStats counts what Rotate did.
type RotateStats struct {
	// Rotated rows were re-sealed under the current key.
	Rotated int
	// Changed rows were updated by someone else between the read and the write and are left as
	// that update wrote them (under the current key of the server that wrote it; a rerun picks up
	// any still under an old key).
	Changed int
	// Failed rows could not be opened with any configured key (their key is missing from
	// ENCRYPTION_KEYS_PREVIOUS); they are left untouched.
	Failed []int64
}

// rotateBatch is how many rows one query reads (short queries; PRODUCT §8 SQLite).
const rotateBatch = 200

// Rotate re-seals under the current key every integration whose secrets are sealed under another
// key (PRODUCT §8: keep the old key in ENCRYPTION_KEYS_PREVIOUS until this has run). Each row is
// swapped with one conditional UPDATE, so a concurrent change is never overwritten, and a rerun
// continues where a failed run stopped. It returns an error when any row failed.
func Rotate(ctx context.Context, db *store.DB, ring *secretbox.Keyring) (RotateStats, error) {
	var st RotateStats
	prefix := "v1:" + ring.CurrentKeyID() + ":"
	var after int64
	for {
		rows, err := store.IntegrationsNotSealedWith(ctx, db.DB, prefix, after, rotateBatch)
		if err != nil {
			return st, err
		}
		for _, r := range rows {
			after = r.ID
			plain, err := ring.Open(r.Ciphertext, AAD(r.ID))
			if err != nil {
				st.Failed = append(st.Failed, r.ID)
				continue
			}
			ct, err := ring.Seal(plain, AAD(r.ID))
			clear(plain)
			if err != nil {
				return st, err
			}
			ok, err := store.ReplaceIntegrationCiphertext(ctx, db.DB, r.ID, r.Ciphertext, ct)
			if err != nil {
				return st, err
			}
			if ok {
				st.Rotated++
			} else {
				st.Changed++
			}
		}
		if len(rows) < rotateBatch {
			break
		}
	}
	if len(st.Failed) > 0 {
		return st, fmt.Errorf("integration: %d integration(s) could not be opened with the configured keys (ids %v); add their key to ENCRYPTION_KEYS_PREVIOUS and run the rotation again", len(st.Failed), st.Failed)
	}
	return st, nil
}
