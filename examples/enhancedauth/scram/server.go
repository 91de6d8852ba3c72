package scram

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
	"sync"

	"github.com/ternmq/tern"
	"github.com/ternmq/tern/packets"
)

// Server authenticates clients with SCRAM-SHA-256. Add it to a broker with
// AddHook: as a tern.EnhancedAuthenticator it answers the AUTH exchange of
// a CONNECT or a re-authentication, and as a tern.Authenticator it refuses
// clients that do not use SCRAM.
//
// The SCRAM user name must be the CONNECT's user name, so that the
// identity the broker's ACL hooks see is the one SCRAM proved, and a
// re-authentication cannot change it.
type Server struct {
	mu    sync.RWMutex
	users map[string]Credentials
	// mock derives the salt of unknown users, which must not differ from a
	// known user's in any way a client can see (RFC 5802, section 9).
	mock  []byte
	nonce func() string
}

// NewServer returns a Server without users.
func NewServer() *Server {
	mock := make([]byte, 32)
	_, _ = rand.Read(mock) // never fails
	return &Server{users: map[string]Credentials{}, mock: mock, nonce: newNonce}
}

// SetUser adds user, or replaces its credentials: clients connected with
// the old password keep their connection until they re-authenticate.
func (s *Server) SetUser(user string, c Credentials) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[user] = c
}

// RemoveUser removes user: its next CONNECT or re-authentication fails.
func (s *Server) RemoveUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users, user)
}

// exchange is what the server remembers between the two steps.
type exchange struct {
	creds       Credentials
	nonce       string // the client's and the server's
	clientFirst string // client-first-message-bare
	serverFirst string
}

// AuthStep implements tern.EnhancedAuthenticator. Step 1 reads the
// client-first-message and answers the server-first-message; step 2 checks
// the client's proof and answers the server's signature. A wrong password
// and an unknown user are refused alike, with reason code 0x86 (bad user
// name or password) at CONNECT; a failed re-authentication ends the
// connection with DISCONNECT 0x87 (not authorized), the nearest code that
// packet has.
func (s *Server) AuthStep(_ context.Context, x *tern.AuthExchange) ([]byte, bool, error) {
	if x.Method != Method {
		return nil, false, tern.ErrAuthMethodNotSupported
	}
	switch x.Step {
	case 1:
		return s.first(x)
	case 2:
		st, _ := x.State.(*exchange)
		if st == nil {
			break
		}
		sig, err := s.final(st, string(x.Data))
		if err != nil {
			return nil, false, err
		}
		return sig, true, nil
	}
	return nil, false, refuse(packets.NotAuthorized, fmt.Errorf("scram: unexpected step %d", x.Step))
}

// first answers the client-first-message, "n,,n=user,r=nonce".
func (s *Server) first(x *tern.AuthExchange) ([]byte, bool, error) {
	bare, ok := cutGS2(string(x.Data))
	if !ok {
		return nil, false, refuse(packets.NotAuthorized, fmt.Errorf("scram: client-first-message %q: want the GS2 header %q (no channel binding)", x.Data, gs2Header))
	}
	a, err := attrs(bare, "n", "r")
	if err != nil {
		return nil, false, refuse(packets.NotAuthorized, err)
	}
	user, err := decodeName(a[0])
	if err != nil {
		return nil, false, refuse(packets.NotAuthorized, err)
	}
	if user != x.Connect.Username || a[1] == "" {
		return nil, false, refuse(packets.NotAuthorized, fmt.Errorf("scram: user %q is not the CONNECT's user name %q", user, x.Connect.Username))
	}
	s.mu.RLock()
	creds, known := s.users[user]
	s.mu.RUnlock()
	if !known {
		// The same salt every time for the same name, and MinIterations
		// (give users that many too): an unknown user looks like a known
		// one, and its proof is checked against a key no proof matches.
		creds = Credentials{Salt: mac(s.mock, user)[:16], Iterations: MinIterations, StoredKey: make([]byte, sha256.Size)}
	}
	st := &exchange{creds: creds, nonce: a[1] + s.nonce(), clientFirst: bare}
	st.serverFirst = fmt.Sprintf("r=%s,s=%s,i=%d", st.nonce, b64.EncodeToString(creds.Salt), creds.Iterations)
	x.State = st
	return []byte(st.serverFirst), false, nil
}

// final checks the client-final-message, "c=biws,r=nonce,p=proof", and
// returns the server-final-message, "v=signature".
func (s *Server) final(st *exchange, msg string) ([]byte, error) {
	a, err := attrs(msg, "c", "r", "p")
	if err != nil {
		return nil, refuse(packets.NotAuthorized, err)
	}
	if a[0] != b64.EncodeToString([]byte(gs2Header)) || a[1] != st.nonce {
		return nil, refuse(packets.NotAuthorized, fmt.Errorf("scram: client-final-message %q: channel binding or nonce differs", msg))
	}
	proof, err := b64.DecodeString(a[2])
	if err != nil || len(proof) != sha256.Size {
		return nil, refuse(packets.NotAuthorized, fmt.Errorf("scram: proof %q is not a base64 SHA-256 value", a[2]))
	}
	authMessage := st.clientFirst + "," + st.serverFirst + "," + msg[:len(msg)-len(",p=")-len(a[2])]
	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); its hash
	// must be the StoredKey.
	clientKey := xor(proof, mac(st.creds.StoredKey, authMessage))
	stored := sha256.Sum256(clientKey)
	if subtle.ConstantTimeCompare(stored[:], st.creds.StoredKey) != 1 {
		return nil, badPassword()
	}
	return []byte("v=" + b64.EncodeToString(mac(st.creds.ServerKey, authMessage))), nil
}

// Authenticate implements tern.Authenticator: a CONNECT that did not use
// SCRAM is refused with 0x8C (bad authentication method); an MQTT 3.1.1
// client, which cannot, gets 0x05 (not authorized). One that did has
// passed AuthStep by now.
func (s *Server) Authenticate(_ context.Context, c tern.ConnectInfo) error {
	if c.AuthMethod != Method {
		return &tern.ReasonError{Code: packets.BadAuthenticationMethod, Reason: "authenticate with " + Method}
	}
	return nil
}

// cutGS2 removes the GS2 header from a client-first-message.
func cutGS2(msg string) (string, bool) { return strings.CutPrefix(msg, gs2Header) }

// refuse is a refusal with code, its reason kept for the log.
func refuse(code packets.ReasonCode, err error) error {
	return &tern.ReasonError{Code: code, Reason: "SCRAM exchange failed", Err: err}
}

// badPassword refuses an unknown user and a wrong password alike.
func badPassword() error {
	return &tern.ReasonError{Code: packets.BadUserNameOrPassword, Reason: "wrong user name or password", Err: errProof}
}
