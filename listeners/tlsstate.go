package listeners

import (
	"crypto/tls"
	"net"
	"net/http"
)

// maxUnwrap bounds how many NetConn wrappers TLSState looks through.
const maxUnwrap = 8

// TLSState returns the TLS connection state of c, or nil when c did not
// arrive over TLS or its handshake has not completed. It understands:
//
//   - *tls.Conn, as returned by TLSListener;
//   - WebSocket connections returned by a WebSocket listener: the state is
//     the one of the HTTPS request that was upgraded (nil for plain ws://);
//   - connections that wrap one of those and expose it with a
//     NetConn() net.Conn method, as *tls.Conn itself does.
//
// The broker passes the result to authentication hooks, which can inspect
// the client certificate chain.
func TLSState(c net.Conn) *tls.ConnectionState {
	for range maxUnwrap {
		switch v := c.(type) {
		case nil:
			return nil
		case interface{ ConnectionState() tls.ConnectionState }:
			cs := v.ConnectionState()
			if !cs.HandshakeComplete {
				return nil
			}
			return &cs
		case interface{ Request() *http.Request }:
			if r := v.Request(); r != nil {
				return r.TLS
			}
			return nil
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// PeerCommonName returns the Subject Common Name of the client certificate
// presented on c, for brokers that use the certificate identity as the MQTT
// username (as Mosquitto's use_identity_as_username does).
//
// It reports false unless c arrived over TLS (directly or as WebSocket over
// TLS), the client sent a certificate, and the server verified it against
// its ClientCAs: that is, with tls.RequireAndVerifyClientCert, or with
// tls.VerifyClientCertIfGiven when the client sent one. An unverified
// certificate (tls.RequestClientCert, tls.RequireAnyClientCert) proves
// nothing about its name, so its Common Name is not returned; inspect
// TLSState yourself if you verify certificates another way. An empty Common
// Name also reports false.
func PeerCommonName(c net.Conn) (string, bool) {
	cs := TLSState(c)
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.PeerCertificates) == 0 {
		return "", false
	}
	cn := cs.PeerCertificates[0].Subject.CommonName
	return cn, cn != ""
}
