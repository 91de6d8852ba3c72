package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"
)

// ErrNewerLayout is wrapped by the error of Open when the file was written
// by a later version of Tern, in a layout this version does not know.
var ErrNewerLayout = errors.New("data file has a newer layout")

// metaBucket holds formatKey: the layout version of the file (see
// appendLayout). The key's name predates the word.
var (
	metaBucket = []byte("tern")
	formatKey  = []byte("format")
)

// Layout versions of the whole file, kept under formatKey in metaBucket.
// Each adds to the one before; layoutUpgrades says what turns a file of
// one into the next.
const (
	// layoutV1: the five record buckets, values of format 1 (MQTT 3.1.1
	// state).
	layoutV1 = 1
	// layoutV2: values of format 1 or 2 (format 2 adds the MQTT 5
	// fields). Layout 1 files are valid layout 2 files.
	layoutV2 = 2

	// layoutCurrent is the layout this package writes.
	layoutCurrent = layoutV2
)

// layoutUpgrades[v] turns a file of layout v into layout v+1. upgrade runs
// the ones a file needs in the transaction that records the current
// layout. A nil entry: every record of layout v reads as it is in v+1, and
// only the version changes.
var layoutUpgrades = [layoutCurrent]func(tx *bbolt.Tx) error{
	// Format 1 values read in layout 2 as they always did, the MQTT 5
	// fields at their defaults (a session never expires, as every
	// session did before MQTT 5).
	layoutV1: nil,
}

// appendLayout encodes a layout version: big endian, in as few bytes as it
// takes (one, so far, which is what layout 1 files hold and what the
// versions of Tern that wrote them check).
func appendLayout(b []byte, v uint64) []byte {
	var full [8]byte
	binary.BigEndian.PutUint64(full[:], v)
	i := 0
	for i < 7 && full[i] == 0 {
		i++
	}
	return append(b, full[i:]...)
}

// readLayout decodes the layout version of a file; 0 with an error when
// it is missing or malformed.
func readLayout(meta *bbolt.Bucket) (uint64, error) {
	f := meta.Get(formatKey)
	if f == nil {
		return 0, fmt.Errorf("%w: no layout version (key %q of bucket %q)", ErrCorrupt, formatKey, metaBucket)
	}
	if len(f) == 0 || len(f) > 8 {
		return 0, fmt.Errorf("%w: layout version of %d bytes", ErrCorrupt, len(f))
	}
	var v uint64
	for _, c := range f {
		v = v<<8 | uint64(c)
	}
	if v == 0 {
		return 0, fmt.Errorf("%w: layout version 0", ErrCorrupt)
	}
	return v, nil
}

// checkLayout refuses a layout newer than this package knows.
func checkLayout(v uint64) error {
	if v > layoutCurrent {
		return fmt.Errorf("%w: layout %d, and this version of Tern reads layouts up to %d; "+
			"open it with the version of Tern that wrote it", ErrNewerLayout, v, layoutCurrent)
	}
	return nil
}

// upgrade brings a file of layout from to layoutCurrent, in tx: the
// upgrades of every layout in between, then the version.
func upgrade(tx *bbolt.Tx, from uint64) error {
	for v := from; v < layoutCurrent; v++ {
		if up := layoutUpgrades[v]; up != nil {
			if err := up(tx); err != nil {
				return fmt.Errorf("upgrading from layout %d to %d: %w", v, v+1, err)
			}
		}
	}
	return tx.Bucket(metaBucket).Put(formatKey, appendLayout(nil, layoutCurrent))
}
