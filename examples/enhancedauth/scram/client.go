package scram

import (
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"

	"github.com/eclipse/paho.golang/paho"
)

// Client is the device's side of SCRAM-SHA-256 for paho.golang: set it as
// the paho.ClientConfig's AuthHandler, send First in the CONNECT, and check
// the server's signature, in the CONNACK, with Verify:
//
//	sc := &scram.Client{User: "alice", Password: "s3cret"}
//	c := paho.NewClient(paho.ClientConfig{Conn: conn, AuthHandler: sc})
//	ack, err := c.Connect(ctx, &paho.Connect{ClientID: "dev1", KeepAlive: 30,
//		UsernameFlag: true, Username: sc.User,
//		Properties: &paho.ConnectProperties{AuthMethod: scram.Method, AuthData: sc.First()}})
//	if err == nil {
//		err = sc.Verify(ack.Properties.AuthData)
//	}
//
// Reauth starts a re-authentication. A Client runs one exchange at a time.
type Client struct {
	User     string
	Password string

	mu          sync.Mutex
	nonce       func() string // newNonce; tests replace it
	clientFirst string        // client-first-message-bare of the exchange
	signature   []byte        // the ServerSignature expected
	err         error         // why the last step failed
}

// First starts an exchange: it returns the client-first-message, the
// Authentication Data of the CONNECT (or of the AUTH 0x19 that starts a
// re-authentication).
func (c *Client) First() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nonce == nil {
		c.nonce = newNonce
	}
	c.clientFirst = "n=" + encodeName(c.User) + ",r=" + c.nonce()
	c.signature, c.err = nil, nil
	return []byte(gs2Header + c.clientFirst)
}

// Reauth returns the AUTH packet that starts a re-authentication, for
// paho.Client.Authenticate.
func (c *Client) Reauth() *paho.Auth {
	return &paho.Auth{ReasonCode: 0x19, Properties: &paho.AuthProperties{AuthMethod: Method, AuthData: c.First()}}
}

// Authenticate implements paho.Auther: paho.golang calls it with the
// server's AUTH 0x18, which carries the server-first-message, and sends
// the AUTH 0x18 it returns, with the client-final-message. When the
// server-first-message is unusable (a nonce that does not extend the
// client's, too few iterations), the answer carries no proof, and the
// server refuses it; Err says why.
func (c *Client) Authenticate(a *paho.Auth) *paho.Auth {
	var data []byte
	if a.Properties != nil {
		data = a.Properties.AuthData
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	final, err := c.final(string(data))
	if err != nil {
		c.err = err
		final = "e=" + err.Error()
	}
	return &paho.Auth{ReasonCode: 0x18, Properties: &paho.AuthProperties{AuthMethod: Method, AuthData: []byte(final)}}
}

// final computes the client-final-message and the server signature to
// expect.
func (c *Client) final(serverFirst string) (string, error) {
	nonce, salt, iterations, err := parseServerFirst(serverFirst)
	if err != nil {
		return "", err
	}
	_, ours, _ := strings.Cut(c.clientFirst, ",r=")
	switch {
	case c.clientFirst == "":
		return "", fmt.Errorf("scram: server-first-message before First")
	case !strings.HasPrefix(nonce, ours) || len(nonce) == len(ours):
		return "", fmt.Errorf("scram: the server's nonce does not extend the client's")
	case iterations < MinIterations:
		return "", fmt.Errorf("scram: the server asks for %d iterations, fewer than %d", iterations, MinIterations)
	}
	salted, err := saltedPassword(c.Password, salt, iterations)
	if err != nil {
		return "", err
	}
	withoutProof := "c=" + b64.EncodeToString([]byte(gs2Header)) + ",r=" + nonce
	authMessage := c.clientFirst + "," + serverFirst + "," + withoutProof
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	proof := xor(clientKey, mac(stored[:], authMessage))
	c.signature = mac(mac(salted, "Server Key"), authMessage)
	return withoutProof + ",p=" + b64.EncodeToString(proof), nil
}

// Authenticated implements paho.Auther; paho.golang calls it when the
// server accepted the exchange. The server's signature is checked by
// Verify.
func (c *Client) Authenticated() {}

// Verify checks the server-final-message, "v=signature", the
// Authentication Data of the CONNACK: it proves that the server holds the
// user's credentials, and is not an impostor that accepts anyone.
func (c *Client) Verify(serverFinal []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	a, err := attrs(string(serverFinal), "v")
	if err != nil {
		return err
	}
	sig, err := b64.DecodeString(a[0])
	if err != nil || c.signature == nil || !hmac.Equal(sig, c.signature) {
		return fmt.Errorf("scram: server signature: %w", errProof)
	}
	return nil
}

// Err returns why the client could not answer the server in the last
// exchange, or nil.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
