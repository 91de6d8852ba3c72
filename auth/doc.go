// Package auth is Tern's built-in, file-based user and ACL hook: users with
// bcrypt password hashes, anonymous access on or off, and allow or deny
// rules per user, for anonymous clients or for everyone, with Mosquitto's
// %u (user name) and %c (client identifier) substitution.
//
//	f, err := auth.Load("auth.conf")
//	if err != nil {
//		log.Fatal(err) // names the file and line of each mistake
//	}
//	b.AddHook(f)
//
// A *File implements tern.Authenticator, tern.PublishAuthorizer,
// tern.SubscribeAuthorizer and tern.ReadAuthorizer.
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
// is off.
//
// FORMAT.md in this directory holds the same description for the README,
// with a table for users coming from Mosquitto's acl_file.
package auth
