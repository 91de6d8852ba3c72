package nats

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/ternmq/tern"
)

// A message crosses NATS as its subject (the topic, see subject.go) and a
// small binary envelope:
//
//	version (1 byte, 1)
//	flags   (1 byte: QoS in bits 0-1, retain bit 2, payload format bit 3)
//	format  (1 byte, the Payload Format Indicator)
//	uvarint expires (Unix nanoseconds, 0 never)
//	uvarint published (Unix nanoseconds)
//	uvarint origin, uvarint sequence (the message's identity in the cluster)
//	uvarint length, from (the publisher's client identifier)
//	uvarint length, properties (MQTT 5, as on the wire)
//	payload (the rest)
//
// Retained messages are stored in the same envelope, keyed by the topic.

const envelopeVersion = 1

// msgID identifies a message in the cluster: the node incarnation that
// published it and its sequence there. A node whose subscriptions overlap
// receives a message once per matching NATS subscription; the identity
// lets it deliver the message once.
type msgID struct{ origin, seq uint64 }

var errEnvelope = errors.New("malformed message envelope")

// appendEnvelope encodes m with its identity.
func appendEnvelope(dst []byte, m *tern.ClusterMessage, id msgID) []byte {
	flags := m.QoS & 3
	if m.Retain {
		flags |= 1 << 2
	}
	if m.HasFormat {
		flags |= 1 << 3
	}
	dst = append(dst, envelopeVersion, flags, m.Format)
	dst = binary.AppendUvarint(dst, uint64(max(m.Expires, 0)))
	dst = binary.AppendUvarint(dst, uint64(max(m.Published, 0)))
	dst = binary.AppendUvarint(dst, id.origin)
	dst = binary.AppendUvarint(dst, id.seq)
	dst = binary.AppendUvarint(dst, uint64(len(m.From)))
	dst = append(dst, m.From...)
	dst = binary.AppendUvarint(dst, uint64(len(m.Props)))
	dst = append(dst, m.Props...)
	return append(dst, m.Payload...)
}

// decodeEnvelope decodes data into m (Topic is set by the caller). m's
// Payload and Props share data's memory.
func decodeEnvelope(data []byte, m *tern.ClusterMessage) (msgID, error) {
	var id msgID
	if len(data) < 3 || data[0] != envelopeVersion {
		return id, errEnvelope
	}
	flags := data[1]
	m.QoS = flags & 3
	m.Retain = flags&(1<<2) != 0
	m.HasFormat = flags&(1<<3) != 0
	m.Format = data[2]
	data = data[3:]
	var vals [4]uint64
	for i := range vals {
		v, n := binary.Uvarint(data)
		if n <= 0 {
			return id, errEnvelope
		}
		vals[i] = v
		data = data[n:]
	}
	m.Expires, m.Published = int64(vals[0]), int64(vals[1])
	id = msgID{vals[2], vals[3]}
	var from, props []byte
	for _, dst := range []*[]byte{&from, &props} {
		l, n := binary.Uvarint(data)
		if n <= 0 || l > uint64(len(data)-n) {
			return id, errEnvelope
		}
		*dst = data[n : n+int(l)]
		data = data[n+int(l):]
	}
	m.From = string(from)
	if len(props) > 0 {
		m.Props = props
	} else {
		m.Props = nil
	}
	m.Payload = data
	if m.QoS > 2 {
		return id, fmt.Errorf("%w: QoS %d", errEnvelope, m.QoS)
	}
	return id, nil
}
