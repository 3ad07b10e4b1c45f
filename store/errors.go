package store

import (
	"errors"
	"fmt"
	"strings"

	gosqlite "github.com/glebarez/go-sqlite"
	"gorm.io/gorm"
	sqlite3 "modernc.org/sqlite/lib"
)

// Typed errors of the store. Test them with errors.Is; server/ maps them to
// problem types (ErrNotFound → 404, ErrConflict → 409, ErrForeignKey → 409
// in-use or 422, depending on the operation).
var (
	// ErrNotFound: the row does not exist (or is not visible to the query).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: a unique constraint was violated (users.lower(email),
	// users.external_id, teams.name, (flow_id, version), a primary key, ...).
	ErrConflict = errors.New("store: conflict")
	// ErrForeignKey: a foreign key was violated. On insert or update the row
	// points at a row that does not exist; on delete a RESTRICT reference
	// (flows.owner_id, ...) still points at the row. Handlers check
	// references first and answer 409 in-use; this is the safety net.
	ErrForeignKey = errors.New("store: foreign key violated")
)

// Classify maps a GORM or driver error to the store's typed errors. The
// result wraps both the typed error and the original (errors.Is matches
// either), so the driver's message stays available for logs. Other errors,
// nil and already classified errors are returned unchanged.
func Classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrConflict), errors.Is(err, ErrForeignKey):
		return err
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%w: %w", ErrConflict, err)
	case errors.Is(err, gorm.ErrForeignKeyViolated), isSQLiteRestrict(err):
		return fmt.Errorf("%w: %w", ErrForeignKey, err)
	}
	return err
}

// isSQLiteRestrict recognises the error of an ON DELETE RESTRICT on SQLite,
// which runs as a trigger (SQLITE_CONSTRAINT_TRIGGER) and so escapes the
// driver's translation to gorm.ErrForeignKeyViolated.
func isSQLiteRestrict(err error) bool {
	var serr *gosqlite.Error
	return errors.As(err, &serr) &&
		serr.Code() == sqlite3.SQLITE_CONSTRAINT_TRIGGER &&
		strings.Contains(serr.Error(), "FOREIGN KEY")
}
