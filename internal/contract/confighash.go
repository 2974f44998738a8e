package contract

import (
	"crypto/sha256"
	"encoding/hex"
)

// ConfigHash identifies a config in status (config_hash) and reload events
// (config_hash_before/after): the hex SHA-256 of the bytes given, 64
// lowercase hex digits. The app hashes the config file as loaded, so equal
// files give equal hashes and any edit (a comment included) a new one.
func ConfigHash(config []byte) string {
	h := sha256.Sum256(config)
	return hex.EncodeToString(h[:])
}
