package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ternmq/tern"
)

// MosquittoFiles names a Mosquitto configuration's password_file and
// acl_file, and its allow_anonymous setting.
type MosquittoFiles struct {
	// PasswordFile is the password_file: "user:HASH" lines as
	// mosquitto_passwd writes them. "" for none.
	PasswordFile string
	// ACLFile is the acl_file: topic, pattern and user lines. "" for
	// none: every client may publish and subscribe to everything.
	ACLFile string
	// AllowAnonymous lets clients without a user name connect, and, when
	// there is no PasswordFile, every client whatever its user name.
	AllowAnonymous bool
}

// Mosquitto is a Tern hook that authenticates and authorizes clients with
// Mosquitto's own password_file and acl_file, as Mosquitto 2.0 does (see
// FORMAT.md for the rules and the few deliberate differences). It
// implements tern.Authenticator, tern.PublishAuthorizer,
// tern.SubscribeAuthorizer and tern.ReadAuthorizer; add it with
// Broker.AddHook. It is safe for concurrent use; Reload replaces the
// content of both files at once. Its password checks are bounded by
// Options, as a File's are.
type Mosquitto struct {
	files  MosquittoFiles
	g      *guard
	reload sync.Mutex // serialises Reload
	t      atomic.Pointer[mosqTable]
}

var (
	_ tern.Authenticator       = (*Mosquitto)(nil)
	_ tern.PublishAuthorizer   = (*Mosquitto)(nil)
	_ tern.SubscribeAuthorizer = (*Mosquitto)(nil)
	_ tern.ReadAuthorizer      = (*Mosquitto)(nil)
)

// mosqTable is one version of both files.
type mosqTable struct {
	creds *credentials // nil without a password file
	acl   *mosqACL     // nil without an acl file
}

// LoadMosquitto reads the password file and the ACL file that files names.
// Errors name the file and the line of each mistake (see ParseError); an
// invalid option is an error naming the field.
func LoadMosquitto(files MosquittoFiles, o Options) (*Mosquitto, error) {
	g, err := newGuard(o)
	if err != nil {
		return nil, err
	}
	m := &Mosquitto{files: files, g: g}
	if err := m.Reload(); err != nil {
		return nil, err
	}
	return m, nil
}

// Reload reads both files again and, when both are valid, puts them in
// force at once: connected clients are judged by the new rules from their
// next check on, and the cache of successful password checks starts
// empty. When either file has a mistake, or cannot be read, the previous
// content stays in force and the error names the file and line.
func (m *Mosquitto) Reload() error {
	m.reload.Lock()
	defer m.reload.Unlock()
	var t mosqTable
	var errs []error
	if p := m.files.PasswordFile; p != "" {
		hashes, err := readFile(p, parsePasswords)
		if err != nil {
			errs = append(errs, err)
		} else if dummy, err := dummyFor(hashes); err != nil {
			errs = append(errs, fmt.Errorf("auth: %s: hash for unknown users: %w", p, err))
		} else {
			t.creds = m.g.newCredentials(hashes, dummy)
		}
	}
	if p := m.files.ACLFile; p != "" {
		acl, err := readFile(p, parseACL)
		if err != nil {
			errs = append(errs, err)
		}
		t.acl = acl
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	m.t.Store(&t)
	return nil
}

func readFile[T any](path string, parse func(io.Reader, string) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	return parse(f, path)
}

// Stats returns the counts of password checks and of CONNECTs refused
// without one.
func (m *Mosquitto) Stats() Stats { return m.g.stats() }

// Authenticate decides a CONNECT as Mosquitto does:
//
//   - A client without a user name (or with an empty one) connects when
//     AllowAnonymous is set, and gets tern.ErrNotAuthorized (CONNACK 0x05)
//     otherwise.
//   - Without a PasswordFile, a client with a user name connects when
//     AllowAnonymous is set, whatever the name and password, and gets
//     tern.ErrNotAuthorized otherwise.
//   - With a PasswordFile, the user must be in it and the password must
//     match its hash; a wrong password, an unknown user or a missing
//     password gets tern.ErrBadCredentials (CONNACK 0x04, where Mosquitto
//     answers 0x05).
//
// Unknown users cost as much time as known ones. A password that could not
// be checked now (see Options) gives an error wrapping
// tern.ErrServerUnavailable (CONNACK 0x03).
func (m *Mosquitto) Authenticate(ctx context.Context, c tern.ConnectInfo) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("auth: %w: %w", tern.ErrServerUnavailable, err)
	}
	t := m.t.Load()
	if c.Username == "" || t.creds == nil {
		if m.files.AllowAnonymous {
			return nil
		}
		return tern.ErrNotAuthorized
	}
	if !c.HasPassword {
		return tern.ErrBadCredentials // as Mosquitto; the same for every user name
	}
	return m.g.check(ctx, t.creds, c.Username, c.Password, c.RemoteAddr)
}

// AuthorizePublish allows a PUBLISH as Mosquitto does: never to a topic
// starting with "$SYS" (but $SYS/broker/connection/+/state, which bridges
// publish, goes on to the ACL) or "$share"; with an acl_file, when the
// client's lines or the patterns grant write access (FORMAT.md).
// Broker.Publish (internal clients) is always allowed.
func (m *Mosquitto) AuthorizePublish(_ context.Context, c tern.Client, msg tern.Message) error {
	if c.Internal {
		return nil
	}
	t := msg.Topic
	ok := validName(t) && !strings.HasPrefix(t, "$share") &&
		(!strings.HasPrefix(t, "$SYS") || topicMatches("$SYS/broker/connection/+/state", t))
	if ok && m.allow(c, t, accessWrite) {
		return nil
	}
	return fmt.Errorf("auth: client %q may not publish to %q: %w", c.ID, t, tern.ErrNotAuthorized)
}

// AuthorizeSubscribe grants every valid filter, as Mosquitto 2.0 does: the
// acl_file is applied to each message delivered (AuthorizeRead), retained
// ones included, so a subscription delivers only what the client may read.
func (m *Mosquitto) AuthorizeSubscribe(_ context.Context, c tern.Client, filter string, _ byte) error {
	if err := validFilter(filter); err != nil && !c.Internal {
		return fmt.Errorf("auth: filter %q: %w: %w", filter, err, tern.ErrNotAuthorized)
	}
	return nil
}

// AuthorizeRead reports whether a message on topic may be delivered to the
// client: with an acl_file, when the client's lines or the patterns grant
// read access; $SYS topics need a line that names them. It does not
// allocate for topics and expansions up to a few hundred bytes.
func (m *Mosquitto) AuthorizeRead(c tern.Client, topic string) bool {
	if c.Internal {
		return true
	}
	return validName(topic) && !strings.HasPrefix(topic, "$share") && m.allow(c, topic, accessRead)
}

func (m *Mosquitto) allow(c tern.Client, topic string, a access) bool {
	acl := m.t.Load().acl
	return acl == nil || acl.allow(c.Username, c.ID, topic, a)
}
