package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// Environment variables of the admin API client.
const (
	envAdminURL   = "GATEHOUSE_ADMIN_URL"
	envAdminToken = "GATEHOUSE_ADMIN_TOKEN"
)

// adminFlags are the options of commands that call the admin API. The
// credential is read from the environment or a file, never from a flag
// value: a flag would land in shell history and process listings.
type adminFlags struct {
	url       string
	tokenFile string
	caFile    string
	certFile  string
	keyFile   string
}

func (f *adminFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.url, "admin-url", "", "admin API base URL (default $"+envAdminURL+", else http://127.0.0.1:9901)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "file holding the admin API key or JWT (default: $"+envAdminToken+")")
	cmd.Flags().StringVar(&f.caFile, "ca-file", "", "PEM CA bundle to verify an https admin listener")
	cmd.Flags().StringVar(&f.certFile, "cert-file", "", "client certificate for an admin listener that requires mTLS")
	cmd.Flags().StringVar(&f.keyFile, "key-file", "", "client certificate key")
}

// adminClient calls the admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

func (f *adminFlags) client() (*adminClient, error) {
	base := f.url
	if base == "" {
		base = os.Getenv(envAdminURL)
	}
	if base == "" {
		base = "http://127.0.0.1:9901"
	}
	c := &adminClient{base: strings.TrimRight(base, "/")}
	switch {
	case f.tokenFile != "":
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %v", err)
		}
		c.token = strings.TrimSpace(string(b))
		if c.token == "" {
			return nil, fmt.Errorf("--token-file %s is empty", f.tokenFile)
		}
	default:
		c.token = strings.TrimSpace(os.Getenv(envAdminToken))
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", f.caFile)
		}
		tlsConf.RootCAs = pool
	}
	if f.certFile != "" || f.keyFile != "" {
		cert, err := tls.LoadX509KeyPair(f.certFile, f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--cert-file/--key-file: %v", err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	c.http = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf, Proxy: http.ProxyFromEnvironment}}
	return c, nil
}

// apiError is a problem document returned by the admin API.
type apiError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

func (e *apiError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%d %s: %s", e.Status, e.Title, e.Detail)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Title)
}

// do sends a request and decodes a JSON reply into out (when not nil).
// A non-2xx reply is an *apiError.
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		e := &apiError{Status: res.StatusCode, Title: http.StatusText(res.StatusCode)}
		_ = json.Unmarshal(data, e)
		return e
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}
