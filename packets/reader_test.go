package packets_test

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"testing"
	"testing/iotest"

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
		s.t.Error("Reader read past the end of the script")
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
				if err != nil {
					t.Fatalf("packet %d: %v", i, err)
				}
				if !reflect.DeepEqual(p, w) {
					t.Fatalf("packet %d = %#v, want %#v", i, p, w)
				}
			}
			for range 2 {
				if p, err := r.ReadPacket(); err != io.EOF || p != nil {
					t.Fatalf("at the end: %v, %v; want io.EOF", p, err)
				}
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
	if r.Buffered() != 0 {
		t.Fatalf("Buffered before reading = %d", r.Buffered())
	}
	for i, want := range [][]byte{a, b, c} {
		fh, body, err := r.ReadRaw()
		if err != nil {
			t.Fatal(err)
		}
		if wire := cat([]byte{byte(fh.Type)<<4 | fh.Flags, byte(fh.Remaining)}, body); !bytes.Equal(wire, want) {
			t.Errorf("packet %d = % x, want % x", i, wire, want)
		}
		if cap(body) != len(body) {
			t.Errorf("body capacity %d reaches past the packet (length %d)", cap(body), len(body))
		}
		rest := [][]byte{cat(b, c), c, nil}[i]
		if r.Buffered() != len(rest) {
			t.Errorf("after packet %d Buffered = %d, want %d", i, r.Buffered(), len(rest))
		}
	}
	if _, _, err := r.ReadRaw(); err != io.EOF {
		t.Fatalf("ReadRaw at the end = %v, want io.EOF", err)
	}
}

// TestReadPacketCopiesPayload: ReadPacket's PUBLISH outlives the buffer.
func TestReadPacketCopiesPayload(t *testing.T) {
	wire := cat(frame(0x30, str("t"), []byte("first")), frame(0x30, str("t"), []byte("SECOND")))
	r := packets.NewReader(iotest.OneByteReader(bytes.NewReader(wire)), 0)
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	}
	if got := string(p.(*packets.Publish).Payload); got != "first" {
		t.Errorf("first payload became %q after the next read", got)
	}
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
			if err != tc.want {
				t.Errorf("%s (byte a Read: %v): %v, want %v", tc.name, one, err, tc.want)
			}
		}
	}
}

// TestReaderTooLarge: a packet over the maximum is refused from its fixed
// header, before the body is read or allocated.
func TestReaderTooLarge(t *testing.T) {
	const max = 100
	ok := frame(0x30, str("t"), make([]byte, max-2-3)) // exactly max bytes
	if len(ok) != max {
		t.Fatalf("test packet is %d bytes", len(ok))
	}
	r := packets.NewReader(bytes.NewReader(ok), max)
	if _, _, err := r.ReadRaw(); err != nil {
		t.Fatalf("packet of the maximum size: %v", err)
	}

	big := frame(0x30, str("t"), make([]byte, max-2-3+1))
	src := &scriptedReader{t: t, steps: []step{{data: big[:2]}}} // the header only
	r = packets.NewReader(src, max)
	for range 2 { // the error is sticky: the stream is out of step
		_, body, err := r.ReadRaw()
		if !errors.Is(err, packets.ErrPacketTooLarge) || body != nil {
			t.Fatalf("ReadRaw = %v, want ErrPacketTooLarge", err)
		}
	}

	// A header announcing 256 MiB costs no more than the small buffer.
	huge := []byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r = packets.NewReader(&scriptedReader{t: t, steps: []step{{data: huge}}}, 1<<20)
	_, _, err := r.ReadRaw()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, packets.ErrPacketTooLarge) {
		t.Fatalf("ReadRaw = %v, want ErrPacketTooLarge", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Errorf("refusing the packet allocated %d bytes", grew)
	}
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
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("ReadRaw = %v, want io.ErrUnexpectedEOF", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<10 {
		t.Errorf("1 KiB of a 256 MiB packet allocated %d bytes", grew)
	}
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
		if _, err := r.ReadPacket(); err != errTimeout {
			t.Fatalf("ReadPacket = %v, want the timeout", err)
		}
	}
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	want := &packets.Publish{QoS: 1, Topic: "a/b", PacketID: 7, Payload: []byte("payload")}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("ReadPacket = %+v, want %+v", p, want)
	}
	if _, err := r.ReadPacket(); err != io.EOF {
		t.Fatalf("ReadPacket at the end = %v", err)
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

func TestReaderNoProgress(t *testing.T) {
	if _, _, err := packets.NewReader(emptyReader{}, 0).ReadRaw(); err != io.ErrNoProgress {
		t.Fatalf("ReadRaw = %v, want io.ErrNoProgress", err)
	}
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
		if wire, err = p.Append(wire); err != nil {
			t.Fatal(err)
		}
	}
	r := packets.NewReader(iotest.HalfReader(bytes.NewReader(wire)), 0)
	for i, want := range []packets.Packet{small, large, small, large, small} {
		p, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !reflect.DeepEqual(p, want) {
			t.Fatalf("packet %d differs", i)
		}
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
		if err != nil || fh.Type != packets.TypePublish || len(body) != len(pkt)-2 {
			t.Fatalf("ReadRaw = %+v, %d bytes, %v", fh, len(body), err)
		}
	}
	if allocs := testing.AllocsPerRun(1000, read); allocs != 0 {
		t.Errorf("ReadRaw allocates %v times a packet, want 0", allocs)
	}
	// Release with unread bytes keeps them.
	if r.Buffered() == 0 {
		read() // the repeated packet straddles reads, so this leaves bytes
	}
	buffered := r.Buffered()
	r.Release()
	if r.Buffered() != buffered {
		t.Fatalf("Release dropped unread bytes: Buffered %d, was %d", r.Buffered(), buffered)
	}

	// With nothing buffered, Release frees the buffer: the next read
	// allocates one. Without Release, it reuses the buffer.
	pings := packets.NewReader(pingPerRead{}, 0)
	for _, release := range []bool{false, true} {
		allocs := testing.AllocsPerRun(100, func() {
			if release {
				pings.Release()
			}
			if fh, _, err := pings.ReadRaw(); err != nil || fh.Type != packets.TypePingreq {
				t.Fatalf("ReadRaw = %+v, %v", fh, err)
			}
		})
		if want := map[bool]float64{false: 0, true: 1}[release]; allocs != want {
			t.Errorf("Release %v: a read allocates %v times, want %v", release, allocs, want)
		}
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
				if fh, body, err := r.ReadRaw(); err != nil || fh.Size() != len(tc.pkt) && len(body) != 0 {
					t.Fatalf("ReadRaw = %+v, %d bytes, %v", fh, len(body), err)
				}
			}
		})
		if kept := allocs == 0; kept != tc.kept {
			t.Errorf("%s then PINGREQ: %v allocations; buffer kept = %v, want %v", tc.name, allocs, kept, tc.kept)
		}
	}
}
