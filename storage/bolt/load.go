package bolt

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	bbolt "go.etcd.io/bbolt"

	"github.com/ternmq/tern/storage"
)

// load reads every bucket into snap, checking each key and value.
func load(ctx context.Context, tx *bbolt.Tx, snap *storage.Snapshot) error {
	l := loader{snap}
	readers := [numBuckets]func(k, v []byte) error{
		bktSessions:      l.session,
		bktSubscriptions: l.subscription,
		bktDeliveries:    l.delivery,
		bktInbound:       l.inbound,
		bktRetained:      l.retained,
	}
	for i, name := range bucketNames {
		bk := tx.Bucket(name)
		if bk == nil {
			return fmt.Errorf("%w: bucket %q missing", ErrCorrupt, name)
		}
		n := 0
		err := bk.ForEach(func(k, v []byte) error {
			if n++; n%4096 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			if v == nil {
				return fmt.Errorf("%w: nested bucket", ErrCorrupt)
			}
			if err := readers[i](k, v); err != nil {
				return fmt.Errorf("key %s: %w", abbrev(k), err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("bucket %s: %w", name, err)
		}
	}
	// Keys keep (ClientID, Seq) order but for hashed identifiers.
	byIDSeq := func(a, b storage.Delivery) int {
		return cmp.Or(strings.Compare(a.ClientID, b.ClientID), cmp.Compare(a.Seq, b.Seq))
	}
	if !slices.IsSortedFunc(snap.Deliveries, byIDSeq) {
		slices.SortFunc(snap.Deliveries, byIDSeq)
	}
	return nil
}

// abbrev prints a key in hexadecimal, shortened if long.
func abbrev(k []byte) string {
	if len(k) > 48 {
		return fmt.Sprintf("%x...(%d bytes)", k[:48], len(k))
	}
	return fmt.Sprintf("%x", k)
}

// clientOf resolves a record's client identifier: from the key, or, for a
// hashed key, from the value (fromValue) after checking the hash.
func clientOf(k []byte, keyID string, inline bool, flags byte, fromValue string) (string, error) {
	inValue := flags&fClientID != 0
	switch {
	case inline && !inValue:
		return keyID, nil
	case !inline && inValue:
		return fromValue, matchHash(clientHash(k), fromValue)
	}
	return "", fmt.Errorf("%w: client key and value disagree", ErrCorrupt)
}

// nameOf does the same for a filter or topic.
func nameOf(keyName string, hash []byte, flags byte, fromValue string) (string, error) {
	inValue := flags&fName != 0
	switch {
	case hash == nil && !inValue:
		return keyName, nil
	case hash != nil && inValue:
		return fromValue, matchHash(hash, fromValue)
	}
	return "", fmt.Errorf("%w: name key and value disagree", ErrCorrupt)
}

func noRest(rest []byte, want int) error {
	if len(rest) != want {
		return fmt.Errorf("%w: key has %d bytes after the client, want %d", ErrCorrupt, len(rest), want)
	}
	return nil
}

// loader decodes records into a snapshot.
type loader struct{ snap *storage.Snapshot }

func (l loader) session(k, v []byte) error {
	id, inline, rest, err := parseClientKey(k)
	if err != nil {
		return err
	}
	if err := noRest(rest, 0); err != nil {
		return err
	}
	var s storage.Session
	flags, err := decodeSession(v, &s)
	if err != nil {
		return err
	}
	if s.ClientID, err = clientOf(k, id, inline, flags, s.ClientID); err != nil {
		return err
	}
	l.snap.Sessions = append(l.snap.Sessions, s)
	return nil
}

func (l loader) subscription(k, v []byte) error {
	id, inline, rest, err := parseClientKey(k)
	if err != nil {
		return err
	}
	filter, hash, err := parseNameKey(rest)
	if err != nil {
		return err
	}
	var s storage.Subscription
	flags, err := decodeSubscription(v, &s)
	if err != nil {
		return err
	}
	if s.ClientID, err = clientOf(k, id, inline, flags, s.ClientID); err != nil {
		return err
	}
	if s.Filter, err = nameOf(filter, hash, flags, s.Filter); err != nil {
		return err
	}
	l.snap.Subscriptions = append(l.snap.Subscriptions, s)
	return nil
}

func (l loader) delivery(k, v []byte) error {
	id, inline, rest, err := parseClientKey(k)
	if err != nil {
		return err
	}
	if err := noRest(rest, 8); err != nil {
		return err
	}
	d := storage.Delivery{Seq: binary.BigEndian.Uint64(rest)}
	flags, err := decodeDelivery(v, &d)
	if err != nil {
		return err
	}
	if d.ClientID, err = clientOf(k, id, inline, flags, d.ClientID); err != nil {
		return err
	}
	l.snap.Deliveries = append(l.snap.Deliveries, d)
	return nil
}

func (l loader) inbound(k, v []byte) error {
	id, inline, rest, err := parseClientKey(k)
	if err != nil {
		return err
	}
	if err := noRest(rest, 2); err != nil {
		return err
	}
	in := storage.Inbound{PacketID: binary.BigEndian.Uint16(rest)}
	flags, err := decodeInbound(v, &in)
	if err != nil {
		return err
	}
	if in.ClientID, err = clientOf(k, id, inline, flags, in.ClientID); err != nil {
		return err
	}
	l.snap.Inbound = append(l.snap.Inbound, in)
	return nil
}

func (l loader) retained(k, v []byte) error {
	topic, hash, err := parseNameKey(k)
	if err != nil {
		return err
	}
	var m storage.Message
	flags, err := decodeRetained(v, &m)
	if err != nil {
		return err
	}
	if m.Topic, err = nameOf(topic, hash, flags, m.Topic); err != nil {
		return err
	}
	l.snap.Retained = append(l.snap.Retained, m)
	return nil
}
