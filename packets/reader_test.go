package packets_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ternmq/tern/packets"
)

// allWire is every valid test packet, back to back.
func allWire() ([]packets.Packet, []byte) {
	var ps []packets.Packet
	var wire []byte
	for _, tc := range validPackets() {
		ps = append(ps, tc.p)
		wire = append(wire, tc.wire...)
	}
	return ps, wire
}

// step is one Read of a scriptedReader.
type step struct {
	data []byte
	err  error
}

// scriptedReader returns its steps in order, then fails the test if read
// again.
type scriptedReader struct {
	t     *testing.T
	steps []step
}

func (s *scriptedReader) Read(p []byte) (int, error) {
	if len(s.steps) == 0 {
		assert.Fail(s.t, "Reader read past the end of the script")
		return 0, errors.New("read past the end of the script")
	}
	st := &s.steps[0]
	n := copy(p, st.data)
	st.data = st.data[n:]
	if len(st.data) > 0 {
		return n, nil
	}
	s.steps = s.steps[1:]
	return n, st.err
}

func TestReaderStream(t *testing.T) {
	want, wire := allWire()
	readers := map[string]func() io.Reader{
		"one Read":      func() io.Reader { return bytes.NewReader(wire) },
		"byte a Read":   func() io.Reader { return iotest.OneByteReader(bytes.NewReader(wire)) },
		"half a Read":   func() io.Reader { return iotest.HalfReader(bytes.NewReader(wire)) },
		"EOF with data": func() io.Reader { return iotest.DataErrReader(bytes.NewReader(wire)) },
	}
	for name, src := range readers {
		t.Run(name, func(t *testing.T) {
			r := packets.NewReader(src(), 0)
			for i, w := range want {
				p, err := r.ReadPacket()
				require.NoError(t, err, "packet %d", i)
				require.Equal(t, w, p, "packet %d", i)
			}
			for range 2 {
				p, err := r.ReadPacket()
				require.Equal(t, io.EOF, err, "at the end")
				require.Nil(t, p, "at the end")
			}
		})
	}
}

// TestReaderBuffered: several packets in one Read are served from the
// buffer, and Buffered counts what is left.
func TestReaderBuffered(t *testing.T) {
	a := []byte{0x40, 2, 0, 1}
	b := frame(0x30, str("t"), []byte("payload"))
	c := []byte{0xC0, 0}
	src := &scriptedReader{t: t, steps: []step{{data: cat(a, b, c)}, {err: io.EOF}}}
	r := packets.NewReader(src, 0)
	require.Zero(t, r.Buffered(), "Buffered before reading")
	for i, want := range [][]byte{a, b, c} {
		fh, body, err := r.ReadRaw()
		require.NoError(t, err)
		assert.Equal(t, want, cat([]byte{byte(fh.Type)<<4 | fh.Flags, byte(fh.Remaining)}, body), "packet %d", i)
		assert.Equal(t, len(body), cap(body), "body capacity reaches past the packet")
		rest := [][]byte{cat(b, c), c, nil}[i]
		assert.Equal(t, len(rest), r.Buffered(), "Buffered after packet %d", i)
	}
	_, _, err := r.ReadRaw()
	require.Equal(t, io.EOF, err, "ReadRaw at the end")
}

// TestReadPacketCopiesPayload: ReadPacket's PUBLISH outlives the buffer.
func TestReadPacketCopiesPayload(t *testing.T) {
	wire := cat(frame(0x30, str("t"), []byte("first")), frame(0x30, str("t"), []byte("SECOND")))
	r := packets.NewReader(iotest.OneByteReader(bytes.NewReader(wire)), 0)
	p, err := r.ReadPacket()
	require.NoError(t, err)
	_, err = r.ReadPacket()
	require.NoError(t, err)
	assert.Equal(t, "first", string(p.(*packets.Publish).Payload), "first payload after the next read")
}

func TestReaderTruncated(t *testing.T) {
	full := frame(0x30, str("topic"), []byte("payload"))
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"empty stream", nil, io.EOF},
		{"first byte only", full[:1], io.ErrUnexpectedEOF},
		{"inside the Remaining Length", []byte{0x30, 0x80}, io.ErrUnexpectedEOF},
		{"inside the body", full[:len(full)-1], io.ErrUnexpectedEOF},
		{"after a whole packet, inside the next", cat(full, full[:3]), io.ErrUnexpectedEOF},
		{"after a whole packet", full, io.EOF},
	}
	for _, tc := range tests {
		for _, one := range []bool{false, true} {
			var src io.Reader = bytes.NewReader(tc.wire)
			if one {
				src = iotest.OneByteReader(src)
			}
			r := packets.NewReader(src, 0)
			var err error
			for err == nil {
				_, _, err = r.ReadRaw()
			}
			assert.Equal(t, tc.want, err, "%s (byte a Read: %v)", tc.name, one)
		}
	}
}

// TestReaderTooLarge: a packet over the maximum is refused from its fixed
// header, before the body is read or allocated.
func TestReaderTooLarge(t *testing.T) {
	const max = 100
	ok := frame(0x30, str("t"), make([]byte, max-2-3)) // exactly max bytes
	require.Len(t, ok, max, "test packet")
	r := packets.NewReader(bytes.NewReader(ok), max)
	_, _, err := r.ReadRaw()
	require.NoError(t, err, "packet of the maximum size")

	big := frame(0x30, str("t"), make([]byte, max-2-3+1))
	src := &scriptedReader{t: t, steps: []step{{data: big[:2]}}} // the header only
	r = packets.NewReader(src, max)
	for range 2 { // the error is sticky: the stream is out of step
		_, body, err := r.ReadRaw()
		require.ErrorIs(t, err, packets.ErrPacketTooLarge)
		require.Nil(t, body)
	}

	// A header announcing 256 MiB costs no more than the small buffer.
	huge := []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r = packets.NewReader(&scriptedReader{t: t, steps: []step{{data: huge}}}, 1<<20)
	_, _, err = r.ReadRaw()
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, packets.ErrPacketTooLarge)
	assert.LessOrEqual(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<10), "refusing the packet allocated too much")
}

// TestReaderGrowsWithData: a header announcing a large packet that is
// within the limit costs memory in proportion to the bytes that arrive,
// not to the Remaining Length.
func TestReaderGrowsWithData(t *testing.T) {
	wire := cat([]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, str("t"), make([]byte, 1000)) // 256 MiB announced
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := packets.NewReader(bytes.NewReader(wire), 0).ReadRaw()
	runtime.ReadMemStats(&after)
	require.Equal(t, io.ErrUnexpectedEOF, err)
	assert.LessOrEqual(t, after.TotalAlloc-before.TotalAlloc, uint64(256<<10), "1 KiB of a 256 MiB packet allocated too much")
}

// TestReaderMalformedHeader: a reserved type or invalid flags fail at the
// first byte, without waiting for more [MQTT-2.2.2-2]; the error is sticky.
func TestReaderMalformedHeader(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		rule string
	}{
		{"reserved type 15", []byte{0xF0}, "2.2.1"},
		{"reserved type 0", []byte{0x00}, "2.2.1"},
		{"PUBREL flags 0", []byte{0x60}, "MQTT-3.6.1-1"},
		{"PUBLISH QoS 3", []byte{0x36}, "MQTT-3.3.1-4"},
		{"Remaining Length over four bytes", []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF}, "2.2.3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := packets.NewReader(&scriptedReader{t: t, steps: []step{{data: tc.wire}}}, 0)
			for range 2 {
				_, _, err := r.ReadRaw()
				wantRule(t, err, tc.rule, nil)
			}
		})
	}
}

// TestReaderResumes: an error from the underlying reader (a deadline, say)
// keeps the bytes read so far, and the next call completes the packet.
func TestReaderResumes(t *testing.T) {
	errTimeout := errors.New("i/o timeout")
	wire := frame(0x32, str("a/b"), u16(7), []byte("payload"))
	src := &scriptedReader{t: t, steps: []step{
		{data: wire[:6], err: errTimeout}, // data and an error in one Read
		{err: errTimeout},
		{data: wire[6:]},
		{err: io.EOF},
	}}
	r := packets.NewReader(src, 0)
	for range 2 {
		_, err := r.ReadPacket()
		require.Equal(t, errTimeout, err, "ReadPacket before the rest arrives")
	}
	p, err := r.ReadPacket()
	require.NoError(t, err)
	require.Equal(t, &packets.Publish{QoS: 1, Topic: "a/b", PacketID: 7, Payload: []byte("payload")}, p)
	_, err = r.ReadPacket()
	require.Equal(t, io.EOF, err, "ReadPacket at the end")
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	_, _, err := packets.NewReader(emptyReader{}, 0).ReadRaw()
	require.Equal(t, io.ErrNoProgress, err)
}

// TestReaderLargePacket: the buffer grows for a large packet, and small
// packets around it still read correctly.
func TestReaderLargePacket(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	small := &packets.Puback{PacketID: 3}
	large := &packets.Publish{QoS: 1, PacketID: 4, Topic: "big", Payload: payload}
	var wire []byte
	for _, p := range []packets.Packet{small, large, small, large, small} {
		var err error
		wire, err = p.Append(wire)
		require.NoError(t, err)
	}
	r := packets.NewReader(iotest.HalfReader(bytes.NewReader(wire)), 0)
	for i, want := range []packets.Packet{small, large, small, large, small} {
		p, err := r.ReadPacket()
		require.NoError(t, err, "packet %d", i)
		require.True(t, assert.ObjectsAreEqual(want, p), "packet %d differs", i)
	}
}

// repeatReader fills every Read with copies of one packet, endlessly.
type repeatReader struct {
	pkt []byte
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.pkt[r.off:])
		n += c
		r.off = (r.off + c) % len(r.pkt)
	}
	return n, nil
}

// TestReaderAllocations: reading is allocation-free in the steady state;
// Release drops the buffer, so the next read allocates a new one.
func TestReaderAllocations(t *testing.T) {
	pkt := frame(0x32, str("sensors/1/temp"), u16(1), make([]byte, 100)) // does not divide 512
	r := packets.NewReader(&repeatReader{pkt: pkt}, 0)
	read := func() {
		fh, body, err := r.ReadRaw()
		require.NoError(t, err)
		// Constant messages only: boxing values here would allocate.
		require.True(t, fh.Type == packets.TypePublish && len(body) == len(pkt)-2, "ReadRaw returned another packet")
	}
	assert.Zero(t, testing.AllocsPerRun(1000, read), "ReadRaw allocations a packet")
	// Release with unread bytes keeps them.
	if r.Buffered() == 0 {
		read() // the repeated packet straddles reads, so this leaves bytes
	}
	buffered := r.Buffered()
	r.Release()
	require.Equal(t, buffered, r.Buffered(), "Release dropped unread bytes")

	// With nothing buffered, Release frees the buffer: the next read
	// allocates one. Without Release, it reuses the buffer.
	pings := packets.NewReader(pingPerRead{}, 0)
	for _, release := range []bool{false, true} {
		allocs := testing.AllocsPerRun(100, func() {
			if release {
				pings.Release()
			}
			fh, _, err := pings.ReadRaw()
			require.NoError(t, err)
			require.True(t, fh.Type == packets.TypePingreq, "ReadRaw returned another packet")
		})
		assert.Equal(t, map[bool]float64{false: 0, true: 1}[release], allocs, "Release %v: allocations a read", release)
	}
}

// pingPerRead returns one PINGREQ a Read.
type pingPerRead struct{}

func (pingPerRead) Read(p []byte) (int, error) { return copy(p, []byte{0xC0, 0}), nil }

// packetPerRead returns at most one packet of its list a Read, cycling.
type packetPerRead struct {
	pkts   [][]byte
	i, off int
}

func (r *packetPerRead) Read(p []byte) (int, error) {
	pkt := r.pkts[r.i%len(r.pkts)]
	n := copy(p, pkt[r.off:])
	if r.off += n; r.off == len(pkt) {
		r.i, r.off = r.i+1, 0
	}
	return n, nil
}

// TestReaderDropsLargeBuffer: a buffer grown for a large packet is not
// kept for the small packets after it, so one large message does not pin
// memory; a buffer of ordinary size is reused.
func TestReaderDropsLargeBuffer(t *testing.T) {
	large := frame(0x30, str("t"), make([]byte, 200<<10))
	medium := frame(0x30, str("t"), make([]byte, 8<<10))
	ping := []byte{0xC0, 0}
	for _, tc := range []struct {
		name string
		pkt  []byte
		kept bool
	}{
		{"200 KiB packet", large, false}, // grow for it again each time
		{"8 KiB packet", medium, true},   // the grown buffer is kept
	} {
		r := packets.NewReader(&packetPerRead{pkts: [][]byte{tc.pkt, ping}}, 0)
		allocs := testing.AllocsPerRun(20, func() {
			for range 2 {
				fh, body, err := r.ReadRaw()
				require.NoError(t, err)
				require.True(t, fh.Size() == len(tc.pkt) || len(body) == 0, "ReadRaw returned another packet")
			}
		})
		assert.Equal(t, tc.kept, allocs == 0, "%s then PINGREQ: %v allocations; buffer kept", tc.name, allocs)
	}
}

// TestReaderReset: one Reader serves streams in turn; Pending says when a
// stream still has something in it (bytes of a packet, or an error) that
// a Reset would lose.
func TestReaderReset(t *testing.T) {
	errTimeout := errors.New("i/o timeout")
	wire := frame(0x32, str("a/b"), u16(7), []byte("payload"))
	first := &scriptedReader{t: t, steps: []step{{data: wire[:6], err: errTimeout}}}
	r := packets.NewReader(first, 0)
	assert.False(t, r.Pending(), "a new Reader")
	_, err := r.ReadPacket()
	require.Equal(t, errTimeout, err)
	assert.True(t, r.Pending(), "part of a packet is buffered")

	second := &scriptedReader{t: t, steps: []step{{data: wire}}}
	r.Reset(second, 0)
	assert.False(t, r.Pending(), "Reset drops the first stream's bytes")
	p, err := r.ReadPacket()
	require.NoError(t, err)
	require.Equal(t, &packets.Publish{QoS: 1, Topic: "a/b", PacketID: 7, Payload: []byte("payload")}, p)
	assert.False(t, r.Pending(), "every byte read")

	third := &scriptedReader{t: t, steps: []step{{data: wire, err: io.EOF}}}
	r.Reset(third, 8)
	_, err = r.ReadPacket()
	require.ErrorIs(t, err, packets.ErrPacketTooLarge, "Reset applies the new size limit")
	assert.True(t, r.Pending(), "a framing error stays")

	// An error returned along with the last bytes is pending until read.
	fourth := &scriptedReader{t: t, steps: []step{{data: wire, err: io.EOF}}}
	r.Reset(fourth, 0)
	_, err = r.ReadPacket()
	require.NoError(t, err)
	assert.True(t, r.Pending(), "io.EOF came with the packet and is not returned yet")
	_, err = r.ReadPacket()
	require.Equal(t, io.EOF, err)
	assert.False(t, r.Pending())
}
