package packets

import (
	"bytes"
	"fmt"
	"io"
)

const (
	// initialBufSize is the buffer a Reader allocates at its first read,
	// and after Release: enough for the small packets of a quiet client.
	initialBufSize = 512
	// keepBufSize is the largest buffer a Reader keeps once it is empty;
	// a larger one, grown for a large packet, is dropped before the next
	// packet so that one large message does not pin memory. It is also
	// the most a Reader allocates ahead of the bytes it has received.
	keepBufSize = 64 << 10
	// maxEmptyReads is how many (0, nil) reads in a row fail with
	// io.ErrNoProgress.
	maxEmptyReads = 100
)

// Reader reads control packets one at a time from an io.Reader, buffering
// what one Read returns so that several small packets cost one system call.
// It holds no buffer until the first read, then a small one, grown only for
// a packet that does not fit. A Reader is not safe for concurrent use.
type Reader struct {
	src     io.Reader
	max     int    // the largest total packet size accepted
	version byte   // the form packets are read in: 0 for 3.1.1, Level5
	buf     []byte // len(buf) == cap(buf); buf[r:w] is unread
	r, w    int
	readErr error // an error src returned along with data, not yet reported
	err     error // a framing error: the stream cannot be resynchronised
}

// NewReader returns a Reader over r that refuses (with ErrPacketTooLarge,
// before allocating the body) any packet whose total size (fixed header plus
// Remaining Length) exceeds maxSize. maxSize <= 0 means the protocol maximum.
func NewReader(r io.Reader, maxSize int) *Reader {
	if maxSize <= 0 || maxSize > MaxPacketSize {
		maxSize = MaxPacketSize
	}
	return &Reader{src: r, max: maxSize}
}

// Reset makes r read from src as NewReader(src, maxSize) would, in the
// MQTT 3.1.1 form, but keeps r's buffer (at most keepBufSize of it) for
// the next reads: one Reader can serve many streams in turn, one at a
// time, without allocating a buffer for each. Unread bytes and errors of
// the previous stream are dropped.
func (r *Reader) Reset(src io.Reader, maxSize int) {
	if maxSize <= 0 || maxSize > MaxPacketSize {
		maxSize = MaxPacketSize
	}
	buf := r.buf
	if cap(buf) > keepBufSize {
		buf = nil
	}
	*r = Reader{src: src, max: maxSize, buf: buf}
}

// Pending reports whether r holds anything of its stream: unread bytes,
// or an error not yet returned. A Reader with nothing pending can be Reset
// for another stream and later replaced by a new one for this stream
// without losing anything.
func (r *Reader) Pending() bool { return r.r != r.w || r.readErr != nil || r.err != nil }

// SetVersion sets the protocol version the next packets are read in: 0,
// Level31 or Level311 for MQTT 3.1.1 (the default), Level5 for MQTT 5. A
// server reads the CONNECT in the default form, whose fixed header is the
// same in every version, and sets the version its protocol level names.
func (r *Reader) SetVersion(v byte) { r.version = v }

// ReadRaw reads the next packet and returns its fixed header and body. The
// body is only valid until the next call on the Reader. The fixed header's
// type and flags are validated [MQTT-2.2.2-1, MQTT-2.2.2-2] [v5
// MQTT-2.1.3-1] in the form SetVersion selected; in MQTT 5, type 15 is
// AUTH and the Remaining Length must be in its shortest form [v5
// MQTT-1.5.5-1].
//
// It returns io.EOF when the stream ends between packets and
// io.ErrUnexpectedEOF when it ends inside one. A malformed fixed header or
// an oversized packet leaves the stream out of step: that error is returned
// by every later call. Other errors of the underlying reader (a deadline,
// for example) are returned as they are; the bytes read so far stay
// buffered and a later call resumes.
func (r *Reader) ReadRaw() (FixedHeader, []byte, error) {
	if r.err != nil {
		return FixedHeader{}, nil, r.err
	}
	if r.r == r.w && cap(r.buf) > keepBufSize {
		r.buf, r.r, r.w = nil, 0, 0
	}
	var fh FixedHeader
	var n int
	for {
		var err error
		if fh, n, err = parseFixedHeader(r.buf[r.r:r.w], r.version == Level5); err != nil {
			r.err = err // [MQTT-2.2.2-2] reserved type or invalid flags
			return FixedHeader{}, nil, err
		}
		if n > 0 {
			break
		}
		if err := r.fill(r.w - r.r + 1); err != nil {
			if err == io.EOF && r.r < r.w {
				err = io.ErrUnexpectedEOF
			}
			return FixedHeader{}, nil, err
		}
	}
	total := n + fh.Remaining
	if total > r.max {
		r.err = fmt.Errorf("%w: %s of %d bytes, the limit is %d", ErrPacketTooLarge, fh.Type, total, r.max)
		return FixedHeader{}, nil, r.err
	}
	if err := r.fill(total); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return FixedHeader{}, nil, err
	}
	body := r.buf[r.r+n : r.r+total : r.r+total]
	r.r += total
	if r.r == r.w {
		r.r, r.w = 0, 0
	}
	return fh, body, nil
}

// fill reads until at least need bytes are unread.
func (r *Reader) fill(need int) error {
	for empty := 0; r.w-r.r < need; {
		if r.w == len(r.buf) || r.r > 0 && len(r.buf)-r.r < need {
			r.makeRoom(need)
		}
		if err := r.readErr; err != nil {
			r.readErr = nil
			return err
		}
		n, err := r.src.Read(r.buf[r.w:])
		r.w += n
		r.readErr = err
		switch {
		case n > 0:
			empty = 0
		case err == nil:
			if empty++; empty >= maxEmptyReads {
				return io.ErrNoProgress
			}
		}
	}
	return nil
}

// makeRoom moves the unread bytes to the front of the buffer, growing it
// when a packet of need bytes does not fit. A packet up to keepBufSize gets
// its whole buffer at once; a larger one grows it by doubling as its bytes
// arrive, so a header announcing a large packet costs memory only once the
// peer actually sends the bytes.
func (r *Reader) makeRoom(need int) {
	unread := r.w - r.r
	if need <= len(r.buf) {
		copy(r.buf, r.buf[r.r:r.w])
		r.r, r.w = 0, unread
		return
	}
	size := max(2*len(r.buf), initialBufSize)
	if need <= keepBufSize {
		size = min(max(size, need), max(r.max, need))
	} else {
		size = min(max(size, keepBufSize), need)
	}
	buf := make([]byte, size)
	copy(buf, r.buf[r.r:r.w])
	r.buf, r.r, r.w = buf, 0, unread
}

// ReadPacket reads and decodes the next packet, in the form SetVersion
// selected, into a new value that does not alias the Reader's buffer (a
// PUBLISH payload and raw properties are copied). Errors are those of
// ReadRaw and DecodeVersion.
func (r *Reader) ReadPacket() (Packet, error) {
	fh, body, err := r.ReadRaw()
	if err != nil {
		return nil, err
	}
	p, err := DecodeVersion(r.version, fh, body)
	if err != nil {
		return nil, err
	}
	if pub, ok := p.(*Publish); ok {
		if pub.Payload != nil {
			pub.Payload = bytes.Clone(pub.Payload)
		}
		if pub.Props.Raw != nil {
			pub.Props.Raw = bytes.Clone(pub.Props.Raw)
		}
	}
	return p, nil
}

// Buffered reports how many bytes are already buffered: when it is 0 after a
// packet, the next packet needs a new Read, so a server can flush its
// writes then (flush once per read batch).
func (r *Reader) Buffered() int { return r.w - r.r }

// Release drops the Reader's buffer when it holds no unread bytes, so an
// idle connection keeps no buffer at all. The next read allocates a small
// one. A body returned by ReadRaw stays valid until the next call.
func (r *Reader) Release() {
	if r.r == r.w {
		r.buf, r.r, r.w = nil, 0, 0
	}
}
