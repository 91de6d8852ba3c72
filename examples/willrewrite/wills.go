package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ternmq/tern"
)

// The user properties willStamp sets on every will it lets through.
const (
	propClientID  = "client-id"  // the client the will is about
	propUsername  = "username"   // its user name, when it gave one
	propOfflineAt = "offline-at" // when the broker published the will, RFC 3339, UTC
)

// maintenanceTopics are where a client is put in maintenance ("on") and
// taken out of it (anything else): maintenance/<client id>.
const maintenanceTopics = "maintenance/+"

// errMaintenance suppresses the will of a client in maintenance.
var errMaintenance = errors.New("client in maintenance: will suppressed")

// willStamp is a tern.WillInterceptor. It stamps every will with the
// client it is about and the time it was published, as user properties
// (MQTT 5 subscribers see them, whatever protocol level the client used),
// and suppresses the wills of clients in maintenance: their going offline
// is expected, and should not raise an alarm.
type willStamp struct {
	now func() time.Time

	mu          sync.Mutex
	maintenance map[string]bool // by client id
}

func newWillStamp() *willStamp {
	return &willStamp{now: time.Now, maintenance: map[string]bool{}}
}

// InterceptWill implements tern.WillInterceptor.
func (s *willStamp) InterceptWill(_ context.Context, c tern.Client, w *tern.Message) error {
	if s.inMaintenance(c.ID) {
		return errMaintenance
	}
	// The client may have set properties of these names itself: only the
	// broker can say who left and when. The slice may be the session's
	// own: change a copy.
	props := slices.DeleteFunc(slices.Clone(w.UserProperties), func(p tern.UserProperty) bool {
		return p.Key == propClientID || p.Key == propUsername || p.Key == propOfflineAt
	})
	props = append(props, tern.UserProperty{Key: propClientID, Value: c.ID})
	if c.Username != "" {
		props = append(props, tern.UserProperty{Key: propUsername, Value: c.Username})
	}
	props = append(props, tern.UserProperty{Key: propOfflineAt, Value: s.now().UTC().Format(time.RFC3339Nano)})
	w.UserProperties = props
	return nil
}

// SetMaintenance puts the client id in maintenance, or takes it out.
func (s *willStamp) SetMaintenance(id string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.maintenance[id] = true
	} else {
		delete(s.maintenance, id)
	}
}

func (s *willStamp) inMaintenance(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maintenance[id]
}

// follow keeps the maintenance state from the messages on
// maintenance/<client id>: "on" puts the client in maintenance, anything
// else takes it out. A device announces its own maintenance before a
// planned restart, or an operator's tool does; retained, the state
// outlives the application's restarts when the broker has a store. (Give
// the broker an ACL hook so that a device may only write its own
// maintenance topic: see examples/auth.)
func (s *willStamp) follow(b *tern.Broker) (cancel func(), err error) {
	return b.Subscribe(maintenanceTopics, tern.SubscribeOptions{QoS: 1}, func(m tern.Message, _ tern.Client) {
		id := strings.TrimPrefix(m.Topic, "maintenance/")
		s.SetMaintenance(id, string(m.Payload) == "on")
	})
}
