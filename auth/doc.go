// Package auth holds Tern's built-in, file-based user and ACL hooks. It
// reads two kinds of files:
//
//   - Tern's auth file (Load, Parse): users with bcrypt password hashes,
//     anonymous access on or off, and allow or deny rules per user, for
//     anonymous clients or for everyone, with Mosquitto's %u (user name)
//     and %c (client identifier) substitution. Described below.
//   - Mosquitto's password_file and acl_file, as they are (LoadMosquitto),
//     decided as Mosquitto 2.0 does. FORMAT.md describes them with tables
//     of the rules and of where Tern differs. SetPassword, SetPasswordHash
//     and DeleteUser edit a password file as mosquitto_passwd does.
//
// A Tern auth file:
//
//	f, err := auth.Load("auth.conf")
//	if err != nil {
//		log.Fatal(err) // names the file and line of each mistake
//	}
//	b.AddHook(f)
//
// A *File and a *Mosquitto implement tern.Authenticator,
// tern.PublishAuthorizer, tern.SubscribeAuthorizer and tern.ReadAuthorizer.
// Both bound the work of password checks (see Options), so that a flood of
// wrong passwords cannot lock legitimate clients out: a cache of successful
// checks, a limit on failed checks per address, and a bounded pool of
// checks. A CONNECT that cannot be checked now is refused with CONNACK 0x03
// (server unavailable).
//
// For Mosquitto's files, as the standalone broker reads them from
// mosquitto.conf's password_file, acl_file and allow_anonymous:
//
//	m, err := auth.LoadMosquitto(auth.MosquittoFiles{
//		PasswordFile:   "/etc/mosquitto/passwd",
//		ACLFile:        "/etc/mosquitto/acl",
//		AllowAnonymous: false,
//	}, auth.Options{Logger: logger})
//	if err != nil {
//		log.Fatal(err)
//	}
//	b.AddHook(m)
//	// On SIGHUP:
//	if err := m.Reload(); err != nil {
//		logger.Error("reload", "err", err) // the previous content stays
//	}
//
// # A complete example
//
//	# Tern auth file.
//	# Comments take a whole line. Blank lines are ignored.
//
//	# Clients that send no user name may connect (default: off).
//	anonymous on
//
//	# user NAME BCRYPT-HASH (hashes of "alice-password" and "bob-password")
//	user alice   $2a$10$kxwzTOaE6uicdgSHkh0Lm.vbMbmyeXV2UdCmNNvFiRHTGv3sf9CYa
//	user bob     $2a$10$gjMV5BDMw934zCuj3WrVxe8JVSa/gBZMgkDoRHtp7tN/gAla2e3WC
//
//	# acl SUBJECT allow|deny read|write|readwrite TOPIC-FILTER
//	# SUBJECT is: anonymous | user NAME | all
//	acl all        allow read      public/#
//	acl user alice allow write     public/#
//	acl all        allow readwrite home/%u/#
//	acl all        allow readwrite devices/%c/#
//	acl all        deny  write     devices/+/firmware
//	acl user bob   allow read      home/#
//	acl user bob   deny  read      home/alice/#
//	acl user bob   allow read      $SYS/#
//
// # Directives
//
// Each non-blank line that does not start with '#' is one directive; words
// are separated by spaces or tabs. Comments take a whole line.
//
//   - anonymous on|off: whether a client that sends no user name (or an
//     empty one) may connect. true and false are synonyms. Default off; at
//     most once.
//   - user NAME HASH: a user and the bcrypt hash ($2a$, $2b$ or $2y$, 60
//     characters) of its password; see HashPassword. Names cannot contain
//     blanks. A name listed twice is an error naming both lines.
//   - acl SUBJECT allow|deny ACCESS FILTER: one rule. SUBJECT is
//     "anonymous" (clients without a user name), "user NAME" (a listed
//     user) or "all" (every client). ACCESS is read (receive and
//     subscribe), write (publish) or readwrite. FILTER is an MQTT topic
//     filter, the rest of the line; in it %u stands for the user name, %c
//     for the client identifier and %% for a literal '%'.
//
// # Rules
//
// With no acl line at all, every connected client may do everything.
// Otherwise, the rules that count for a client are its own ("user NAME" or
// "anonymous") and the "all" rules; access is refused when any of them
// denies it, granted when any allows it, and refused when none matches.
// Deny wins and the order of lines does not matter.
//
// A PUBLISH needs write access to its topic. Each delivery, retained
// messages included, needs read access to the message's topic. A SUBSCRIBE
// filter is granted unless no allow read rule could grant a topic it
// matches, or one deny read rule covers every topic it matches (SUBACK
// 0x80); a granted wildcard subscription then delivers only readable
// topics. Mosquitto 2 grants every SUBSCRIBE and only filters deliveries;
// Tern also refuses the filters that could never deliver anything.
//
// As MQTT requires, a filter starting with '+' or '#' never matches a topic
// starting with '$': $SYS/# must be named by a rule.
//
// A rule with %u does not concern anonymous clients, and one with %c does
// not concern a client with an empty identifier. A client whose user name
// or client identifier contains '+', '#' or '/' is refused everything when
// a rule concerning it substitutes that value, so that a client identifier
// like "a/#" cannot widen "devices/%c/#". A substituted level never lets a
// rule match a '$' topic. Messages published with Broker.Publish and
// in-process subscribers are not checked.
//
// # Authentication
//
// A user name and password matching a user line connect. A wrong password,
// an unknown user or a password longer than 72 bytes gets CONNACK 0x04; an
// unknown user costs the same bcrypt time as a known one. A client without
// a user name connects when anonymous is on and gets CONNACK 0x05 when it
// is off. A password that could not be checked now gets CONNACK 0x03.
//
// # Password checks under load
//
// Before a password is compared with its hash (see Options for the
// defaults):
//
//  1. A user name and password that passed within CacheTTL pass again
//     without a hash. The cache is keyed by HMAC-SHA256 of the user name
//     and password under a random key of the hook; a reload empties it.
//  2. Each remote address (IPv6: each /64) has a token bucket of failed
//     checks (FailureBurst, refilled at FailureRate per second). A check
//     takes a token and a success gives it back; an address without a
//     token is refused with CONNACK 0x03 without a hash.
//  3. At most MaxConcurrentChecks hashes run at once; a check waits behind
//     at most MaxWaiting others for at most MaxWait, and is refused with
//     CONNACK 0x03 past either bound, or when the broker's context ends.
//     Addresses that failed recently hold at most half of the slots.
//
// An unknown user takes the same path as a known one. Refusals are counted
// (File.Stats, Mosquitto.Stats) and logged at most once a second.
//
// FORMAT.md in this directory holds the same description for the README,
// with tables for Mosquitto's files and for users coming from Mosquitto.
package auth
