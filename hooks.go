package tern

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/ternmq/tern/packets"
)

// A hook is any value that implements one or more of the small interfaces
// below. AddHook discovers which ones by type assertion, the way io.Copy
// discovers io.WriterTo: implement only what you need. Hooks run in the
// order they were added; for the checks (Authenticator, PublishAuthorizer,
// SubscribeAuthorizer, ReadAuthorizer, PublishInterceptor) the first refusal
// wins and the hooks after it are not asked. A panic inside a hook is
// recovered, logged, and treated as a refusal.
//
// With no Authenticator added, every client may connect; with no authorizer,
// every client may publish and subscribe to everything (like Mosquitto's
// default local-only mode). Add an authenticator before serving anything but
// loopback.

// ConnectInfo is what an Authenticator sees of a CONNECT.
type ConnectInfo struct {
	ClientID    string // the identifier the broker assigned if the client sent none
	Username    string
	Password    []byte
	HasUsername bool // the CONNECT carried a user name (possibly empty)
	HasPassword bool // the CONNECT carried a password (possibly empty)
	// CleanSession is the Clean Session flag (Clean Start in MQTT 5).
	CleanSession bool
	RemoteAddr   net.Addr
	// TLS is the connection's TLS state, nil for a plain connection.
	TLS *tls.ConnectionState
	// ProtocolLevel is 5 for MQTT 5, 4 for MQTT 3.1.1 and 3 for MQTT 3.1.
	ProtocolLevel byte
	// KeepAlive is the Keep Alive the client asked for.
	KeepAlive time.Duration
	// Will is the will message with its properties; nil without one.
	Will *Message
	// WillDelay is the MQTT 5 Will Delay Interval.
	WillDelay time.Duration

	// The MQTT 5 CONNECT properties; zero for MQTT 3.1.1.

	// SessionExpiry is the Session Expiry Interval the client asked for:
	// how long its session outlives the connection. NoExpiry: forever. For
	// MQTT 3.1.1 it is NoExpiry without clean session, 0 with it.
	SessionExpiry time.Duration
	// ReceiveMaximum, MaximumPacketSize and TopicAliasMaximum are what the
	// client accepts (0 when it did not say: no limit of its own).
	ReceiveMaximum    uint16
	MaximumPacketSize uint32
	TopicAliasMaximum uint16
	// RequestProblemInfo and RequestResponseInfo are the client's requests.
	RequestProblemInfo  bool
	RequestResponseInfo bool
	UserProperties      []UserProperty
	// AuthMethod and AuthData are the enhanced authentication method and
	// the data of the CONNECT (section 4.12); see EnhancedAuthenticator.
	AuthMethod string
	AuthData   []byte
}

// NoExpiry is the Session Expiry (and Message Expiry) meaning never.
const NoExpiry = time.Duration(0xFFFFFFFF) * time.Second

// UserProperty is an MQTT 5 User Property: a name and a value, both UTF-8.
type UserProperty = packets.UserProperty

// Client identifies a connected client to the authorizer and observer hooks.
type Client struct {
	ID         string
	Username   string
	RemoteAddr net.Addr
	// Internal is true for messages the application injected with
	// Broker.Publish and for Broker.Subscribe handlers: no network client.
	Internal bool
}

// Message is an application message as it travels through the broker.
//
// A hook is given a Message whose Payload and CorrelationData may alias
// the buffer the broker read the PUBLISH into, which the next packet
// overwrites: like the p of io.Writer.Write, they are valid only until the
// hook returns, and a hook that keeps them (an audit queue, for example)
// copies them. The messages given to Broker.Subscribe handlers stay
// valid.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool

	// MQTT 5 properties, carried unchanged from the publisher to MQTT 5
	// subscribers. A message from an MQTT 3.1.1 client has none, and an
	// MQTT 3.1.1 subscriber gets none.

	PayloadFormat PayloadFormat
	// MessageExpiry is how long the message may wait for a subscriber: the
	// Message Expiry Interval, in whole seconds. 0: it does not expire.
	MessageExpiry   time.Duration
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	UserProperties  []UserProperty // in order
	// SubscriptionIDs are, on a delivery, the Subscription Identifiers of
	// the subscriptions it matched.
	SubscriptionIDs []uint32
}

// PayloadFormat is the MQTT 5 Payload Format Indicator of a message.
type PayloadFormat uint8

// Payload formats.
const (
	PayloadUnspecified PayloadFormat = iota // no indicator (every MQTT 3.1.1 message)
	PayloadBytes                            // indicator 0: unspecified bytes
	PayloadUTF8                             // indicator 1: UTF-8 text
)

// ErrBadCredentials, returned by an Authenticator, refuses the CONNECT with
// return code 0x04 (bad user name or password). Any other non-nil error
// refuses it with 0x05 (not authorized).
var ErrBadCredentials = errors.New("tern: bad user name or password")

// ErrNotAuthorized is a convenient refusal for any hook: for an
// Authenticator it gives CONNACK 0x05.
var ErrNotAuthorized = errors.New("tern: not authorized")

// ErrServerUnavailable, returned by an Authenticator (possibly wrapped),
// refuses the CONNECT with return code 0x03 (server unavailable): the
// credentials could not be checked now (a backend is down, too many checks
// are waiting), and the client may try again later.
var ErrServerUnavailable = errors.New("tern: server unavailable")

// Authenticator decides whether a CONNECT may proceed. A nil error accepts
// it.
type Authenticator interface {
	Authenticate(ctx context.Context, c ConnectInfo) error
}

// SessionAuthorizer decides whether a CONNECT may use a session that
// belongs to another identity. A session belongs to the identity that
// created it (its user name, or the certificate's Common Name with
// Options.UseCertCNAsUsername); by default a CONNECT with the same client
// identifier from another identity is refused with CONNACK 0x05 and
// changes nothing: the session, its queue and a live connection that holds
// it stay as they are. With SessionAuthorizer hooks added, they decide
// instead: nil from every one of them lets the CONNECT resume, take over or
// discard the session, which then belongs to the new identity. It is asked
// only when the identities differ; owner is the session's client as the
// broker knows it (connected or not).
type SessionAuthorizer interface {
	AuthorizeSession(ctx context.Context, c ConnectInfo, owner Client) error
}

// PublishAuthorizer decides whether a client may publish to a topic. A
// refused PUBLISH is still acknowledged as its QoS requires, but it is not
// stored or forwarded, and it is counted as dropped.
type PublishAuthorizer interface {
	AuthorizePublish(ctx context.Context, c Client, m Message) error
}

// SubscribeAuthorizer decides whether a client may subscribe to a filter. A
// refused filter gets SUBACK return code 0x80; the other filters of the same
// SUBSCRIBE are unaffected.
type SubscribeAuthorizer interface {
	AuthorizeSubscribe(ctx context.Context, c Client, filter string, qos byte) error
}

// ReadAuthorizer decides, for each message about to be delivered, whether
// the subscriber may read its topic. It lets a wildcard subscription deliver
// only the topics a client may read. It is called on the publish path, so it
// must be fast.
type ReadAuthorizer interface {
	AuthorizeRead(c Client, topic string) bool
}

// PublishInterceptor sees every incoming publish (from clients and from
// Broker.Publish) after authorization and before it is retained or routed.
// It may change *m (topic, payload, QoS, retain) to rewrite it, or return an
// error to drop it (the sender is still acknowledged). A rewritten topic
// must be a valid topic name, or the message is dropped.
type PublishInterceptor interface {
	InterceptPublish(ctx context.Context, c Client, m *Message) error
}

// ConnectObserver is told of every accepted connection, after CONNACK.
type ConnectObserver interface {
	OnConnect(c Client)
}

// DisconnectObserver is told when a connection ends. reason is nil after a
// DISCONNECT packet and describes the cause otherwise (network error,
// keepalive timeout, protocol violation, takeover, broker shutdown).
type DisconnectObserver interface {
	OnDisconnect(c Client, reason error)
}

// SubscribeObserver is told of each granted subscription.
type SubscribeObserver interface {
	OnSubscribe(c Client, filter string, qos byte)
}

// UnsubscribeObserver is told of each UNSUBSCRIBE filter that removed a
// subscription.
type UnsubscribeObserver interface {
	OnUnsubscribe(c Client, filter string)
}

// DropObserver is told of every message the broker drops instead of
// delivering: refused by a hook, a full queue, an offline clean session.
// c is the client the message was from (refusals) or for (queues).
type DropObserver interface {
	OnDrop(c Client, m Message, reason error)
}
