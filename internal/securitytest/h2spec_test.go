package securitytest_test

import (
	"encoding/xml"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// h2specBinary finds h2spec on PATH or in $GOPATH/bin (where .ci/run
// installs it with go install).
func h2specBinary() string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "h2spec")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

type junitSuites struct {
	Suites []struct {
		Cases []struct {
			Package string `xml:"package,attr"`
			Name    string `xml:"classname,attr"`
			Failure *struct {
				Message string `xml:",chardata"`
			} `xml:"failure"`
			Error *struct {
				Message string `xml:",chardata"`
			} `xml:"error"`
			Skipped *struct{} `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// runH2spec runs h2spec against a TLS listener and returns the number of
// cases and the IDs of the failed ones.
func runH2spec(t *testing.T, bin, addr string) (total int, failed []string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	report := filepath.Join(t.TempDir(), "h2spec.xml")
	cmd := exec.Command(bin, "-h", host, "-p", port, "-t", "-k", "-o", "2", "-j", report)
	out, _ := cmd.CombinedOutput() // exits non-zero when a case fails
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec wrote no report: %v\n%s", err, out)
	}
	var r junitSuites
	if err := xml.Unmarshal(data, &r); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	for _, s := range r.Suites {
		for _, c := range s.Cases {
			if c.Skipped != nil {
				continue
			}
			total++
			if c.Failure != nil || c.Error != nil {
				failed = append(failed, c.Package+" "+c.Name)
			}
		}
	}
	sort.Strings(failed)
	return total, failed
}

// HTTP/2 conformance: h2spec against the gateway's TLS listener and, in
// the same run, against a plain Go net/http server. The gateway must fail
// no case that Go's own server passes. h2spec is installed by .ci/run;
// the test is skipped only where it is missing and CI is not set.
func TestHTTP2_Conformance_H2spec(t *testing.T) {
	bin := h2specBinary()
	if bin == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("h2spec is not installed (.ci/run installs it: go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible)")
		}
		t.Skip("h2spec is not installed; go install github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible")
	}
	e := newEnv(t, envOptions{})
	plain := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	plain.EnableHTTP2 = true
	plain.Config.ReadHeaderTimeout = 5 * time.Second
	plain.Config.ErrorLog = log.New(io.Discard, "", 0)
	plain.StartTLS()
	defer plain.Close()

	goTotal, goFailed := runH2spec(t, bin, plain.Listener.Addr().String())
	gwTotal, gwFailed := runH2spec(t, bin, e.gw.TLSAddr)
	t.Logf("FIGURE h2spec: gateway %d cases, %d failed; plain Go net/http %d cases, %d failed", gwTotal, len(gwFailed), goTotal, len(goFailed))
	for _, f := range gwFailed {
		t.Logf("gateway failed: %s", f)
	}
	for _, f := range goFailed {
		t.Logf("Go failed: %s", f)
	}
	if gwTotal == 0 {
		t.Fatal("h2spec ran no case against the gateway")
	}
	goSet := map[string]bool{}
	for _, f := range goFailed {
		goSet[f] = true
	}
	for _, f := range gwFailed {
		if !goSet[f] {
			t.Errorf("the gateway fails a case Go's own server passes: %s", f)
		}
	}
	if len(gwFailed) > len(goFailed) {
		t.Errorf("the gateway fails %d cases, Go's server %d", len(gwFailed), len(goFailed))
	}
}
