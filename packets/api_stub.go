package packets

// This file holds the signatures the rest of Tern codes against. The packets
// helper replaces every body (and may move functions to other files).

import "io"

// Decode parses a packet of any type from its fixed header and body and
// returns a new value of the matching type (*Connect, *Publish, ...).
func Decode(fh FixedHeader, body []byte) (Packet, error) { panic("todo") }

// Reader reads control packets one at a time from an io.Reader, buffering
// what one Read returns so that several small packets cost one system call.
// It holds a small buffer while idle and grows it only for large packets.
type Reader struct{}

// NewReader returns a Reader over r that refuses (with ErrPacketTooLarge,
// before allocating the body) any packet whose total size (fixed header plus
// Remaining Length) exceeds maxSize. maxSize <= 0 means the protocol maximum.
func NewReader(r io.Reader, maxSize int) *Reader { panic("todo") }

// ReadRaw reads the next packet and returns its fixed header and body. The
// body is only valid until the next call on the Reader. The fixed header's
// type and flags are validated [MQTT-2.2.2-1, MQTT-2.2.2-2].
func (r *Reader) ReadRaw() (FixedHeader, []byte, error) { panic("todo") }

// ReadPacket reads and decodes the next packet into a new value.
func (r *Reader) ReadPacket() (Packet, error) { panic("todo") }

// Buffered reports how many bytes are already buffered: when it is 0 after a
// packet, the next packet needs a new Read, so a server can flush its
// writes then (flush once per read batch).
func (r *Reader) Buffered() int { panic("todo") }

// Release drops the Reader's buffer when it holds no unread bytes, so an
// idle connection keeps no large buffer. The next read allocates a small one.
func (r *Reader) Release() { panic("todo") }
