package listeners

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
)

// HTTPHandler returns an operations handler that serves two endpoints:
//
//   - GET /healthz answers 200 "ok" while healthy() is true and 503
//     "unavailable" otherwise (nil healthy counts as always healthy). Point a
//     load balancer or an orchestrator's probe at it, with healthy reporting
//     whether the broker is serving (false once it is shutting down).
//   - GET /stats answers 200 with stats() encoded as JSON (nil stats answers
//     404). stats is called once per request, so it can return a fresh
//     snapshot of the broker's counters.
//
// Other paths answer 404 and other methods 405. HEAD works as GET without a
// body. Responses are not cacheable.
//
// Mount it on the application's mux, or serve it alone:
//
//	ops := listeners.HTTPHandler(func() any { return b.Stats() }, b.Serving)
//	mux.Handle("/healthz", ops)
//	mux.Handle("/stats", ops)
//	// or: go http.ListenAndServe("127.0.0.1:8081", ops)
//
// The statistics may reveal client counts and topic activity: expose them on
// an address only operators can reach.
func HTTPHandler(stats func() any, healthy func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", HealthHandler(healthy))
	if stats != nil {
		mux.Handle("GET /stats", StatsHandler(stats))
	}
	return mux
}

// HealthHandler answers every request with 200 "ok" while healthy() is true
// and 503 "unavailable" otherwise; nil healthy counts as always healthy.
func HealthHandler(healthy func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		code, body := http.StatusOK, "ok\n"
		if healthy != nil && !healthy() {
			code, body = http.StatusServiceUnavailable, "unavailable\n"
		}
		writeBody(w, r, code, []byte(body))
	})
}

// StatsHandler answers every request with stats() encoded as JSON, 500 when
// it cannot be encoded, or 404 when stats is nil.
func StatsHandler(stats func() any) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if stats == nil {
			http.NotFound(w, r)
			return
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(stats()); err != nil {
			http.Error(w, "cannot encode statistics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		writeBody(w, r, http.StatusOK, buf.Bytes())
	})
}

// writeBody answers with code and body, leaving the body out for HEAD.
func writeBody(w http.ResponseWriter, r *http.Request, code int, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
