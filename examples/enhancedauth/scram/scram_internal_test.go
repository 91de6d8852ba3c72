package scram

import (
	"testing"

	"github.com/eclipse/paho.golang/paho"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern"
)

// The SCRAM-SHA-256 exchange of RFC 7677, section 3.
const (
	rfcUser        = "user"
	rfcPassword    = "pencil"
	rfcClientNonce = "rOprNGfwEbeRWgbNEkqO"
	rfcServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
	rfcClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
	rfcServerFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
	rfcClientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	rfcServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
)

// TestRFC7677Client: the client's messages are the RFC's, and it accepts
// the RFC's server signature.
func TestRFC7677Client(t *testing.T) {
	c := &Client{User: rfcUser, Password: rfcPassword, nonce: func() string { return rfcClientNonce }}
	assert.Equal(t, rfcClientFirst, string(c.First()), "client-first-message")
	a := c.Authenticate(&paho.Auth{ReasonCode: 0x18, Properties: &paho.AuthProperties{AuthMethod: Method, AuthData: []byte(rfcServerFirst)}})
	assert.Equal(t, byte(0x18), a.ReasonCode, "AUTH reason code")
	assert.Equal(t, Method, a.Properties.AuthMethod, "AUTH method")
	assert.Equal(t, rfcClientFinal, string(a.Properties.AuthData), "client-final-message")
	assert.NoError(t, c.Verify([]byte(rfcServerFinal)), "the RFC's server signature")
	assert.Error(t, c.Verify([]byte("v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")), "a wrong server signature")
}

// TestRFC7677Server: with the RFC's salt, the server sends the RFC's
// server-first-message and signature, and stores no password.
func TestRFC7677Server(t *testing.T) {
	creds, err := credentials(rfcPassword, mustB64(t, "W22ZaJ0SNY7soEsUEjb6gQ=="), 4096)
	require.NoError(t, err, "credentials")
	s := NewServer()
	s.nonce = func() string { return rfcServerNonce }
	s.SetUser(rfcUser, creds)
	x := &tern.AuthExchange{Method: Method, Data: []byte(rfcClientFirst), Connect: tern.ConnectInfo{Username: rfcUser}, Step: 1}
	data, done, err := s.AuthStep(t.Context(), x)
	require.NoError(t, err, "step 1")
	assert.False(t, done, "done after step 1")
	assert.Equal(t, rfcServerFirst, string(data), "server-first-message")
	x.Data, x.Step = []byte(rfcClientFinal), 2
	data, done, err = s.AuthStep(t.Context(), x)
	require.NoError(t, err, "step 2")
	assert.True(t, done, "done after step 2")
	assert.Equal(t, rfcServerFinal, string(data), "server-final-message")
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := b64.DecodeString(s)
	require.NoError(t, err, "base64 %q", s)
	return b
}

func TestNames(t *testing.T) {
	for _, name := range []string{"alice", "a,b", "x=y", "=2C", ",=,="} {
		got, err := decodeName(encodeName(name))
		assert.NoError(t, err, "decodeName(encodeName(%q))", name)
		assert.Equal(t, name, got, "decodeName(encodeName(%q))", name)
	}
	_, err := decodeName("a=2Db")
	assert.Error(t, err, "decodeName accepted =2D")
}
