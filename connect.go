package tern

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/ternmq/tern/listeners"
	"github.com/ternmq/tern/packets"
	"github.com/ternmq/tern/session"
	"github.com/ternmq/tern/storage"
	"github.com/ternmq/tern/topics"
)

// refuse answers a CONNECT with a refusing return code and returns the error
// that ends the connection [MQTT-3.2.2-4, MQTT-3.2.2-5].
func (c *conn) refuse(code byte, why error) error {
	// Counted before the CONNACK leaves, so that a client that saw the
	// refusal also sees it in Stats.
	c.b.stats.refused.Add(1)
	c.writeNow([]byte{0x20, 2, 0, code})
	return fmt.Errorf("tern: CONNECT refused with 0x%02x: %w", code, why)
}

// connect handles an accepted-for-decoding CONNECT: identifier rules,
// authentication, session takeover and resumption, CONNACK, and resending
// what the session had in flight.
func (c *conn) connect(cp *packets.Connect) error {
	b := c.b
	id := cp.ClientID
	if cp.ProtocolLevel == packets.Level31 && (id == "" || utf8.RuneCountInString(id) > 23) {
		// MQTT 3.1 requires identifiers of 1 to 23 characters.
		return c.refuse(packets.RefusedIdentifierRejected, errors.New("MQTT 3.1 client identifier must have 1 to 23 characters"))
	}
	if id == "" {
		if !cp.CleanSession {
			// [MQTT-3.1.3-8] empty identifier without clean session: 0x02.
			return c.refuse(packets.RefusedIdentifierRejected, errors.New("empty client identifier requires clean session [MQTT-3.1.3-8]"))
		}
		// [MQTT-3.1.3-6] assign a unique identifier.
		id = b.nextClientID()
	}
	if len(id) > b.opts.MaxClientIDLength {
		return c.refuse(packets.RefusedIdentifierRejected, fmt.Errorf("client identifier longer than %d bytes", b.opts.MaxClientIDLength))
	}
	if cp.WillFlag {
		// A will topic is a topic name: no wildcards [MQTT-3.3.2-2].
		if err := topics.ValidName(cp.WillTopic); err != nil {
			return fmt.Errorf("%w: will topic: %w", ErrProtocol, err)
		}
		if err := b.opts.checkLevels("will topic", cp.WillTopic); err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
	}
	username := cp.Username
	if b.opts.UseCertCNAsUsername {
		// As Mosquitto's use_identity_as_username: the verified client
		// certificate's Common Name is the user name; no certificate, no
		// connection.
		cn, ok := listeners.PeerCommonName(c.nc)
		if !ok {
			return c.refuse(packets.RefusedNotAuthorized, errors.New("no verified client certificate to take the user name from"))
		}
		username = cn
	}
	c.client = Client{ID: id, Username: username, RemoteAddr: c.nc.RemoteAddr()}
	info := ConnectInfo{
		ClientID:      id,
		Username:      username,
		Password:      cp.Password,
		HasUsername:   cp.UsernameFlag || b.opts.UseCertCNAsUsername,
		HasPassword:   cp.PasswordFlag,
		CleanSession:  cp.CleanSession,
		RemoteAddr:    c.nc.RemoteAddr(),
		TLS:           listeners.TLSState(c.nc),
		ProtocolLevel: cp.ProtocolLevel,
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.ConnectTimeout)
	defer cancel()
	if err := b.hooks.authenticate(ctx, b, info); err != nil {
		// [MQTT-3.2.2-4, MQTT-3.2.2-5] refused: CONNACK with a non-zero
		// code and session present 0, then close.
		code := packets.RefusedNotAuthorized
		switch {
		case errors.Is(err, ErrBadCredentials):
			code = packets.RefusedBadUsernamePassword
		case errors.Is(err, ErrServerUnavailable):
			code = packets.RefusedServerUnavailable
		}
		return c.refuse(code, err)
	}
	if cp.WillFlag {
		c.will = &session.Message{Topic: cp.WillTopic, Payload: cp.WillMessage, QoS: cp.WillQoS, Retain: cp.WillRetain}
		m := Message{Topic: cp.WillTopic, Payload: cp.WillMessage, QoS: cp.WillQoS, Retain: cp.WillRetain}
		if err := b.hooks.authorizePublish(ctx, b, c.client, m); err != nil {
			// As Mosquitto: a will the client may not publish refuses the
			// connection.
			return c.refuse(packets.RefusedNotAuthorized, fmt.Errorf("will topic: %w", err))
		}
	}
	c.keepAlive = time.Duration(cp.KeepAlive) * time.Second
	b.stats.connects.Add(1) // counted before attach sends CONNACK
	b.attach(c, id, cp.CleanSession)
	b.hooks.onConnect(b, c.client)
	return nil
}

// attach binds c to the session of client id: it closes a connection that
// holds the same id [MQTT-3.1.4-2], discards or resumes the session
// [MQTT-3.1.2-4, MQTT-3.1.2-6], sends CONNACK with the session present flag
// [MQTT-3.2.2-1..3], and resends what was in flight [MQTT-4.4.0-1].
func (b *Broker) attach(c *conn, id string, clean bool) {
	b.mu.Lock()
	s := b.sessions[id]
	if s != nil {
		s.mu.Lock()
		if old := s.conn.Load(); old != nil {
			// [MQTT-3.1.4-2] the existing client is disconnected. Its
			// connection ended without DISCONNECT, so its will is published
			// [MQTT-3.1.2-8], as Mosquitto (since 2.0.3) and EMQX do. This is
			// a deliberate, documented choice: keep it.
			old.setReason(ErrTakenOver)
			old.kill()
			s.conn.Store(nil)
		}
		discard := clean || s.s.Clean
		if discard {
			// [MQTT-3.1.2-6] a clean session starts from nothing.
			s.gone = true
			b.dropSubscriptions(s)
			if b.persistent(s) {
				b.record(c, storage.Op{Kind: storage.DeleteSession, ClientID: id})
			}
		}
		s.mu.Unlock()
		if discard {
			delete(b.sessions, id)
			s = nil
		}
	}
	present := s != nil && !clean // [MQTT-3.2.2-2] / [MQTT-3.2.2-1, MQTT-3.2.2-3]
	if s == nil {
		s = &sess{b: b, s: session.New(id, clean, b.opts.MaxInflight, b.opts.MaxQueued)}
		b.sessions[id] = s
	}
	s.mu.Lock()
	b.mu.Unlock()
	s.client = c.client
	c.s = s
	if b.persistent(s) {
		// CONNACK waits until the session is stored.
		b.record(c, storage.Op{Kind: storage.PutSession, Session: storage.Session{ClientID: id, Username: c.client.Username}})
	}
	c.mu.Lock()
	sp := byte(0)
	if present {
		sp = 1
	}
	c.out = append(c.out, 0x20, 2, sp, packets.Accepted)
	// [MQTT-4.4.0-1] resend unacknowledged PUBLISH (DUP set, same packet
	// identifier) and PUBREL packets, in their original order.
	for _, d := range s.s.Inflight() {
		if d.Released {
			c.out = appendAck(c.out, packets.TypePubrel, d.PacketID)
		} else {
			c.out = appendDelivery(c.out, d, true)
		}
		b.stats.publishSent.Add(1)
	}
	c.mu.Unlock()
	// Bound only now: the QoS 0 fast path of deliver reads s.conn without
	// s.mu, and must not write a PUBLISH before the CONNACK [MQTT-3.2.0-1].
	s.conn.Store(c)
	s.pumpLocked(c)
	s.mu.Unlock()
	// The reader writes the CONNACK at the end of its read batch (or
	// before it closes the connection, if a violation follows).
	c.mu.Lock()
	kick := c.touchLocked()
	c.mu.Unlock()
	if kick {
		c.kick = append(c.kick, c)
	}
}

// detach unbinds c from its session when c ends; a clean session ends with
// its connection [MQTT-3.1.2-6].
func (b *Broker) detach(s *sess, c *conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn.Load() != c {
		return // taken over: the session belongs to the new connection
	}
	s.conn.Store(nil)
	s.lastSeen = time.Now()
	if s.s.Clean {
		s.gone = true
		b.dropSubscriptions(s)
		delete(b.sessions, s.s.ID)
		return
	}
	var dropped []session.Delivery
	if !b.opts.QueueQoS0 {
		dropped = s.s.DropQueuedQoS0()
	}
	if b.persistent(s) {
		ops := []storage.Op{{Kind: storage.PutSession, Session: storage.Session{ClientID: s.s.ID, Username: s.client.Username, LastSeen: s.lastSeen}}}
		for _, d := range dropped {
			ops = append(ops, deleteDeliveryOp(s.s.ID, d.Seq))
		}
		b.persist.add(ops...)
	}
}

// dropSubscriptions removes every subscription of s from the index; s.mu
// is held.
func (b *Broker) dropSubscriptions(s *sess) {
	for f := range s.s.Subs {
		b.subs.Unsubscribe(s, f)
	}
	s.s.Subs = nil
}
