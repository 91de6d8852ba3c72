package listeners

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
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
			if rec.Code != tt.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tt.wantStatus)
			}
			if tt.wantBody != "" && !strings.Contains(rec.Body.String(), tt.wantBody) {
				t.Errorf("body %q, want it to contain %q", rec.Body.String(), tt.wantBody)
			}
			if tt.method == http.MethodHead && rec.Body.Len() != 0 {
				t.Errorf("HEAD returned a body: %q", rec.Body.String())
			}
			if rec.Code == http.StatusOK && rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", rec.Header().Get("Cache-Control"))
			}
		})
	}
}

func TestHTTPHandlerStatsEncoding(t *testing.T) {
	rec := httptest.NewRecorder()
	HTTPHandler(func() any { return struct{ Uptime string }{"1h"} }, nil).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stats", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" ||
		strings.TrimSpace(rec.Body.String()) != "{\n  \"Uptime\": \"1h\"\n}" {
		t.Fatalf("stats: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}

	rec = httptest.NewRecorder()
	HTTPHandler(func() any { return make(chan int) }, nil).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/stats", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("unencodable stats: status %d, want 500", rec.Code)
	}
}

// Nil functions: no stats endpoint, always healthy; nothing panics.
func TestHTTPHandlerNilFuncs(t *testing.T) {
	h := HTTPHandler(nil, nil)
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/stats": http.StatusNotFound} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("%s: status %d, want %d", path, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	StatsHandler(nil).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusNotFound {
		t.Errorf("StatsHandler(nil): status %d, want 404", rec.Code)
	}
}
