// Package scram is SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5
// enhanced authentication method, the example of Tern's
// EnhancedAuthenticator hook: Server is the broker's side, a hook, and
// Client is the device's side, a paho.golang AuthHandler.
//
// SCRAM proves both ways that each side knows the password without sending
// it, and the broker stores only keys derived from it (Credentials), which
// do not let whoever reads them log in. The exchange is the one section
// 4.12 of MQTT 5 shows:
//
//	CONNECT Authentication Method "SCRAM-SHA-256", Data client-first-message
//	AUTH 0x18 (continue)   server-first-message: nonce, salt, iterations
//	AUTH 0x18 (continue)   client-final-message: the client's proof
//	CONNACK 0x00           server-final-message: the server's signature
//
// A re-authentication (AUTH 0x19 with a new client-first-message) repeats
// it on a connected client; it ends with AUTH 0x00 instead of CONNACK.
//
// Simplifications, fine for an example: user names and passwords are used
// as given (no SASLprep normalisation), and there is no channel binding
// (the GS2 header is "n,,").
package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Method is the MQTT 5 Authentication Method, the SASL mechanism's name.
const Method = "SCRAM-SHA-256"

// MinIterations is the fewest PBKDF2 iterations either side accepts, as
// RFC 7677 requires.
const MinIterations = 4096

// gs2Header says: no channel binding, no authorisation identity.
const gs2Header = "n,,"

// Credentials are what the server stores for a user: enough to check a
// client's proof and sign its answer, not enough to log in as the user.
type Credentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte // H(ClientKey)
	ServerKey  []byte
}

// NewCredentials derives the credentials of password with a new random
// salt, at iterations (at least MinIterations).
func NewCredentials(password string, iterations int) (Credentials, error) {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt) // never fails
	return credentials(password, salt, iterations)
}

func credentials(password string, salt []byte, iterations int) (Credentials, error) {
	if iterations < MinIterations {
		return Credentials{}, fmt.Errorf("scram: %d iterations, want at least %d", iterations, MinIterations)
	}
	salted, err := saltedPassword(password, salt, iterations)
	if err != nil {
		return Credentials{}, err
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	return Credentials{Salt: salt, Iterations: iterations, StoredKey: stored[:], ServerKey: mac(salted, "Server Key")}, nil
}

// saltedPassword is Hi(password, salt, i) of RFC 5802: PBKDF2 with
// HMAC-SHA-256.
func saltedPassword(password string, salt []byte, iterations int) ([]byte, error) {
	return pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
}

// mac is HMAC-SHA-256(key, msg).
func mac(key []byte, msg string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func xor(a, b []byte) []byte {
	out := make([]byte, len(a))
	for i := range a {
		out[i] = a[i] ^ b[i]
	}
	return out
}

var b64 = base64.StdEncoding

// newNonce returns a printable random nonce without ','.
func newNonce() string { return rand.Text() }

// attrs splits a SCRAM message, "a=value,b=value", checking that the
// attributes come in the order given by names.
func attrs(msg string, names ...string) ([]string, error) {
	parts := strings.Split(msg, ",")
	if len(parts) != len(names) {
		return nil, fmt.Errorf("scram: %q: want the attributes %s", msg, strings.Join(names, ","))
	}
	for i, p := range parts {
		v, ok := strings.CutPrefix(p, names[i]+"=")
		if !ok {
			return nil, fmt.Errorf("scram: %q: attribute %d is not %s=", msg, i+1, names[i])
		}
		parts[i] = v
	}
	return parts, nil
}

// encodeName escapes a user name as a saslname: ',' and '=' become =2C
// and =3D.
func encodeName(name string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(name)
}

// decodeName undoes encodeName, refusing any other '=' sequence.
func decodeName(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", fmt.Errorf("scram: user name %q: '=' must start =2C or =3D", s)
		}
		i += 2
	}
	return b.String(), nil
}

// parseServerFirst reads "r=nonce,s=salt,i=iterations".
func parseServerFirst(msg string) (nonce string, salt []byte, iterations int, err error) {
	a, err := attrs(msg, "r", "s", "i")
	if err != nil {
		return "", nil, 0, err
	}
	salt, err = b64.DecodeString(a[1])
	if err != nil {
		return "", nil, 0, fmt.Errorf("scram: salt: %w", err)
	}
	iterations, err = strconv.Atoi(a[2])
	if err != nil {
		return "", nil, 0, fmt.Errorf("scram: iteration count: %w", err)
	}
	return a[0], salt, iterations, nil
}

// errProof is the failed check of a client's proof or a server's
// signature.
var errProof = errors.New("scram: proof does not match")
