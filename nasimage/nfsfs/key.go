package nfsfs

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
)

// MinKeySize is the shortest handle secret accepted from a key file.
const MinKeySize = keySize

// KeyFile is the name of the handle secret in the state directory.
const KeyFile = "handle.key"

// LoadOrCreateKey returns the handle secret kept in stateDir, creating it
// (atomically, mode 0600) on first start. Keeping it across restarts is
// what keeps clients' handles valid.
func LoadOrCreateKey(stateDir string) ([]byte, error) {
	path := filepath.Join(stateDir, KeyFile)
	key, err := os.ReadFile(path)
	switch {
	case err == nil && len(key) == keySize:
		return key, nil
	case err == nil:
		return nil, fmt.Errorf("%s: want %d bytes, found %d: remove it to start over (clients must remount)", path, keySize, len(key))
	case !os.IsNotExist(err):
		return nil, err
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	key = make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(stateDir, KeyFile+".tmp*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(key); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	return key, nil
}
