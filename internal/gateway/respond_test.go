package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/h1"
)

// TestResponseWriter_RequestID: the request ID goes into the header map
// the first time the map is asked for or the head is written, and only
// then (a removal stays a removal); takeFields hands it over instead, once,
// and only while it is not in the map.
func TestResponseWriter_RequestID(t *testing.T) {
	name := "X-Request-Id"
	newWriter := func() (*responseWriter, *httptest.ResponseRecorder) {
		rec := httptest.NewRecorder()
		w := &responseWriter{ResponseWriter: rec, idName: &name, idPending: true}
		w.id[0] = "the-id"
		return w, rec
	}
	ids := func(rec *httptest.ResponseRecorder) []string { return rec.Header().Values(name) }
	for what, write := range map[string]func(*responseWriter){
		"WriteHeader": func(w *responseWriter) { w.WriteHeader(http.StatusNoContent) },
		"Write":       func(w *responseWriter) { w.Write([]byte("x")) },
		"Flush":       func(w *responseWriter) { w.Flush() },
		"putFields":   func(w *responseWriter) { w.putFields() },
	} {
		w, rec := newWriter()
		write(w)
		if got := ids(rec); len(got) != 1 || got[0] != "the-id" {
			t.Errorf("%s: the map's request ID %q, want [the-id]", what, got)
		}
		var fs h1.Fields
		if w.takeFields(&fs); len(fs) != 0 {
			t.Errorf("%s: takeFields after the map has the ID: %+v", what, fs)
		}
	}

	w, rec := newWriter()
	if got := ids(rec); len(got) != 0 {
		t.Fatalf("the ID is in the map before it is asked for: %q", got)
	}
	w.Header().Del(name)
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("x"))
	if got := ids(rec); len(got) != 0 {
		t.Errorf("the ID came back after a removal: %q", got)
	}

	w, rec = newWriter()
	var fs h1.Fields
	w.takeFields(&fs)
	if want := (h1.Field{Name: name, Value: "the-id", Checked: true}); len(fs) != 1 || fs[0] != want {
		t.Errorf("takeFields %+v, want [%+v]", fs, want)
	}
	if w.takeFields(&fs); len(fs) != 1 {
		t.Errorf("takeFields twice: %+v", fs)
	}
	w.Header()
	w.WriteHeader(http.StatusOK)
	if got := ids(rec); len(got) != 0 {
		t.Errorf("the ID is in the map after takeFields: %q", got)
	}
}
