// Package listeners provides the network transports of a Tern MQTT broker as
// plain net.Listeners. The broker serves any net.Listener, reading MQTT
// packets from each accepted net.Conn, so a transport is chosen by passing
// its listener to Broker.Serve, once per transport:
//
//	l, err := listeners.TCP(":1883")
//	if err != nil {
//		return err
//	}
//	go b.Serve(l)
//
// Closing a listener stops accepting on it; connections it already returned
// belong to the broker and are closed by it.
//
// # TCP
//
// TCP listens on a TCP address (port 1883 is MQTT's registered port). It
// enables TCP keep-alive on accepted connections (TCPKeepAlive), which finds
// dead peers even when a client uses an MQTT Keep Alive of zero.
//
// # TLS
//
// TLS listens on a TCP address (8883 is MQTT over TLS's port) and serves TLS
// with a *tls.Config; NewTLS wraps any other listener. Handshakes run off the
// accept loop, bounded by a timeout, and Accept returns only handshaken
// *tls.Conn values. Client certificates are requested and verified as the
// tls.Config's ClientAuth and ClientCAs say. Failed handshakes close their
// connection and are counted (TLSListener.HandshakeFailures).
//
// Two helpers read the TLS identity of an accepted connection, for TLS and
// for WebSocket over TLS alike: TLSState returns the connection state (the
// broker hands it to authentication hooks), and PeerCommonName returns the
// Common Name of a verified client certificate (for brokers that use it as
// the MQTT username).
//
//	cfg := &tls.Config{
//		Certificates: []tls.Certificate{cert},
//		ClientAuth:   tls.RequireAndVerifyClientCert,
//		ClientCAs:    clientCAs,
//	}
//	l, err := listeners.TLS(":8883", cfg, listeners.TLSOptions{})
//	go b.Serve(l)
//
// # WebSocket
//
// WebSocket carries MQTT over WebSocket as chapter 6 of the MQTT 3.1.1
// specification describes: MQTT packets travel in binary frames, and the
// accepted connections' Read returns one byte stream regardless of how the
// client split it into frames (a packet may span frames and a frame may hold
// several packets). A text frame closes the connection with close status
// 1003, and a frame that breaks RFC 6455 (reserved bits set, an unmasked
// frame, a reserved opcode, a control frame that is fragmented or carries
// more than 125 bytes, a continuation without a message to continue, a new
// data frame inside a fragmented message, a malformed close frame) with
// 1002 (1007 for a close reason that is not UTF-8). The server selects
// the "mqtt" subprotocol; it also accepts "mqttv3.1" from older clients that
// do not offer "mqtt", as Mosquitto does, and refuses an upgrade request that
// offers neither with 400 Bad Request (see WebSocketOptions.Subprotocols).
//
// ListenWebSocket runs its own HTTP server, with or without TLS, at a path
// (default "/mqtt"):
//
//	l, err := listeners.ListenWebSocket(":8080", nil, listeners.WebSocketOptions{})
//	go b.Serve(l)
//
// To share the application's HTTP server instead, mount a WebSocket, which is
// both an http.Handler and a net.Listener, on its mux:
//
//	ws := listeners.NewWebSocket(listeners.WebSocketOptions{})
//	mux.Handle(ws.Path(), ws)
//	go b.Serve(ws)
//
// The accepted connections report the client's TCP address as RemoteAddr,
// and HTTPRequest returns the upgraded request (headers, cookies, URL).
//
// # Unix domain sockets
//
// Unix listens on a unix domain socket, for clients on the same host. It
// replaces a stale socket file left by a crashed process, refuses to take over
// a socket that another listener still serves, and removes its file when
// closed.
//
// # In memory
//
// NewMemory returns a listener whose Dial returns connected net.Conns without
// any network, for tests and in-process clients. Unlike net.Pipe, its
// connections are buffered in each direction, so a broker writing to a client
// that is not reading at that moment does not deadlock, and they honour read
// and write deadlines as network connections do.
//
//	mem := listeners.NewMemory()
//	go b.Serve(mem)
//	conn, err := mem.Dial()
//
// # Operations endpoint
//
// HTTPHandler serves /healthz and /stats for load balancers, probes and
// operators; it takes functions instead of a broker so that this package does
// not depend on the broker.
//
// Every listener with a handshake (TLSListener and WebSocket) has a
// HandshakeFailures method; a broker can discover it with a type assertion
// to interface{ HandshakeFailures() uint64 }.
//
// # Idle connections
//
// Socket returns the TCP or unix socket under an accepted connection, TLS
// and WebSocket layers included, so that a broker can wait for an idle
// connection's next bytes with its own poller instead of a goroutine
// blocked in Read (Tern's broker does, on Linux). A WebSocket connection
// keeps no goroutine and no buffer of the HTTP server once upgraded.
package listeners
