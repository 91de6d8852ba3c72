package auth

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/ternmq/tern"
)

// File is the parsed content of an auth file: users with bcrypt password
// hashes, whether anonymous clients may connect, and ACL rules. It is a
// Tern hook: it implements tern.Authenticator, tern.PublishAuthorizer,
// tern.SubscribeAuthorizer and tern.ReadAuthorizer, so add it with
// Broker.AddHook. It is safe for concurrent use; Reload replaces its
// content atomically. Its password checks are bounded by Options.
type File struct {
	name   string
	path   string     // "" when made by Parse
	g      *guard     // password checks
	reload sync.Mutex // serialises Reload
	t      atomic.Pointer[table]
}

var (
	_ tern.Authenticator       = (*File)(nil)
	_ tern.PublishAuthorizer   = (*File)(nil)
	_ tern.SubscribeAuthorizer = (*File)(nil)
	_ tern.ReadAuthorizer      = (*File)(nil)
)

// user is one user line with the rules that concern that user.
type user struct {
	line  int
	hash  *pwHash
	rules *ruleSet // the user's own rules and the "all" rules
}

// table is one immutable version of a File.
type table struct {
	anonymous bool
	noACL     bool // no acl line: every client may do everything
	users     map[string]*user
	anon      *ruleSet // anonymous rules and the "all" rules without %u
	other     *ruleSet // "all" rules, for a user name the file does not list
	hashes    map[string]*pwHash
	dummy     *pwHash // compared for unknown users; nil without users
	creds     *credentials
}

// makeDummy makes the hash compared for unknown users, as costly as the
// users' hashes.
func (t *table) makeDummy() error {
	t.hashes = make(map[string]*pwHash, len(t.users))
	for name, u := range t.users {
		t.hashes[name] = u.hash
	}
	d, err := dummyFor(t.hashes)
	if err != nil {
		return fmt.Errorf("hash for unknown users: %w", err)
	}
	t.dummy = d
	return nil
}

// rulesFor returns the rule set that applies to a client with the given
// user name; an empty user name is an anonymous client.
func (t *table) rulesFor(username string) *ruleSet {
	if username == "" {
		return t.anon
	}
	if u, ok := t.users[username]; ok {
		return u.rules
	}
	return t.other
}

// Parse reads an auth file from r with the default Options. name is used
// in error messages, which name the line of each mistake (see ParseError).
// The format is described in the package documentation.
func Parse(r io.Reader, name string) (*File, error) {
	return ParseWithOptions(r, name, Options{})
}

// ParseWithOptions is Parse with the given bounds on password checks.
func ParseWithOptions(r io.Reader, name string, o Options) (*File, error) {
	g, err := newGuard(o)
	if err != nil {
		return nil, err
	}
	t, err := parse(r, name)
	if err != nil {
		return nil, err
	}
	f := &File{name: name, g: g}
	f.store(t)
	return f, nil
}

// Load reads the auth file at path, with the default Options.
func Load(path string) (*File, error) {
	return LoadWithOptions(path, Options{})
}

// LoadWithOptions reads the auth file at path, with the given bounds on
// password checks. An invalid option is an error naming the field.
func LoadWithOptions(path string, o Options) (*File, error) {
	g, err := newGuard(o)
	if err != nil {
		return nil, err
	}
	t, err := loadTable(path)
	if err != nil {
		return nil, err
	}
	f := &File{name: path, path: path, g: g}
	f.store(t)
	return f, nil
}

// store puts a new version in force, with a new, empty success cache.
func (f *File) store(t *table) {
	t.creds = f.g.newCredentials(t.hashes, t.dummy)
	f.t.Store(t)
}

// Stats returns the counts of password checks and of CONNECTs refused
// without one.
func (f *File) Stats() Stats { return f.g.stats() }

func loadTable(path string) (*table, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	defer fh.Close()
	return parse(fh, path)
}

// Reload reads the file given to Load again and, if it is valid, replaces
// the users, the anonymous setting and the rules at once; connected clients
// are judged by the new rules from their next check on. On error the old
// content stays in force. A File made by Parse cannot be reloaded.
func (f *File) Reload() error {
	if f.path == "" {
		return fmt.Errorf("auth: %s was not loaded from a file and cannot be reloaded", f.name)
	}
	f.reload.Lock()
	defer f.reload.Unlock()
	t, err := loadTable(f.path)
	if err != nil {
		return err
	}
	f.store(t)
	return nil
}

// Authenticate accepts a CONNECT whose user name and password match a user
// line, and a CONNECT without a user name (or with an empty one) when
// anonymous access is on. A wrong password, an unknown user or a password
// longer than 72 bytes gives tern.ErrBadCredentials (CONNACK 0x04); a
// client without a user name while anonymous access is off gets
// tern.ErrNotAuthorized (CONNACK 0x05). Unknown users cost as much time as
// known ones, so the answer time does not tell which users exist. A
// password that could not be checked now (see Options) gives an error
// wrapping tern.ErrServerUnavailable (CONNACK 0x03).
func (f *File) Authenticate(ctx context.Context, c tern.ConnectInfo) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("auth: %w: %w", tern.ErrServerUnavailable, err)
	}
	t := f.t.Load()
	if c.Username == "" {
		if t.anonymous {
			return nil
		}
		return tern.ErrNotAuthorized
	}
	return f.g.check(ctx, t.creds, c.Username, c.Password, c.RemoteAddr)
}

// AuthorizePublish allows a PUBLISH when the client has write access to
// the topic: no matching deny write rule and at least one matching allow
// write rule. Internal clients (Broker.Publish) are always allowed.
func (f *File) AuthorizePublish(_ context.Context, c tern.Client, m tern.Message) error {
	if f.allowTopic(accessWrite, c, m.Topic) {
		return nil
	}
	return fmt.Errorf("auth: client %q may not publish to %q: %w", c.ID, m.Topic, tern.ErrNotAuthorized)
}

// AuthorizeRead reports whether the client has read access to the topic of
// a message about to be delivered: no matching deny read rule and at least
// one matching allow read rule. It does not allocate.
func (f *File) AuthorizeRead(c tern.Client, topic string) bool {
	return f.allowTopic(accessRead, c, topic)
}

func (f *File) allowTopic(a access, c tern.Client, topic string) bool {
	if c.Internal {
		return true
	}
	t := f.t.Load()
	if !validName(topic) {
		return false
	}
	if t.noACL {
		return true
	}
	return t.rulesFor(c.Username).allowTopic(a, c.Username, c.ID, topic)
}

// AuthorizeSubscribe allows a subscription to filter unless no read rule
// could ever grant a topic it matches, or one deny read rule covers every
// topic it matches. A granted wildcard subscription delivers only the
// topics AuthorizeRead allows: "#" for a client that may read only
// "public/#" is granted and receives only public/... messages.
func (f *File) AuthorizeSubscribe(_ context.Context, c tern.Client, filter string, _ byte) error {
	if c.Internal {
		return nil
	}
	t := f.t.Load()
	if err := validFilter(filter); err != nil {
		return fmt.Errorf("auth: filter %q: %w: %w", filter, err, tern.ErrNotAuthorized)
	}
	if t.noACL || t.rulesFor(c.Username).allowSubscribe(c.Username, c.ID, filter) {
		return nil
	}
	return fmt.Errorf("auth: client %q may not subscribe to %q: %w", c.ID, filter, tern.ErrNotAuthorized)
}
