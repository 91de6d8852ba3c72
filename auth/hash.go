package auth

import (
	"bytes"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// maxPasswordLen is the longest password bcrypt reads; longer passwords are
// refused rather than silently cut.
const maxPasswordLen = 72

// DefaultPBKDF2Iterations is the iteration count HashPBKDF2 and SetPassword
// use when given 0: OWASP's 2023 recommendation for PBKDF2-HMAC-SHA512.
// mosquitto_passwd uses 101, with which one GPU tries tens of millions of
// guesses a second against a stolen file. Mosquitto reads the count from
// each hash, so it accepts these hashes too. A check costs about twice
// bcrypt cost 10 (0.1 to 0.2 s of CPU).
const DefaultPBKDF2Iterations = 210_000

// Mosquitto's hashes: a 12-byte salt and a 64-byte SHA-512 digest, each in
// standard base64 with padding.
const (
	mosquittoSaltLen = 12
	mosquittoSumLen  = sha512.Size
)

// dummyPassword is hashed at load time so that a CONNECT for an unknown
// user costs as much as one for a known user.
const dummyPassword = "tern: there is no such user"

type hashKind uint8

const (
	kindBcrypt hashKind = iota // $2a$, $2b$, $2y$
	kindSHA512                 // Mosquitto's $6$: SHA-512(password + salt)
	kindPBKDF2                 // Mosquitto's $7$: PBKDF2-HMAC-SHA512
)

// pwHash is one parsed password hash.
type pwHash struct {
	kind   hashKind
	bcrypt []byte // kindBcrypt: the whole hash
	cost   int    // bcrypt cost, or PBKDF2 iterations
	salt   []byte // kindSHA512, kindPBKDF2
	sum    []byte // kindSHA512, kindPBKDF2
}

// parseHash reads a bcrypt hash, or one of the two hashes mosquitto_passwd
// makes: $6$SALT$HASH and $7$ITERATIONS$SALT$HASH.
func parseHash(s string) (*pwHash, error) {
	switch {
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if len(s) != 60 {
			return nil, fmt.Errorf("invalid bcrypt hash: want 60 characters like $2a$10$..., got %d", len(s))
		}
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("invalid bcrypt hash: %w", err)
		}
		return &pwHash{kind: kindBcrypt, bcrypt: []byte(s), cost: cost}, nil
	case strings.HasPrefix(s, "$6$"):
		parts := strings.Split(s, "$")
		if len(parts) != 4 {
			return nil, errors.New("invalid $6$ hash: want $6$SALT$HASH")
		}
		return mosquittoHash(kindSHA512, 0, parts[2], parts[3])
	case strings.HasPrefix(s, "$7$"):
		parts := strings.Split(s, "$")
		if len(parts) != 5 {
			return nil, errors.New("invalid $7$ hash: want $7$ITERATIONS$SALT$HASH")
		}
		iter, err := strconv.Atoi(parts[2])
		if err != nil || iter < 1 || iter > math.MaxInt32 {
			return nil, fmt.Errorf("invalid $7$ hash: iteration count %q is not a number from 1 to %d", parts[2], math.MaxInt32)
		}
		return mosquittoHash(kindPBKDF2, iter, parts[3], parts[4])
	}
	return nil, errors.New("unknown password hash: want $7$ or $6$ (mosquitto_passwd) or $2a$, $2b$, $2y$ (bcrypt)")
}

func mosquittoHash(kind hashKind, iter int, salt, sum string) (*pwHash, error) {
	h := &pwHash{kind: kind, cost: iter}
	var err error
	h.salt, err = base64.StdEncoding.DecodeString(salt)
	if err != nil || len(h.salt) != mosquittoSaltLen {
		return nil, fmt.Errorf("invalid salt %q: want %d bytes in base64", salt, mosquittoSaltLen)
	}
	h.sum, err = base64.StdEncoding.DecodeString(sum)
	if err != nil || len(h.sum) != mosquittoSumLen {
		return nil, fmt.Errorf("invalid hash %q: want %d bytes in base64", sum, mosquittoSumLen)
	}
	return h, nil
}

// match reports whether password is the one hashed. It takes the same time
// whatever the password, except for the work the hash itself does.
func (h *pwHash) match(password []byte) bool {
	switch h.kind {
	case kindBcrypt:
		pw := password
		if len(pw) > maxPasswordLen {
			pw = pw[:maxPasswordLen] // spend the same time, then refuse
		}
		ok := bcrypt.CompareHashAndPassword(h.bcrypt, pw) == nil
		return ok && len(password) <= maxPasswordLen
	default:
		// Mosquitto hashes the password as a C string: up to its first
		// NUL byte.
		if i := bytes.IndexByte(password, 0); i >= 0 {
			password = password[:i]
		}
		return subtle.ConstantTimeCompare(h.digest(password), h.sum) == 1
	}
}

// digest computes a $6$ or $7$ digest of password with h's salt.
func (h *pwHash) digest(password []byte) []byte {
	if h.kind == kindSHA512 {
		d := sha512.New()
		d.Write(password)
		d.Write(h.salt)
		return d.Sum(nil)
	}
	sum, err := pbkdf2.Key(sha512.New, string(password), h.salt, h.cost, mosquittoSumLen)
	if err != nil {
		return nil // cannot happen with these parameters; matches nothing
	}
	return sum
}

// work estimates the time a check takes, in SHA-512 blocks.
func (h *pwHash) work() float64 {
	switch h.kind {
	case kindBcrypt:
		return 200 * math.Exp2(float64(h.cost)) // cost 10 is about 200,000 blocks
	case kindPBKDF2:
		return 2 * float64(h.cost)
	}
	return 1
}

// dummyFor returns a hash of dummyPassword of the same kind and cost as
// hashes: of the most common kind and cost among them, the costlier on a
// tie. An unknown user is checked against it, so that the time to refuse
// does not tell unknown users from known ones. It returns nil for no
// hashes.
func dummyFor(hashes map[string]*pwHash) (*pwHash, error) {
	type shape struct {
		kind hashKind
		cost int
	}
	count := map[shape]int{}
	var best *pwHash
	for _, h := range hashes {
		s := shape{h.kind, h.cost}
		count[s]++
		if best == nil {
			best = h
			continue
		}
		b := shape{best.kind, best.cost}
		if count[s] > count[b] || count[s] == count[b] && h.work() > best.work() {
			best = h
		}
	}
	if best == nil {
		return nil, nil
	}
	return newHash(best.kind, best.cost, []byte(dummyPassword))
}

// newHash hashes password with a new random salt.
func newHash(kind hashKind, cost int, password []byte) (*pwHash, error) {
	if kind == kindBcrypt {
		b, err := bcrypt.GenerateFromPassword(password, cost)
		if err != nil {
			return nil, err
		}
		return &pwHash{kind: kind, bcrypt: b, cost: cost}, nil
	}
	h := &pwHash{kind: kind, cost: cost, salt: make([]byte, mosquittoSaltLen)}
	if _, err := rand.Read(h.salt); err != nil {
		return nil, err
	}
	h.sum = h.digest(password)
	return h, nil
}

// String formats the hash as a password file holds it.
func (h *pwHash) String() string {
	enc := base64.StdEncoding
	switch h.kind {
	case kindSHA512:
		return "$6$" + enc.EncodeToString(h.salt) + "$" + enc.EncodeToString(h.sum)
	case kindPBKDF2:
		return "$7$" + strconv.Itoa(h.cost) + "$" + enc.EncodeToString(h.salt) + "$" + enc.EncodeToString(h.sum)
	}
	return string(h.bcrypt)
}

// HashPassword returns the bcrypt hash (cost 10) of password, in the form
// a user line of an auth file takes. Passwords must be 1 to 72 bytes long.
func HashPassword(password []byte) (string, error) {
	if len(password) == 0 {
		return "", errors.New("auth: empty password")
	}
	if len(password) > maxPasswordLen {
		return "", fmt.Errorf("auth: password longer than %d bytes: %w", maxPasswordLen, bcrypt.ErrPasswordTooLong)
	}
	h, err := bcrypt.GenerateFromPassword(password, bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	return string(h), nil
}

// HashPBKDF2 returns a $7$ hash of password in mosquitto_passwd's format
// (PBKDF2-HMAC-SHA512, a random 12-byte salt), which both Tern and
// Mosquitto 2 read from a password file. iterations 0 means
// DefaultPBKDF2Iterations. Mosquitto hashes a password up to its first NUL
// byte, so a password may not contain one.
func HashPBKDF2(password []byte, iterations int) (string, error) {
	if iterations == 0 {
		iterations = DefaultPBKDF2Iterations
	}
	switch {
	case len(password) == 0:
		return "", errors.New("auth: empty password")
	case bytes.IndexByte(password, 0) >= 0:
		return "", errors.New("auth: password contains a NUL byte, which Mosquitto would cut it at")
	case iterations < 1 || iterations > math.MaxInt32:
		return "", fmt.Errorf("auth: iterations must be from 1 to %d, got %d", math.MaxInt32, iterations)
	}
	h, err := newHash(kindPBKDF2, iterations, password)
	if err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	return h.String(), nil
}
