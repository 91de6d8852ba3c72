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
// # On-disk format
//
// Buckets, one per kind of record, and "tern" holding "format" = 1:
//
//	sessions       client                     -> 1, flags, [seconds, nanos], username, [client]
//	subscriptions  client, filter             -> 1, flags, QoS, [client], [filter]
//	deliveries     client, seq (8 bytes BE)   -> 1, flags, packet id (2 bytes BE), QoS, message QoS, topic, payload, [client]
//	inbound        client, packet id (2 BE)   -> 1, flags, [client]
//	retained       topic                      -> 1, flags, QoS, payload, [topic]
//
// Every value starts with its format version (1), then a flags byte (for
// sessions: clean 0x01, last seen present 0x02; for deliveries: retain
// 0x01, released 0x02, message retain 0x04; for retained messages: retain
// 0x01; for all: 0x40 the client identifier follows, 0x80 the filter or
// topic follows). Strings and payloads are a uvarint length and the bytes;
// seconds are a varint, nanoseconds a uvarint.
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
