package bolt

import (
	"bytes"
	"crypto/sha256"
	"fmt"
)

// Keys. A client's records sort together and in (ClientID, Seq) order
// because its identifier is encoded so that no encoded identifier is a
// prefix of another and byte order is kept: bytes 0x00 and 0x01 are escaped
// as 01 01 and 01 02, and the identifier ends with 00. Identifiers longer
// than maxInlineID are keyed by 01 03 and their SHA-256 instead (the
// identifier is then kept in the value): bbolt limits keys to 32768 bytes
// and MQTT allows 65535. Filters and topics, the last part of their keys,
// are kept as they are unless empty where a key would be empty, longer
// than maxInlineName, or starting with 0x00; those are keyed by 00 and
// their SHA-256, with the name in the value.
const (
	maxInlineID   = 1024
	maxInlineName = 16384
	hashLen       = sha256.Size
)

// appendClientKey appends the key prefix of a client's records.
func appendClientKey(b []byte, id string) []byte {
	if !idInline(id) {
		sum := sha256.Sum256([]byte(id))
		b = append(b, 0x01, 0x03)
		return append(b, sum[:]...)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 2 {
			b = append(b, 0x01, c+1)
		} else {
			b = append(b, c)
		}
	}
	return append(b, 0x00)
}

func idInline(id string) bool { return len(id) <= maxInlineID }

// parseClientKey splits a key after its client part. inline is false when
// the identifier is hashed, and is then to be found in the value and
// checked with matchHash.
func parseClientKey(k []byte) (id string, inline bool, rest []byte, err error) {
	if len(k) >= 2 && k[0] == 0x01 && k[1] == 0x03 {
		if len(k) < 2+hashLen {
			return "", false, nil, fmt.Errorf("%w: short hashed client key", ErrCorrupt)
		}
		return "", false, k[2+hashLen:], nil
	}
	end := bytes.IndexByte(k, 0x00)
	if end < 0 {
		return "", false, nil, fmt.Errorf("%w: client key without terminator", ErrCorrupt)
	}
	buf := make([]byte, 0, end)
	for i := 0; i < end; i++ {
		c := k[i]
		if c == 0x01 {
			if i+1 >= end || k[i+1] < 1 || k[i+1] > 2 {
				return "", false, nil, fmt.Errorf("%w: bad escape in client key", ErrCorrupt)
			}
			i++
			c = k[i] - 1
		}
		buf = append(buf, c)
	}
	return string(buf), true, k[end+1:], nil
}

// matchHash checks that a name kept in a value is the one its key hashes.
func matchHash(keyHash []byte, name string) error {
	sum := sha256.Sum256([]byte(name))
	if !bytes.Equal(keyHash, sum[:]) {
		return fmt.Errorf("%w: name in value does not match its key", ErrCorrupt)
	}
	return nil
}

// clientHash returns the hash part of a hashed client key.
func clientHash(k []byte) []byte { return k[2 : 2+hashLen] }

// nameInline reports whether a filter or topic is its own key part; empty
// says whether an empty name may be (it may not be a whole key).
func nameInline(s string, empty bool) bool {
	if len(s) == 0 {
		return empty
	}
	return len(s) <= maxInlineName && s[0] != 0x00
}

// appendNameKey appends the key part of a filter or topic.
func appendNameKey(b []byte, s string, empty bool) []byte {
	if nameInline(s, empty) {
		return append(b, s...)
	}
	sum := sha256.Sum256([]byte(s))
	b = append(b, 0x00)
	return append(b, sum[:]...)
}

// parseNameKey reads the key part of a filter or topic: the name, or, when
// hashed, its hash.
func parseNameKey(k []byte) (name string, hash []byte, err error) {
	if len(k) > 0 && k[0] == 0x00 {
		if len(k) != 1+hashLen {
			return "", nil, fmt.Errorf("%w: hashed name key of %d bytes", ErrCorrupt, len(k))
		}
		return "", k[1:], nil
	}
	return string(k), nil, nil
}
