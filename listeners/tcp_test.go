package listeners

import (
	"errors"
	"net"
	"testing"
)

func TestTCPAcceptExchangeClose(t *testing.T) {
	checkGoroutines(t)
	l, err := TCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := acceptOne(t, l)
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Close() })
	server := receive(t, accepted)
	exchange(t, client, server)

	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close: %v, want net.ErrClosed", err)
	}
	exchange(t, server, client) // accepted connections outlive the listener
}

func TestTCPBadAddress(t *testing.T) {
	if l, err := TCP("127.0.0.1:notaport"); err == nil {
		_ = l.Close()
		t.Fatal("TCP accepted a malformed address")
	}
}
