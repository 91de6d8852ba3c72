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

// errStoreFailing refuses a persistent session while the store's writes
// fail.
var errStoreFailing = errors.New("tern: the store is failing; persistent sessions cannot be stored now")

// neverExpires is the Session Expiry Interval, in seconds, of a session
// that never expires.
const neverExpires = 0xFFFFFFFF

// refuse answers a CONNECT with a refusal and returns the error that ends
// the connection: CONNACK with the code and session present 0, then the
// connection closes [MQTT-3.2.2-4, MQTT-3.2.2-5] [v5 MQTT-3.2.2-6,
// MQTT-3.2.2-7]. An MQTT 3.1.1 client gets the nearest return code.
func (c *conn) refuse(code packets.ReasonCode, reason string, why error) error {
	// Counted before the CONNACK leaves, so that a client that saw the
	// refusal also sees it in Stats.
	c.b.stats.refuse(connackRefusal(code, why), 1)
	var props packets.Properties
	props.ReasonString = reason // a CONNACK may carry it whatever the client asked
	c.writeNow(c.proto.connack(false, code, &props))
	return fmt.Errorf("tern: CONNECT refused with %s: %w", code, why)
}

// refuseErr refuses with the reason code a hook's error asks for, def if
// it asks for none.
func (c *conn) refuseErr(err error, def packets.ReasonCode) error {
	code, reason := reasonFor(err, packets.TypeConnack, def)
	return c.refuse(code, reason, err)
}

// attachment is what a CONNECT asks of its session.
type attachment struct {
	clean  bool   // Clean Session, or Clean Start
	expiry uint32 // Session Expiry Interval in seconds (neverExpires: never)
	owner  string // the owner checkOwner allowed
	window int    // outbound window: MaxInflight, within the client's Receive Maximum
	props  packets.Properties
	will   *session.Message // the will, with willDelay
	delay  uint32           // Will Delay Interval in seconds
	// cluster is the session the cluster kept for the client identifier
	// (nil: none, or no cluster).
	cluster *ClusterSession
}

// connect handles a decoded CONNECT: identifier rules, authentication,
// session takeover and resumption, CONNACK, and resending what the session
// had in flight.
func (c *conn) connect(cp *packets.Connect) error {
	b := c.b
	p := &c.proto
	p.version = cp.ProtocolLevel
	cprops := &cp.Properties
	if p.v5() {
		c.r.SetVersion(packets.Level5)
		if cprops.MaximumPacketSize != nil {
			p.maxOut = int(*cprops.MaximumPacketSize)
		}
		p.noProblem = cprops.RequestProblemInfo != nil && *cprops.RequestProblemInfo == 0
		p.aliasMax = uint16(b.opts.TopicAliasMaximum)
		if cprops.TopicAliasMaximum != nil {
			// [v5 MQTT-3.1.2-26, MQTT-3.3.2-11] never above the client's
			// maximum; none without one [v5 MQTT-3.1.2-27].
			p.aliasOut = min(uint16(b.opts.OutboundTopicAliases), *cprops.TopicAliasMaximum)
		}
		p.authMethod = cprops.AuthMethod
	}
	p.setPlainMax()
	var a attachment
	id := cp.ClientID
	if cp.ProtocolLevel == packets.Level31 && (id == "" || utf8.RuneCountInString(id) > 23) {
		// MQTT 3.1 requires identifiers of 1 to 23 characters.
		return c.refuse(packets.ClientIdentifierNotValid, "", errors.New("MQTT 3.1 client identifier must have 1 to 23 characters"))
	}
	if id == "" {
		if !p.v5() && !cp.CleanSession {
			// [MQTT-3.1.3-8] empty identifier without clean session: 0x02.
			return c.refuse(packets.ClientIdentifierNotValid, "", errors.New("empty client identifier requires clean session [MQTT-3.1.3-8]"))
		}
		// [MQTT-3.1.3-6] [v5 MQTT-3.1.3-6] assign a unique identifier, and
		// tell an MQTT 5 client which [v5 MQTT-3.1.3-7, MQTT-3.2.2-16].
		id = b.nextClientID()
		a.props.AssignedClientID = id
	} else if len(id) > b.opts.MaxClientIDLength {
		// The limit is on what clients send; an assigned identifier may
		// be longer.
		return c.refuse(packets.ClientIdentifierNotValid, "", fmt.Errorf("client identifier longer than %d bytes", b.opts.MaxClientIDLength))
	}
	if cp.WillFlag {
		// A will topic is a topic name: no wildcards [MQTT-3.3.2-2].
		if err := topics.ValidName(cp.WillTopic); err != nil {
			return fmt.Errorf("%w: will topic: %w", ErrProtocol, err)
		}
		if err := b.opts.checkLevels("will topic", cp.WillTopic); err != nil {
			if p.v5() {
				// MQTT 5 can say why: CONNACK 0x90 (Topic Name invalid).
				return c.refuse(packets.TopicNameInvalid, err.Error(), fmt.Errorf("%w: %w", ErrProtocol, err))
			}
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		a.will, a.delay = willMessage(cp)
	}
	username := cp.Username
	if b.opts.UseCertCNAsUsername {
		// As Mosquitto's use_identity_as_username: the verified client
		// certificate's Common Name is the user name; no certificate, no
		// connection.
		cn, ok := listeners.PeerCommonName(c.nc)
		if !ok {
			return c.refuse(packets.NotAuthorized, "", errors.New("no verified client certificate to take the user name from"))
		}
		username = cn
	}
	c.client = Client{ID: id, Username: username, RemoteAddr: c.nc.RemoteAddr()}
	info := connectInfo(cp, id, username, c, b.opts.UseCertCNAsUsername)
	ctx, cancel := context.WithTimeout(b.ctx, b.opts.ConnectTimeout)
	defer cancel()
	if p.v5() && p.authMethod != "" {
		// [v5 MQTT-4.12.0-1..5] enhanced authentication, before anything
		// else decides.
		data, err := c.authenticateEnhanced(ctx, &info)
		if err != nil {
			return err
		}
		a.props.AuthMethod, a.props.AuthData = p.authMethod, data
	}
	if err := b.hooks.authenticate(ctx, b, info); err != nil {
		// [MQTT-3.2.2-4, MQTT-3.2.2-5] refused: CONNACK with a non-zero
		// code and session present 0, then close.
		return c.refuseErr(err, packets.NotAuthorized)
	}
	if a.will != nil {
		if err := b.hooks.authorizePublish(ctx, b, c.client, publicMessage(a.will, 0)); err != nil {
			// As Mosquitto: a will the client may not publish refuses the
			// connection.
			return c.refuseErr(fmt.Errorf("will topic: %w", err), packets.NotAuthorized)
		}
	}
	// The session belongs to the identity that created it.
	owner, err := b.checkOwner(ctx, info)
	if err != nil {
		return c.refuseErr(err, packets.NotAuthorized)
	}
	a.owner, a.clean = owner, cp.CleanSession
	// ConnectInterceptor hooks may change the session expiry and the
	// keepalive asked for.
	asked := info
	if err := b.hooks.interceptConnect(ctx, b, &info); err != nil {
		return c.refuseErr(err, packets.NotAuthorized)
	}
	a.expiry = b.capExpiry(expirySeconds(info.SessionExpiry))
	if p.v5() && a.expiry != expirySeconds(asked.SessionExpiry) {
		// The client is told the interval used when it differs.
		a.props.SessionExpiry = new(a.expiry)
	}
	if a.expiry > 0 && b.persist != nil && b.persist.failing() {
		// A persistent session cannot be stored now: say so at once
		// rather than hold the CONNACK until the store recovers.
		return c.refuse(packets.ServerUnavailable, "", errStoreFailing)
	}
	c.setKeepAlive(info.KeepAlive.Round(time.Second))
	if p.v5() && c.keepAlive() != asked.KeepAlive {
		a.props.ServerKeepAlive = new(uint16(c.keepAlive() / time.Second))
	}
	a.window = b.opts.MaxInflight
	if p.v5() {
		c.negotiate(cp, &a)
	}
	if b.cluster != nil {
		// The client identifier is held by one connection in the whole
		// cluster: a connection on another node ends first, and the
		// session comes from the cluster. On this node, one CONNECT for
		// the identifier at a time, from the claim to the CONNACK; the
		// connection that holds it here ends (releasing it in the
		// cluster) before the claim, so that its release cannot undo
		// the new claim.
		done, err := b.ids.connecting(ctx, id)
		if err != nil {
			return c.refuse(packets.ServerUnavailable, "", err)
		}
		defer done()
		b.takeOver(id, a.clean)
		if err := b.ids.released(ctx, id); err != nil {
			return c.refuse(packets.ServerUnavailable, "", err)
		}
		if err := c.claim(ctx, &info, &a); err != nil {
			return err
		}
	} else {
		// A connection that holds the session first handles what it has
		// received, then ends [MQTT-3.1.4-2] [v5 MQTT-3.1.4-3].
		b.takeOver(id, a.clean)
	}
	if err := b.attach(c, id, &a); err != nil {
		return c.refuseErr(err, packets.NotAuthorized)
	}
	if b.cluster != nil && a.expiry > 0 {
		// The CONNACK leaves once the cluster has the session.
		b.saveSession(c.s)
	}
	b.hooks.onConnect(b, c.client)
	return nil
}

// claim takes the client identifier in the cluster for c. A persistent
// session the cluster cannot confirm is refused (CONNACK 0x03, or for
// MQTT 5 0x88); a clean session goes on on this node alone.
func (c *conn) claim(ctx context.Context, info *ConnectInfo, a *attachment) error {
	b := c.b
	claim := &ClusterClaim{
		ClientID: info.ClientID, Username: info.Username, Clean: a.clean,
		Allow: func(ctx context.Context, owner string) error {
			if owner == info.Username {
				return nil
			}
			return b.hooks.authorizeSession(ctx, b, *info, Client{ID: info.ClientID, Username: owner})
		},
	}
	if a.will != nil {
		claim.Will = &storage.Will{Msg: storedMessage(a.will), Delay: a.delay}
	}
	cs, err := b.cluster.Claim(ctx, claim)
	switch {
	case err == nil:
		if !a.clean {
			a.cluster = cs
		}
		a.owner = info.Username
		if cs != nil {
			a.owner = cs.Username
		}
		return nil
	case errors.Is(err, ErrSessionOwned), !errors.Is(err, ErrClusterUnavailable) && !errors.Is(err, context.DeadlineExceeded):
		return c.refuseErr(err, packets.NotAuthorized)
	case a.expiry > 0:
		return c.refuse(packets.ServerUnavailable, "", err)
	}
	b.log.Warn("cluster unavailable: a clean session goes on on this node alone", "client", info.ClientID, "error", err)
	return nil
}

// negotiate applies an MQTT 5 CONNECT's limits and requests, and sets the
// CONNACK properties that announce the broker's.
func (c *conn) negotiate(cp *packets.Connect, a *attachment) {
	b := c.b
	cprops := &cp.Properties
	if cprops.ReceiveMaximum != nil {
		// [v5 MQTT-3.3.4-9] never more unacknowledged QoS 1 and 2
		// PUBLISHes than the client's Receive Maximum.
		a.window = min(a.window, int(*cprops.ReceiveMaximum))
	}
	if limit := b.opts.MaxKeepAlive; limit > 0 && (c.keepAliveSec == 0 || c.keepAlive() > limit) {
		// Server Keep Alive: the client uses this one instead of its own
		// [v5 MQTT-3.1.2-21, MQTT-3.2.2-21].
		c.setKeepAlive(limit)
		a.props.ServerKeepAlive = new(uint16(limit / time.Second))
	}
	if b.opts.ReceiveMaximum < 65535 {
		a.props.ReceiveMaximum = new(uint16(b.opts.ReceiveMaximum))
	}
	a.props.MaximumPacketSize = new(uint32(b.opts.MaxPacketSize))
	if b.opts.TopicAliasMaximum > 0 {
		a.props.TopicAliasMaximum = new(uint16(b.opts.TopicAliasMaximum))
	}
	if cprops.RequestResponseInfo != nil && *cprops.RequestResponseInfo == 1 && b.opts.ResponseInformation != "" {
		// Only on request [v5 MQTT-3.1.2-28].
		a.props.ResponseInfo = b.opts.ResponseInformation
	}
}

// expirySeconds is a Session Expiry as an interval in whole seconds
// (neverExpires: NoExpiry or more).
func expirySeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	if d >= NoExpiry {
		return neverExpires
	}
	return uint32(max((d+time.Second-1)/time.Second, 1))
}

// willMessage returns the will of a CONNECT, with its MQTT 5 properties,
// and its Will Delay Interval.
func willMessage(cp *packets.Connect) (*session.Message, uint32) {
	w := &session.Message{Topic: cp.WillTopic, Payload: cp.WillMessage, QoS: cp.WillQoS, Retain: cp.WillRetain}
	if cp.ProtocolLevel != packets.Level5 {
		return w, 0
	}
	wp := &cp.WillProperties
	if wp.PayloadFormat != nil {
		w.HasFormat, w.Format = true, *wp.PayloadFormat
	}
	// The Message Expiry Interval of a will counts from its publication:
	// kept as an interval (in Expires, negated) until then.
	if wp.MessageExpiry != nil {
		w.Expires = -int64(*wp.MessageExpiry)
	}
	// [v5 MQTT-3.1.3-10] user properties kept in order.
	w.Props, _ = packets.AppendPublishRaw(nil, &packets.Properties{
		ContentType: wp.ContentType, ResponseTopic: wp.ResponseTopic, CorrelationData: wp.CorrelationData, User: wp.User,
	})
	var delay uint32
	if wp.WillDelay != nil {
		delay = *wp.WillDelay
	}
	return w, delay
}

// connectInfo is what hooks see of a CONNECT.
func connectInfo(cp *packets.Connect, id, username string, c *conn, certUser bool) ConnectInfo {
	info := ConnectInfo{
		ClientID:      id,
		Username:      username,
		Password:      cp.Password,
		HasUsername:   cp.UsernameFlag || certUser,
		HasPassword:   cp.PasswordFlag,
		CleanSession:  cp.CleanSession,
		RemoteAddr:    c.nc.RemoteAddr(),
		TLS:           listeners.TLSState(c.nc),
		ProtocolLevel: cp.ProtocolLevel,
		KeepAlive:     time.Duration(cp.KeepAlive) * time.Second,
	}
	if cp.WillFlag {
		w, delay := willMessage(cp)
		m := publicMessage(w, 0)
		info.Will, info.WillDelay = &m, time.Duration(delay)*time.Second
	}
	if cp.ProtocolLevel != packets.Level5 {
		if !cp.CleanSession {
			info.SessionExpiry = NoExpiry
		}
		return info
	}
	p := &cp.Properties
	if p.SessionExpiry != nil {
		info.SessionExpiry = time.Duration(*p.SessionExpiry) * time.Second
	}
	if p.ReceiveMaximum != nil {
		info.ReceiveMaximum = *p.ReceiveMaximum
	}
	if p.MaximumPacketSize != nil {
		info.MaximumPacketSize = *p.MaximumPacketSize
	}
	if p.TopicAliasMaximum != nil {
		info.TopicAliasMaximum = *p.TopicAliasMaximum
	}
	info.RequestProblemInfo = p.RequestProblemInfo == nil || *p.RequestProblemInfo == 1
	info.RequestResponseInfo = p.RequestResponseInfo != nil && *p.RequestResponseInfo == 1
	info.UserProperties = p.User
	info.AuthMethod, info.AuthData = p.AuthMethod, p.AuthData
	return info
}

// attach binds c to the session of client id: it closes a connection that
// still holds the same id [MQTT-3.1.4-2] (takeOver normally let it end
// first), discards or resumes the session [MQTT-3.1.2-4, MQTT-3.1.2-6]
// [v5 MQTT-3.1.2-4..6], sends CONNACK with the session present flag
// [MQTT-3.2.2-1..3] [v5 MQTT-3.2.2-2, MQTT-3.2.2-3], and resends what was
// in flight [MQTT-4.4.0-1]. It refuses, changing nothing, when the session
// now belongs to an identity other than c's and a.owner (the owner
// checkOwner allowed).
func (b *Broker) attach(c *conn, id string, a *attachment) error {
	b.mu.Lock()
	s := b.sessions[id]
	if b.cluster != nil && s != nil && s.conn.Load() == nil && (a.cluster == nil || a.cluster.Revision != s.revision()) {
		// This node's copy of an offline session is stale: the cluster's
		// record is newer, or the session ended elsewhere.
		b.mu.Unlock()
		b.forgetSession(s)
		b.mu.Lock()
		s = b.sessions[id]
	}
	if s == nil && a.cluster != nil {
		s = b.sessionFromCluster(a.cluster, a.window)
		b.sessions[id] = s
	}
	if s != nil {
		s.mu.Lock()
		if who := s.username(); who != c.client.Username && who != a.owner {
			s.mu.Unlock()
			b.mu.Unlock()
			return ErrSessionOwned
		}
		if old := s.conn.Load(); old != nil {
			// [MQTT-3.1.4-2] the existing client is disconnected; its will
			// is published unless the session carries on (see end).
			old.markTakenOver(!a.clean && !s.s.Clean)
			old.setReason(ErrTakenOver)
			old.kill()
			s.conn.Store(nil)
		}
		discard := a.clean || s.s.Clean
		if discard && s.will() != nil {
			// [v5 MQTT-3.1.2-8] Clean Start ends the session before its
			// pending will's delay has passed: the will is published now
			// (the new connection is not to that session).
			defer b.publishWill(s.client(), s.will())
		}
		// [v5 MQTT-3.1.3-9] a new connection to the session before the
		// Will Delay Interval has passed: the pending will is not sent.
		s.cancelTimers()
		if discard {
			// [MQTT-3.1.2-6] a clean session starts from nothing.
			s.gone = true
			defer b.redistribute(b.dropSubscriptions(s))
			if !s.s.Clean { // a clean one ended with its connection already
				defer b.hooks.onSession(b, s.client(), SessionEvent{Kind: SessionEnded, Reason: ErrSessionDiscarded})
			}
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
	present := s != nil // [MQTT-3.2.2-2] / [MQTT-3.2.2-1, MQTT-3.2.2-3]
	if s == nil {
		s = &sess{b: b, s: session.Make(id, a.expiry == 0, a.window, b.opts.MaxQueued)}
		b.sessions[id] = s
	}
	s.mu.Lock()
	b.mu.Unlock()
	if !s.s.Clean && a.expiry == 0 && b.persistent(s) {
		// An MQTT 5 client resumed a stored session with expiry 0: it now
		// ends with this connection, and is no longer stored.
		b.record(c, storage.Op{Kind: storage.DeleteSession, ClientID: id})
	}
	s.s.Clean = a.expiry == 0
	s.expiry = a.expiry
	s.s.SetLimits(a.window, b.opts.MaxQueued)
	if s.client() != c.client {
		s.identGen.Add(1) // read checks made for the old identity are stale
	}
	s.who = &c.client
	c.s = s
	c.will, c.willDelay = a.will, a.delay
	if b.persistent(s) {
		// CONNACK waits until the session is stored.
		b.record(c, storage.Op{Kind: storage.PutSession, Session: s.record(c.will, c.willDelay)})
	}
	b.stats.connects.Add(1) // counted before the CONNACK leaves
	connack := c.proto.connack(present, packets.Success, &a.props)
	c.proto.connacked.Store(true)
	b.mem.touch(0)
	c.mu.Lock()
	c.out = append(c.buffer(), connack...)
	c.mu.Unlock()
	// [MQTT-4.4.0-1] resend unacknowledged PUBLISH (DUP set, same packet
	// identifier) and PUBREL packets, in their original order; a PUBLISH
	// the connection's identity may not read is dropped instead.
	readCheck := b.hooks.hasReadChecks()
	now := time.Now().UnixNano()
	for _, d := range s.s.Resend(a.window) {
		if !d.Released && readCheck && !b.hooks.authorizeRead(b, c.client, d.Msg.Topic) {
			s.dropDelivery(d, errNotReadable)
			continue
		}
		c.mu.Lock()
		start := len(c.out)
		var kept bool
		if d.Released {
			c.out = appendAck(c.out, packets.TypePubrel, d.PacketID)
			if kept = c.proto.fits(len(c.out) - start); !kept {
				c.out = c.out[:start]
			}
		} else {
			// On this new connection no alias is known yet
			// [v5 MQTT-3.3.2-7]: the PUBLISH carries its topic name.
			c.out = c.appendDelivery(c.out, d, true, now)
			kept = c.keepPublish(start, d.Msg.Topic)
		}
		if !kept {
			// [v5 MQTT-3.1.2-25] too large for the new connection.
			c.mu.Unlock()
			s.dropDelivery(d, errTooLarge)
			continue
		}
		c.mu.Unlock()
		b.stats.sent(d.QoS)
	}
	// Bound only now: the QoS 0 fast path of deliver reads s.conn without
	// s.mu, and must not write a PUBLISH before the CONNACK [MQTT-3.2.0-1].
	s.conn.Store(c)
	s.trimExtra()
	s.pumpLocked(c)
	s.mu.Unlock()
	s.fireEvents()
	kind := SessionCreated
	if present {
		kind = SessionResumed
	}
	b.hooks.onSession(b, c.client, SessionEvent{Kind: kind})
	// The reader writes the CONNACK at the end of its read batch (or
	// before it closes the connection, if a violation follows).
	c.mu.Lock()
	kick := c.touchLocked()
	c.mu.Unlock()
	if kick {
		c.sc.kick = append(c.sc.kick, c)
	}
	return nil
}

// detach unbinds c from its session when c ends; a session whose expiry
// is 0 ends with its connection [MQTT-3.1.2-6] [v5 MQTT-3.1.2-23]; another
// starts its expiry timer [v5 MQTT-4.1.0-2]. It reports whether the client
// identifier is to be released in the cluster (releaseSession).
func (b *Broker) detach(s *sess, c *conn) (release bool) {
	var os []orphan
	var ended *Client
	defer func() { // runs after the locks are released
		b.redistribute(os)
		if ended != nil {
			b.hooks.onSession(b, *ended, SessionEvent{Kind: SessionEnded, Reason: ErrSessionClosed})
		}
	}()
	b.mu.Lock()
	defer b.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn.Load() != c {
		return // taken over: the session belongs to the new connection
	}
	s.conn.Store(nil)
	if b.cluster != nil {
		// The client identifier is released in the cluster once the will
		// is settled (end); a new CONNECT for it on this node waits.
		release = true
		b.ids.releasing(s.s.ID)
	}
	if s.s.Clean {
		s.gone = true
		os = b.dropSubscriptions(s)
		delete(b.sessions, s.s.ID)
		client := s.client()
		ended = &client
		return
	}
	s.x().lastSeen = time.Now()
	s.keepClient(c.client) // a copy: c goes
	var dropped []session.Delivery
	if !b.opts.QueueQoS0 && !c.keepsSession() {
		dropped = s.s.DropQueuedQoS0()
	}
	if b.persistent(s) {
		ops := []storage.Op{{Kind: storage.PutSession, Session: s.record(nil, 0)}}
		for _, d := range dropped {
			ops = append(ops, deleteDeliveryOp(s.s.ID, d.Seq))
		}
		b.persist.add(ops...)
	}
	b.scheduleExpiry(s)
	return release
}

// dropSubscriptions removes every subscription of s, which ends, from the
// index and its shared subscriptions; s.mu is held. It returns the
// messages s held for shared subscriptions, for the groups' other members.
func (b *Broker) dropSubscriptions(s *sess) []orphan {
	os := orphans(s)
	for f := range s.s.Subs {
		b.unsubscribe(s, f)
	}
	s.s.Subs = nil
	return os
}
