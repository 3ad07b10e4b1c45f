package media

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Stored is where a driver put a file.
type Stored struct {
	PublicID  string
	FileKey   string // the local driver's file name; "" for Cloudinary
	URL       string
	SecureURL string
	Bytes     int64
	Width     *int
	Height    *int
}

// Upload is one spooled file ready to store: File is a temporary file of Size bytes, positioned
// anywhere; the driver owns it afterwards only if it says so (Local renames it).
type Upload struct {
	File     *os.File
	Size     int64
	Kind     Kind
	Folder   string // wataomi/<user_id>
	Filename string // the client's name, for display only
	Width    *int
	Height   *int
}

// Driver stores and deletes media.
type Driver interface {
	Name() string
	// TempDir is where uploads are spooled before Put (on the driver's file system when it renames).
	TempDir() string
	Put(ctx context.Context, u *Upload) (Stored, error)
	Delete(ctx context.Context, publicID, fileKey, resourceType string) error
}

// ErrUnavailable wraps a storage failure the client cannot fix (503).
var ErrUnavailable = errors.New("media storage unavailable")

// Folder is a user's folder.
func Folder(userID int64) string { return fmt.Sprintf("wataomi/%d", userID) }

// randomName is n random bytes in base64url (no padding).
func randomName(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// Local keeps files in one directory, named by random keys (never the client's name).
type Local struct {
	Dir     string // MEDIA_LOCAL_DIR
	BaseURL string // PUBLIC_BASE_URL + /api/v1/media/files/
}

// KeyPattern is the shape of a local file key: 32 random bytes in base64url, a dot, the extension.
var KeyPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}\.[a-z0-9]{1,5}$`)

// NewLocal creates the directory and its spool subdirectory.
func NewLocal(dir, publicBaseURL string) (*Local, error) {
	l := &Local{Dir: dir, BaseURL: strings.TrimRight(publicBaseURL, "/") + "/api/v1/media/files/"}
	if err := os.MkdirAll(l.TempDir(), 0o750); err != nil {
		return nil, fmt.Errorf("media: %w", err)
	}
	return l, nil
}

func (l *Local) Name() string    { return "local" }
func (l *Local) TempDir() string { return filepath.Join(l.Dir, ".incoming") }

// Put moves the spooled file to <dir>/<key>.
func (l *Local) Put(_ context.Context, u *Upload) (Stored, error) {
	name := randomName(32)
	key := name + "." + u.Kind.Format
	dst := filepath.Join(l.Dir, key)
	if err := os.Chmod(u.File.Name(), 0o640); err != nil {
		return Stored{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if err := os.Rename(u.File.Name(), dst); err != nil {
		return Stored{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	url := l.BaseURL + key
	return Stored{PublicID: u.Folder + "/" + name, FileKey: key, URL: url, SecureURL: url, Bytes: u.Size, Width: u.Width, Height: u.Height}, nil
}

// Open opens a stored file by key; a key of the wrong shape is fs.ErrNotExist.
func (l *Local) Open(key string) (*os.File, error) {
	if !KeyPattern.MatchString(key) {
		return nil, os.ErrNotExist
	}
	return os.Open(filepath.Join(l.Dir, key))
}

// Delete removes a stored file; one already gone is not an error.
func (l *Local) Delete(_ context.Context, _, fileKey, _ string) error {
	if !KeyPattern.MatchString(fileKey) {
		return fmt.Errorf("media: bad file key")
	}
	if err := os.Remove(filepath.Join(l.Dir, fileKey)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}
