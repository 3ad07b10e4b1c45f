package config

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

const secretKeyFile = "secret.key"

// loadOrCreateSecretKey returns the development signing key in dataDir,
// creating it (32 random bytes, mode 0600, directory 0700) on first use so
// that tokens survive restarts. The file is published with a hard link from
// a temporary file, which never overwrites, so concurrent first starts agree
// on one key and never read a half-written file. note is a warning for the
// caller, or "".
func loadOrCreateSecretKey(dataDir string) (key []byte, note string, err error) {
	path := filepath.Join(dataDir, secretKeyFile)
	if key, note, err := readSecretKey(path); !errors.Is(err, fs.ErrNotExist) {
		return key, note, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", err
	}
	key = make([]byte, MinSecretKeyBytes)
	if _, err := rand.Read(key); err != nil {
		return nil, "", err
	}
	tmp, err := os.CreateTemp(dataDir, ".secret.key-*") // created 0600
	if err != nil {
		return nil, "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return nil, "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, "", err
	}
	if err := tmp.Close(); err != nil {
		return nil, "", err
	}
	err = os.Link(tmp.Name(), path)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		// Filesystems without hard links: exclusive create instead.
		err = writeExclusive(path, key)
	}
	if errors.Is(err, fs.ErrExist) {
		return readSecretKey(path) // another process won the race
	}
	if err != nil {
		return nil, "", err
	}
	return key, "", nil
}

func writeExclusive(path string, key []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(key)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

func readSecretKey(path string) ([]byte, string, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	if len(key) < MinSecretKeyBytes {
		return nil, "", fmt.Errorf("%s holds %d bytes, fewer than %d; delete it to generate a new key", path, len(key), MinSecretKeyBytes)
	}
	var note string
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		note = fmt.Sprintf("%s is readable by other users (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	return key, note, nil
}
