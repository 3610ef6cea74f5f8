// Command backend is the upstream used by the benchmark: a minimal
// net/http server that answers every request with a short body, the
// same for every proxy measured.
package main

import (
	"flag"
	"log"
	"net/http"
	"strconv"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	body := []byte(`{"ok":true,"from":"bench-backend"}` + "\n")
	length := strconv.Itoa(len(body))
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr["Content-Type"] = []string{"application/json"}
		hdr["Content-Length"] = []string{length}
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, h))
}
