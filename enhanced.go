package tern

import (
	"context"
	"errors"
	"fmt"

	"github.com/ternmq/tern/packets"
)

// AuthExchange is one MQTT 5 enhanced authentication (section 4.12): the
// exchange a CONNECT with an Authentication Method starts, or the
// re-authentication of a connected client. The broker keeps the same value
// across the steps of one exchange.
type AuthExchange struct {
	// Method is the Authentication Method, the same in every step
	// [v5 MQTT-4.12.0-5].
	Method string
	// Data is the Authentication Data the client sent in this step.
	Data []byte
	// Connect is the CONNECT that started the connection.
	Connect ConnectInfo
	// Reauth is true for the re-authentication of a connected client
	// (AUTH with reason code 0x19).
	Reauth bool
	// Step counts the client's messages in this exchange, from 1.
	Step int
	// State is the hook's own, kept from one step to the next.
	State any
}

// EnhancedAuthenticator answers MQTT 5 enhanced authentication: a
// challenge–response exchange of AUTH packets named by an Authentication
// Method (SCRAM, Kerberos, a token scheme). For each step it returns the
// data to send to the client and whether the client is now authenticated:
// not done, the data goes back in AUTH 0x18 (continue authentication) and
// the client's answer is the next step; done, the broker goes on (the
// Authenticator hooks still run at CONNECT) and sends the data in the
// CONNACK, or after a re-authentication in AUTH 0x00. An error refuses the
// client: CONNACK 0x87 (or, after CONNACK, DISCONNECT 0x87), or the code of
// a ReasonError. A hook that does not implement the method returns
// ErrAuthMethodNotSupported, and the next hook is asked; when none does,
// the CONNECT gets CONNACK 0x8C (bad authentication method).
type EnhancedAuthenticator interface {
	AuthStep(ctx context.Context, x *AuthExchange) (data []byte, done bool, err error)
}

// ErrAuthMethodNotSupported is returned by an EnhancedAuthenticator for an
// Authentication Method it does not implement.
var ErrAuthMethodNotSupported = errors.New("tern: authentication method not supported")

// authStep runs one step of x on hook h, a panic recovered as a refusal.
func (b *Broker) authStep(ctx context.Context, h EnhancedAuthenticator, x *AuthExchange) (data []byte, done bool, err error) {
	err = call(b, "AuthStep", func() error {
		var herr error
		data, done, herr = h.AuthStep(ctx, x)
		return herr
	})
	return data, done, err
}

// authenticateEnhanced runs the enhanced authentication a CONNECT asked
// for, before CONNACK: AUTH packets go back and forth until the hook is
// done [v5 MQTT-4.12.0-2, MQTT-4.12.0-3]. It returns the data for the
// CONNACK, or the error that ends the connection (after a refusing
// CONNACK).
func (c *conn) authenticateEnhanced(ctx context.Context, info *ConnectInfo) ([]byte, error) {
	b := c.b
	x := &AuthExchange{Method: info.AuthMethod, Data: info.AuthData, Connect: *info, Step: 1}
	for _, h := range b.hooks.get().enhanced {
		data, done, err := b.authStep(ctx, h, x)
		if errors.Is(err, ErrAuthMethodNotSupported) {
			continue
		}
		c.extra().authHook = h
		for {
			if err != nil {
				return nil, c.refuseErr(err, packets.NotAuthorized)
			}
			if done {
				return data, nil
			}
			c.writeNow(c.authPacket(packets.ContinueAuthentication, data))
			// The client answers with AUTH; anything else before CONNACK
			// is a protocol error [v5 MQTT-3.1.2-30].
			next, rerr := c.readAuth(packets.ContinueAuthentication)
			if rerr != nil {
				return nil, c.refuseAuth(rerr)
			}
			x.Data, x.Step = next.Properties.AuthData, x.Step+1
			data, done, err = b.authStep(ctx, h, x)
		}
	}
	// [v5 MQTT-4.12.0-1] no hook supports the method.
	return nil, c.refuse(packets.BadAuthenticationMethod, "", fmt.Errorf("%w: %q", ErrAuthMethodNotSupported, info.AuthMethod))
}

// refuseAuth ends an enhanced authentication whose next packet was not a
// valid AUTH: a Malformed Packet or Protocol Error gets CONNACK 0x81 or
// 0x82 (section 4.13.1); a DISCONNECT, a network error or the connect
// timeout just close the connection.
func (c *conn) refuseAuth(err error) error {
	var pe *packets.Error
	switch {
	case errors.As(err, &pe) && pe.Code.ValidFor(packets.TypeConnack) && pe.Code.IsError():
		return c.refuseErr(err, pe.Code)
	case errors.Is(err, packets.ErrMalformed):
		return c.refuseErr(err, packets.MalformedPacket)
	case errors.Is(err, ErrProtocol):
		return c.refuseErr(err, packets.ProtocolError)
	}
	return err
}

// readAuth reads the client's next packet, which must be an AUTH with
// reason code want and the connection's Authentication Method, or a
// DISCONNECT: until CONNACK the client sends nothing else
// [v5 MQTT-3.1.2-30].
func (c *conn) readAuth(want packets.ReasonCode) (*packets.Auth, error) {
	fh, body, err := c.r.ReadRaw()
	if err != nil {
		if isTimeout(err) {
			return nil, ErrConnectTimeout
		}
		return nil, err
	}
	c.b.stats.packetsReceived.Add(1)
	if fh.Type == packets.TypeDisconnect {
		d := packets.Disconnect{Version: packets.Level5}
		if err := d.Decode(fh, body); err != nil {
			return nil, err
		}
		return nil, errDisconnect // the client gave up
	}
	if fh.Type != packets.TypeAuth {
		return nil, fmt.Errorf("%w: %v during enhanced authentication [v5 MQTT-3.1.2-30]", ErrProtocol, fh.Type)
	}
	a := &packets.Auth{Version: packets.Level5}
	if err := a.Decode(fh, body); err != nil {
		return nil, err
	}
	return a, c.checkAuth(a, want)
}

// checkAuth applies the rules every AUTH from the client obeys.
func (c *conn) checkAuth(a *packets.Auth, want packets.ReasonCode) error {
	switch {
	case a.Properties.AuthMethod != c.proto.authMethod:
		// [v5 MQTT-4.12.1-1] the method of the connection.
		return fmt.Errorf("%w: AUTH with method %q, the connection's is %q", ErrProtocol, a.Properties.AuthMethod, c.proto.authMethod)
	case a.ReasonCode != want:
		return fmt.Errorf("%w: AUTH with reason code %s, want %s", ErrProtocol, a.ReasonCode, want)
	}
	return nil
}

// authPacket encodes an AUTH with the connection's method and data.
func (c *conn) authPacket(code packets.ReasonCode, data []byte) []byte {
	a := packets.Auth{Version: packets.Level5, ReasonCode: code}
	a.Properties.AuthMethod, a.Properties.AuthData = c.proto.authMethod, data
	out, err := a.Append(nil)
	if err != nil {
		return nil
	}
	return out
}

// onAuth handles an AUTH after CONNACK: a re-authentication (0x19) or its
// next step (0x18) [v5 section 4.12.1]. A failed re-authentication ends the
// connection with DISCONNECT [v5 MQTT-4.12.1-2].
func (c *conn) onAuth(fh packets.FixedHeader, body []byte) error {
	if !c.proto.v5() {
		return fmt.Errorf("%w: client sent %v", ErrProtocol, fh.Type)
	}
	a := &packets.Auth{Version: packets.Level5}
	if err := a.Decode(fh, body); err != nil {
		return err
	}
	if c.proto.authMethod == "" || c.x == nil || c.x.authHook == nil {
		// [v5 MQTT-4.12.0-7] no AUTH without enhanced authentication.
		return fmt.Errorf("%w: AUTH without an Authentication Method in CONNECT", ErrProtocol)
	}
	want := packets.ReAuthenticate
	if c.x.reauth != nil {
		want = packets.ContinueAuthentication
	}
	if err := c.checkAuth(a, want); err != nil {
		return err
	}
	if c.x.reauth == nil {
		c.x.reauth = &AuthExchange{Method: c.proto.authMethod, Connect: ConnectInfo{ClientID: c.client.ID, Username: c.client.Username, RemoteAddr: c.client.RemoteAddr, ProtocolLevel: packets.Level5}, Reauth: true}
	}
	x := c.x.reauth
	x.Data, x.Step = a.Properties.AuthData, x.Step+1
	data, done, err := c.b.authStep(c.b.ctx, c.x.authHook, x)
	if err != nil {
		c.x.reauth = nil
		code, reason := reasonFor(err, packets.TypeDisconnect, packets.NotAuthorized)
		return &ReasonError{Code: code, Reason: reason, Err: err}
	}
	if done {
		c.x.reauth = nil
		c.queue(c.authPacket(packets.Success, data))
		return nil
	}
	c.queue(c.authPacket(packets.ContinueAuthentication, data))
	return nil
}
