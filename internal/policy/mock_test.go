package policy

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestMock_Response(t *testing.T) {
	h := Mock(MockOptions{Status: 201, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"id":1}`)})
	for _, method := range []string{"GET", "HEAD"} {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, request(method, "/", "192.0.2.1", nil, nil)); err != nil {
			t.Fatal(err)
		}
		wantBody := `{"id":1}`
		if method == "HEAD" {
			wantBody = ""
		}
		if w.Code != 201 || w.Body.String() != wantBody || w.Header().Get("Content-Length") != "8" || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s: %d %q %v", method, w.Code, w.Body.String(), w.Header())
		}
	}
}
