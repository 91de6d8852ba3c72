package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// TestRunKeepsStateInTheDataDirectory: with -data, a persistent session
// (its subscription and a message queued for it) and a retained message
// outlive the process: a second run on the same directory restores them.
func TestRunKeepsStateInTheDataDirectory(t *testing.T) {
	for _, durability := range []string{"sync", "async"} {
		t.Run(durability, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state") // created by run
			srv := startRun(t, "-tcp", "127.0.0.1:0", "-data", dir, "-durability", durability)
			addr := srv.tcpAddr(t)
			sub, _ := dial(t, addr, &packets.Connect{ClientID: "keeper"})
			sub.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "k/#", QoS: 1}}})
			require.IsType(t, &packets.Suback{}, sub.recv())
			sub.send(&packets.Disconnect{})
			pub, _ := dial(t, addr, &packets.Connect{ClientID: "pub", CleanSession: true})
			for i, m := range []packets.Publish{
				{Topic: "k/queued", Payload: []byte("for keeper"), QoS: 1, PacketID: 1},
				{Topic: "r", Payload: []byte("retained"), QoS: 1, PacketID: 2, Retain: true},
			} {
				pub.send(&m)
				ack, ok := pub.recv().(*packets.Puback)
				require.True(t, ok, "expected PUBACK")
				require.Equal(t, uint16(i+1), ack.PacketID)
			}
			require.NoError(t, srv.stop())
			require.FileExists(t, filepath.Join(dir, "tern.db"))

			srv = startRun(t, "-tcp", "127.0.0.1:0", "-data", dir, "-durability", durability)
			addr = srv.tcpAddr(t)
			sub, ack := dial(t, addr, &packets.Connect{ClientID: "keeper"})
			require.Equal(t, packets.Accepted, ack.ReturnCode)
			require.True(t, ack.SessionPresent, "the stored session")
			p, ok := sub.recv().(*packets.Publish)
			require.True(t, ok, "expected the queued message")
			assert.Equal(t, "for keeper", string(p.Payload))
			late, _ := dial(t, addr, &packets.Connect{ClientID: "late", CleanSession: true})
			late.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "r", QoS: 0}}})
			require.IsType(t, &packets.Suback{}, late.recv())
			p, ok = late.recv().(*packets.Publish)
			require.True(t, ok, "expected the retained message")
			assert.Equal(t, "retained", string(p.Payload))
			assert.True(t, p.Retain)
			require.NoError(t, srv.stop())
		})
	}
}

// TestHashPasswordGivesAHashTheAuthFileAccepts: -hash-password reads a
// password on standard input and prints a bcrypt hash; a server whose -auth
// file lists a user with that hash accepts that password and no other.
func TestHashPasswordGivesAHashTheAuthFileAccepts(t *testing.T) {
	var out, errOut bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-hash-password"}, env{stdin: strings.NewReader("s3cret pass\r\n"), stdout: &out, stderr: &errOut}))
	hash := strings.TrimSpace(out.String())
	require.True(t, strings.HasPrefix(hash, "$2") && len(hash) == 60, "%q is not a bcrypt hash", hash)
	authFile := writeFile(t, t.TempDir(), "auth.conf", "user alice "+hash+"\n")
	srv := startRun(t, "-tcp", "127.0.0.1:0", "-auth", authFile)
	addr := srv.tcpAddr(t)
	for _, tc := range []struct {
		password string
		code     byte
	}{
		{"s3cret pass", packets.Accepted},
		{"s3cret pass\r", packets.RefusedBadUsernamePassword}, // the line ending is not part of it
	} {
		_, ack := dial(t, addr, &packets.Connect{ClientID: "a", CleanSession: true, UsernameFlag: true, Username: "alice", PasswordFlag: true, Password: []byte(tc.password)})
		assert.Equal(t, tc.code, ack.ReturnCode, "password %q", tc.password)
	}
	err := run(context.Background(), []string{"-hash-password"}, env{stdin: strings.NewReader(""), stdout: &out, stderr: &errOut})
	assert.Error(t, err, "-hash-password with nothing on standard input")
}

// TestRunRefusesBadConfiguration: bad flags and unusable files make run
// return an error naming the problem, without serving.
func TestRunRefusesBadConfiguration(t *testing.T) {
	tmp := t.TempDir()
	notDir := writeFile(t, tmp, "file", "x")
	corrupt := filepath.Join(tmp, "corrupt")
	require.NoError(t, os.MkdirAll(corrupt, 0o700))
	writeFile(t, corrupt, "tern.db", strings.Repeat("garbage ", 8192))
	cases := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"unknown flag", []string{"-no-such-flag"}, "no-such-flag"},
		{"bad number", []string{"-max-connections", "many"}, "max-connections"},
		{"stray argument", []string{"-tcp", "127.0.0.1:0", "extra"}, `"extra"`},
		{"bad durability", []string{"-durability", "maybe"}, "-durability"},
		{"TLS without certificate", []string{"-tls", "127.0.0.1:0"}, "-cert"},
		{"no listener", []string{"-tcp", ""}, "no listener"},
		{"negative expiry", []string{"-tcp", "127.0.0.1:0", "-session-expiry", "-1s"}, "SessionExpiry"},
		{"data directory is a file", []string{"-tcp", "127.0.0.1:0", "-data", filepath.Join(notDir, "sub")}, "-data"},
		{"corrupt data file", []string{"-tcp", "127.0.0.1:0", "-data", corrupt}, filepath.Join(corrupt, "tern.db")},
		{"missing auth file", []string{"-tcp", "127.0.0.1:0", "-auth", filepath.Join(tmp, "none.conf")}, "none.conf"},
		{"missing password file", []string{"-tcp", "127.0.0.1:0", "-password-file", filepath.Join(tmp, "none.passwd")}, "none.passwd"},
		{"both kinds of auth files", []string{"-auth", "a", "-acl-file", "b"}, "cannot be used together"},
		{"unix socket path taken by a file", []string{"-tcp", "127.0.0.1:0", "-unix", notDir}, notDir},
		{"bad log format", []string{"-log-format", "xml"}, "-log-format"},
		{"bad log level", []string{"-log-level", "loud"}, "-log-level"},
		{"missing certificate", []string{"-tcp", "", "-tls", "127.0.0.1:0", "-cert", filepath.Join(tmp, "c.pem"), "-key", filepath.Join(tmp, "k.pem")}, "c.pem"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			defer cancel()
			var stderr bytes.Buffer
			err := run(ctx, tc.args, env{stdin: strings.NewReader(""), stdout: &bytes.Buffer{}, stderr: &stderr})
			require.Error(t, err, "run %v\n%s", tc.args, stderr.String())
			require.NotErrorIs(t, ctx.Err(), context.DeadlineExceeded, "run %v served until the deadline before failing", tc.args)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestOperationsEndpoint: -http serves /healthz and /stats.
func TestOperationsEndpoint(t *testing.T) {
	srv := startRun(t, "-tcp", "127.0.0.1:0", "-http", "127.0.0.1:0")
	dial(t, srv.tcpAddr(t), &packets.Connect{ClientID: "counted", CleanSession: true})
	base := "http://" + addrOf(t, srv.logs.waitLine(t, 1, "msg=listening", "transport=http"))
	c := &http.Client{Timeout: testTimeout}

	resp, err := c.Get(base + "/healthz")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", strings.TrimSpace(string(body)))

	resp, err = c.Get(base + "/stats")
	require.NoError(t, err)
	var stats struct {
		Connects int64 `json:"connects"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&stats))
	resp.Body.Close()
	assert.Equal(t, int64(1), stats.Connects)
}

// TestLogs: one line per listener with its transport, address and TLS, in
// text or JSON, at the level asked for; -log-file appends to a file.
func TestLogs(t *testing.T) {
	dir := t.TempDir()
	logs := runUntilLogged(t, filepath.Join(dir, "json.log"), `"transport":"ws"`,
		"-tcp", "127.0.0.1:0", "-ws", "127.0.0.1:0", "-log-format", "json")
	var tcp, ws map[string]any
	for line := range strings.Lines(logs) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		if rec["msg"] == "listening" && rec["transport"] == "tcp" {
			tcp = rec
		}
		if rec["msg"] == "listening" && rec["transport"] == "ws" {
			ws = rec
		}
	}
	require.NotNil(t, tcp, logs)
	require.NotNil(t, ws, logs)
	assert.Equal(t, "tcp", tcp["network"])
	assert.Equal(t, false, tcp["tls"])
	assert.Contains(t, ws["addr"], "ws://127.0.0.1:")

	// At warn, only the warning about a listener open to other hosts
	// without authentication.
	logs = runUntilLogged(t, filepath.Join(dir, "warn.log"), "no authentication",
		"-tcp", "127.0.0.1:0", "-ws", ":0", "-log-level", "warn")
	assert.NotContains(t, logs, "level=INFO")
	assert.Equal(t, 1, strings.Count(logs, "level=WARN"), logs)
	assert.Contains(t, logs, "addr=ws://[::]:", "the warning names the open listener")
}

// runUntilLogged runs the program with -log-file path until the file
// holds want, stops it and returns the file's content.
func runUntilLogged(t *testing.T, path, want string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append(args, "-log-file", path), env{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard})
	}()
	require.Eventually(t, func() bool {
		b, _ := os.ReadFile(path)
		return strings.Contains(string(b), want)
	}, testTimeout, 10*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// TestReloadCertificate: a reload replaces the TLS certificate for new
// connections; a connection made with the old one stays up.
func TestReloadCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	writeCert(t, certFile, keyFile, 1)
	srv := startRun(t, "-tcp", "", "-tls", "127.0.0.1:0", "-cert", certFile, "-key", keyFile)
	line := srv.logs.waitLine(t, 1, "msg=listening", "transport=tls")
	assert.Contains(t, line, "tls=true")
	addr := addrOf(t, line)

	dialTLS := func() (*tls.Conn, *big.Int) {
		nc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test checks which certificate is served
		require.NoError(t, err)
		return nc, nc.ConnectionState().PeerCertificates[0].SerialNumber
	}
	first, serial := dialTLS()
	assert.Equal(t, int64(1), serial.Int64())
	old, ack := dialConn(t, first, &packets.Connect{ClientID: "old", CleanSession: true})
	require.Equal(t, packets.Accepted, ack.ReturnCode)

	// A broken pair keeps the previous certificate.
	require.NoError(t, os.WriteFile(keyFile, []byte("not a key"), 0o600))
	srv.doReload(t, 1)
	srv.logs.waitLine(t, 1, "keeping the previous TLS certificate", keyFile)
	nc, serial := dialTLS()
	nc.Close()
	assert.Equal(t, int64(1), serial.Int64())

	writeCert(t, certFile, keyFile, 2)
	srv.doReload(t, 2)
	nc, serial = dialTLS()
	nc.Close()
	assert.Equal(t, int64(2), serial.Int64(), "new connections get the new certificate")

	old.send(&packets.Pingreq{})
	assert.IsType(t, &packets.Pingresp{}, old.recv(), "the connection made before the reload is up")
}

// TestReloadAuthFile: a reload applies a changed Tern auth file; a broken
// one keeps the previous content and the log names the line.
func TestReloadAuthFile(t *testing.T) {
	dir := t.TempDir()
	var hash bytes.Buffer
	require.NoError(t, hashPassword(strings.NewReader("pw\n"), &hash))
	h := strings.TrimSpace(hash.String())
	authFile := writeFile(t, dir, "auth.conf", "user alice "+h+"\n")
	srv := startRun(t, "-tcp", "127.0.0.1:0", "-auth", authFile)
	addr := srv.tcpAddr(t)
	login := func(user string) byte {
		_, ack := dial(t, addr, &packets.Connect{ClientID: user, CleanSession: true, UsernameFlag: true, Username: user, PasswordFlag: true, Password: []byte("pw")})
		return ack.ReturnCode
	}
	assert.Equal(t, packets.Accepted, login("alice"))
	assert.Equal(t, packets.RefusedBadUsernamePassword, login("bob"))

	writeFile(t, dir, "auth.conf", "user bob "+h+"\n")
	srv.doReload(t, 1)
	assert.Equal(t, packets.Accepted, login("bob"))
	assert.Equal(t, packets.RefusedBadUsernamePassword, login("alice"))

	writeFile(t, dir, "auth.conf", "user carol "+h+"\nfrobnicate\n")
	srv.doReload(t, 2)
	srv.logs.waitLine(t, 1, "keeping the previous users and ACL", "auth.conf:2")
	assert.Equal(t, packets.Accepted, login("bob"), "the previous file stays in force")
	assert.Equal(t, packets.RefusedBadUsernamePassword, login("carol"))
}

// writeCert writes a self-signed certificate for 127.0.0.1 with the given
// serial number, and its key.
func writeCert(t *testing.T, certFile, keyFile string, serial int64) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "tern test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
}

// TestIdentityAsUsername: with use_identity_as_username, a client's
// verified certificate names it; no password is checked (as Mosquitto
// skips the password file there), and the ACL applies to that name.
func TestIdentityAsUsername(t *testing.T) {
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(10), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	writeFile(t, dir, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	clientKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	clientDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(11), Subject: pkix.Name{CommonName: "device1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, caCert, &clientKey.PublicKey, caKey)
	require.NoError(t, err)
	writeCert(t, filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), 1)

	passwd := filepath.Join(dir, "passwd")
	_, err = passwdRun("", "-c", "-b", passwd, "someone", "pw")
	require.NoError(t, err)
	writeFile(t, dir, "acl", "user device1\ntopic readwrite devices/device1/#\n")
	port := freePort(t)
	conf := writeFile(t, dir, "mosquitto.conf", "password_file "+passwd+"\nacl_file "+dir+"/acl\n"+
		"listener "+strconv.Itoa(port)+" 127.0.0.1\ncertfile "+dir+"/server.pem\nkeyfile "+dir+"/server.key\ncafile "+dir+"/ca.pem\n"+
		"require_certificate true\nuse_identity_as_username true\n")
	srv := startRun(t, "-c", conf)
	line := srv.logs.waitLine(t, 1, "msg=listening", "transport=tls")
	assert.Contains(t, line, "client_certificates=true")
	addr := addrOf(t, line)

	cert := tls.Certificate{Certificate: [][]byte{clientDER}, PrivateKey: clientKey}
	nc, err := tls.Dial("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}) //nolint:gosec // the server's certificate is self-signed
	require.NoError(t, err)
	c, ack := dialConn(t, nc, &packets.Connect{ClientID: "d1", CleanSession: true})
	require.Equal(t, packets.Accepted, ack.ReturnCode, "no password: the certificate names the client")
	c.send(&packets.Subscribe{PacketID: 1, Subscriptions: []packets.Subscription{{Filter: "#", QoS: 0}}})
	require.IsType(t, &packets.Suback{}, c.recv())
	c.send(&packets.Publish{Topic: "other/x", Payload: []byte("refused"), QoS: 1, PacketID: 2})
	require.IsType(t, &packets.Puback{}, c.recv())
	c.send(&packets.Publish{Topic: "devices/device1/state", Payload: []byte("allowed"), QoS: 1, PacketID: 3})
	// The allowed message comes back to the client's own subscription;
	// the refused one was acknowledged and dropped.
	for {
		p := c.recv()
		if pub, ok := p.(*packets.Publish); ok {
			assert.Equal(t, "devices/device1/state", pub.Topic, "the ACL of user device1 applies")
			break
		}
		require.IsType(t, &packets.Puback{}, p)
	}

	// Without a client certificate the handshake fails.
	nc, err = tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // as above
	if err == nil {
		nc.SetReadDeadline(time.Now().Add(testTimeout))
		_, err = nc.Read(make([]byte, 1))
		nc.Close()
	}
	assert.Error(t, err)
}
