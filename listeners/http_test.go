package listeners

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHTTPHandler(t *testing.T) {
	var serving atomic.Bool
	serving.Store(true)
	stats := func() any { return map[string]int{"clients": 3, "messages_received": 42} }
	h := HTTPHandler(stats, serving.Load)

	tests := []struct {
		name       string
		method     string
		path       string
		healthy    bool
		wantStatus int
		wantBody   string // substring; "" for an empty body
	}{
		{"healthy", http.MethodGet, "/healthz", true, http.StatusOK, "ok"},
		{"shutting down", http.MethodGet, "/healthz", false, http.StatusServiceUnavailable, "unavailable"},
		{"head", http.MethodHead, "/healthz", true, http.StatusOK, ""},
		{"stats", http.MethodGet, "/stats", true, http.StatusOK, `"messages_received": 42`},
		{"stats while shutting down", http.MethodGet, "/stats", false, http.StatusOK, `"clients": 3`},
		{"post", http.MethodPost, "/healthz", true, http.StatusMethodNotAllowed, ""},
		{"unknown path", http.MethodGet, "/metrics", true, http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			serving.Store(tt.healthy)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			require.Equal(t, tt.wantStatus, rec.Code, "status")
			if tt.wantBody != "" {
				assert.Contains(t, rec.Body.String(), tt.wantBody, "body")
			}
			if tt.method == http.MethodHead {
				assert.Zero(t, rec.Body.Len(), "HEAD returned a body: %q", rec.Body.String())
			}
			if rec.Code == http.StatusOK {
				assert.Equal(t, "no-store", rec.Header().Get("Cache-Control"), "Cache-Control")
			}
		})
	}
}

func TestHTTPHandlerStatsEncoding(t *testing.T) {
	rec := httptest.NewRecorder()
	HTTPHandler(func() any { return struct{ Uptime string }{"1h"} }, nil).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stats", nil))
	require.Equal(t, http.StatusOK, rec.Code, "stats status")
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"), "stats Content-Type")
	require.Equal(t, "{\n  \"Uptime\": \"1h\"\n}", strings.TrimSpace(rec.Body.String()), "stats body")

	rec = httptest.NewRecorder()
	HTTPHandler(func() any { return make(chan int) }, nil).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stats", nil))
	assert.Equal(t, http.StatusInternalServerError, rec.Code, "unencodable stats")
}

// Nil functions: no stats endpoint, always healthy; nothing panics.
func TestHTTPHandlerNilFuncs(t *testing.T) {
	h := HTTPHandler(nil, nil)
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/stats": http.StatusNotFound} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, want, rec.Code, "%s: status", path)
	}
	rec := httptest.NewRecorder()
	StatsHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	assert.Equal(t, http.StatusNotFound, rec.Code, "StatsHandler(nil): status")
}
