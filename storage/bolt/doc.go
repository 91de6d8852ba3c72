// Package bolt is the durable storage backend of Tern: one file, written
// through go.etcd.io/bbolt, with no server.
//
//	st, err := bolt.Open("/var/lib/tern/tern.db", bolt.Options{})
//	b, err := tern.New(tern.Options{Store: st})
//
// # Durability and group commit
//
// With Durability Sync (the default) Write returns once its ops are in a
// committed, synced transaction. One writer goroutine commits everything
// handed to it since its previous commit in a single transaction, so
// concurrent Writes share the fsync instead of queueing for one each: the
// more writers, the larger each commit. No Write waits for a timer.
//
// With Durability Async, Write returns at once and the writer commits
// every FlushInterval (100 ms by default), when Load is called, and at
// Close. A crash loses at most the ops of the last interval, whole
// Writes at a time, never a part of one. If a background commit fails, the
// error is logged and the store refuses further writes, since what the
// broker believes is stored is not.
//
// # Removal and file size
//
// Deleted records are deleted, and bbolt reuses the pages they freed, so a
// steady flow of messages through the store does not grow the file: 100 000
// QoS 1 deliveries put and deleted in batches of 100 through one session
// leave a file of 256 KiB (see TestFileSizeBounded).
//
// # Damaged files
//
// Open fails, naming the file and wrapping ErrCorrupt, when the file is not
// a bbolt file, is truncated, or is not a Tern store; it waits at most
// Options.LockTimeout (1 s by default) for a file locked by another process.
// Load checks every record and fails in the same way on a malformed one:
// the broker never starts with part of its state silently missing. (An
// empty file holds no state, and is made a new store.)
//
// # Layout versions
//
// The file records its layout version in the "tern" bucket, key "format".
// Open refuses a file of a layout newer than it knows, wrapping
// ErrNewerLayout and naming the file and both versions, and upgrades a
// file of an older layout in place, in one transaction, before anything
// else reads it. The versions of Tern that wrote the older layout then
// refuse the file: they check the version too.
//
//	1  Tern 0.1 (MQTT 3.1.1): the five buckets below, values of format 1.
//	2  MQTT 5: values of format 1 or 2. Upgrading a layout 1 file changes
//	   only the version: format 1 values read as they did, with the MQTT 5
//	   fields at their defaults (a session never expires).
//
// The version is an unsigned integer, big endian, in as few bytes as it
// takes (one, so far).
//
// # On-disk format
//
// Buckets, one per kind of record:
//
//	sessions       client                     -> session value
//	subscriptions  client, filter             -> subscription value
//	deliveries     client, seq (8 bytes BE)   -> delivery value
//	inbound        client, packet id (2 BE)   -> inbound value
//	retained       topic                      -> retained value
//
// Every value starts with its format version, then a flags byte; the
// fields follow in this order, those in brackets only when their flag is
// set. Format 2 (written for every record but inbound ones) is format 1
// with the MQTT 5 fields added, each behind a flag: a record without them
// is the same bytes but for the version.
//
//	session       1|2, flags, [last seen], username, [expiry], [will], [client]
//	subscription  1|2, flags, QoS, [retain handling], [subscription id], [client], [filter]
//	delivery      1|2, flags, packet id (2 BE), QoS, message QoS, topic, payload, [extension], [client]
//	inbound       1, flags, [client]
//	retained      1|2, flags, QoS, payload, [extension], [topic]
//
// Flags: for all, 0x40 the client identifier follows, 0x80 the filter or
// topic follows. Sessions: 0x01 clean, 0x02 last seen; in format 2, 0x04
// expiry (absent: NeverExpires, as in every format 1 value), 0x08 will.
// Subscriptions, format 2: 0x01 No Local, 0x02 Retain As Published, 0x04
// retain handling (a byte), 0x08 subscription identifier. Deliveries:
// 0x01 retain, 0x02 released, 0x04 message retain; in format 2, 0x08
// extension. Retained messages: 0x01 retain; in format 2, 0x08 extension.
//
// An extension is a byte of flags, never 0, then the fields it flags: 0x01
// payload format indicator present (Message.HasFormat), 0x02 Format (a
// byte), 0x04 Props, 0x08 Expires (a varint: a will's is negative); and
// for deliveries, 0x10 SubIDs (a count, then each), 0x20 Share.
//
// A will is a byte of flags (0x01 message retain, 0x02 delay, 0x04 publish
// at, 0x08 extension), message QoS, topic, payload, [delay], [publish
// at], [extension].
//
// Strings and byte fields are a uvarint length and the bytes; expiry,
// delay, subscription identifiers and counts are uvarints; times are
// seconds as a varint and nanoseconds as a uvarint.
//
// In keys, a client identifier is its bytes with 0x00 escaped as 01 01 and
// 0x01 as 01 02, then a 00 terminator: so a client's records are one key
// range, removed by a prefix scan, and deliveries sort by (ClientID, Seq).
// A filter or topic is its bytes. Names that do not fit bbolt's key limit
// (32 KiB, where MQTT allows 64 KiB) are keyed by a hash instead: an
// identifier over 1 KiB by 01 03 and its SHA-256, a filter or topic over 16
// KiB, empty where a key would be, or starting with 0x00 by 00 and its
// SHA-256; the name is then kept in the value, and checked against the
// hash when loaded.
package bolt
