// Package metrics exports a Tern broker's counters to Prometheus.
//
// The broker does not import Prometheus: it keeps atomic counters and
// fixed-bucket histograms, and [tern.Broker.Metrics] returns a snapshot of
// them. [NewCollector] wraps that snapshot in a prometheus.Collector, which
// an application registers on its own registry:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(metrics.NewCollector(b, metrics.WithAuth(authHook)))
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// [Handler] does the same with a registry of its own, which also holds the
// Go runtime (go_*) and process (process_*) collectors; cmd/tern serves it
// at /metrics beside /healthz and /stats.
//
// Each scrape takes one snapshot, which visits every session to sum the
// messages in flight and queued; between scrapes the collector costs the
// broker nothing.
//
// # Metrics
//
// Names follow the Prometheus conventions: counters end in _total, and
// durations are in seconds. Labels with a fixed set of values (reason,
// qos, state) are always exported, zeros included, so that rates work from
// the first event. Name, type, labels, meaning:
//
//	tern_start_time_seconds              gauge                when the broker started, seconds since the Unix epoch
//	tern_connections                     gauge                open network connections, connected (CONNACK) or not yet
//	tern_connections_opened_total        counter              network connections the listeners accepted and served
//	tern_connections_refused_total       counter   reason     connections refused (see below)
//	tern_connects_accepted_total         counter              CONNECTs accepted (CONNACK success)
//	tern_disconnects_total               counter              ends of connections whose CONNECT was accepted
//	tern_accept_errors_total             counter              failed accepts the listeners retried (file descriptors, memory, aborted connections)
//	tern_packets_received_total          counter              MQTT control packets received, every type
//	tern_messages_received_total         counter   qos        PUBLISH packets received from clients, by their QoS
//	tern_messages_sent_total             counter   qos        PUBLISH packets sent to clients (and messages handed to Broker.Subscribe handlers), by the QoS delivered at
//	tern_messages_dropped_total          counter   reason     messages or deliveries dropped instead of sent (see below)
//	tern_received_bytes_total            counter              bytes received from clients
//	tern_sent_bytes_total                counter              bytes sent to clients
//	tern_retained_messages               gauge                retained messages held
//	tern_subscriptions                   gauge                subscriptions held
//	tern_subscriptions_refused_total     counter              filters refused past Options.MaxSubscriptionsPerClient
//	tern_sessions                        gauge     state      sessions: online (client connected) or offline (persistent, client away)
//	tern_inflight_messages               gauge                QoS 1 and 2 deliveries sent and not yet completed
//	tern_queued_messages                 gauge                deliveries waiting to be sent (offline clients, full windows)
//	tern_sessions_expired_total          counter              sessions discarded because their client stayed offline past their expiry
//	tern_store_commit_duration_seconds   histogram            duration of each write (group commit) to Options.Store
//	tern_store_commit_operations         histogram            operations in each write to Options.Store
//	tern_store_commit_errors_total       counter              writes to Options.Store that failed (they are retried)
//	tern_hook_duration_seconds           histogram hook       duration of hook calls, by hook method; only methods called at least once
//	tern_memory_releases_total           counter              memory returned to the operating system after a burst of connections (Options.ReleaseMemoryAfter)
//
// With [WithAuth] (the auth package's *auth.File or *auth.Mosquitto):
//
//	tern_auth_password_checks_total      counter              passwords compared with their hash
//	tern_auth_password_failures_total    counter              of those, wrong passwords and unknown users
//	tern_auth_cache_hits_total           counter              logins accepted from the success cache, without a hash
//	tern_auth_rate_limited_total         counter              logins refused unchecked: too many failures from the address
//	tern_auth_busy_total                 counter              logins refused unchecked: no check slot free
//
// The reason label of tern_connections_refused_total ([tern.RefuseReason]):
// bad_credentials, not_authorized, identifier_rejected, protocol_version,
// server_unavailable (server unavailable or busy; also an auth hook
// refusing because of rate limits or load: see tern_auth_*),
// quota_exceeded, banned, bad_auth_method (the CONNACK's reason code),
// store_failing (a persistent session while the store's writes fail),
// connection_limit (over Options.MaxConnections), fd_limit (closed at
// accept, out of file descriptors), other.
//
// The reason label of tern_messages_dropped_total ([tern.DropReason]):
// queue_full (a session's queue, or a Broker.Subscribe handler's buffer),
// offline_qos0, write_buffer_full (QoS 0 for a client that is not
// reading), connection_closed, too_large (over an MQTT 5 client's Maximum
// Packet Size), read_denied (the client may no longer read the topic),
// expired (MQTT 5 Message Expiry), publish_refused (a PublishAuthorizer or
// PublishInterceptor hook), sys_topic (a client's publish to $SYS/broker/),
// payload_format_invalid, other.
//
// The hook label of tern_hook_duration_seconds is the hook method:
// Authenticate, AuthStep, AuthorizeSession, AuthorizePublish,
// AuthorizeSubscribe, AuthorizeRead, InterceptPublish, InterceptConnect,
// InterceptWill, OnConnect, OnDisconnect, OnSubscribe, OnUnsubscribe,
// OnDrop, OnSession, OnWill, OnDelivered, OnRetain, SubscribeHandler
// (Broker.Subscribe handlers), other.
//
// The duration histograms have buckets from 1µs to 10s (1, 2.5 and 5
// times each power of ten); tern_store_commit_operations has powers of 2
// from 1 to 4096.
package metrics
