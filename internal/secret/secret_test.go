package secret

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gatehouse-dev/gatehouse/internal/config"
)

func TestLocalResolve(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	os.WriteFile(file, []byte("s3cr3t-from-file\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, bytes.Repeat([]byte("x"), 100<<10), 0o600)
	l := Local{LookupEnv: func(k string) (string, bool) {
		switch k {
		case "SET":
			return "s3cr3t-from-env", true
		case "EMPTY":
			return "", true
		}
		return "", false
	}}
	tests := []struct {
		ref     config.Secret
		want    string
		wantErr string
	}{
		{config.Secret{Provider: "env", Ref: "SET"}, "s3cr3t-from-env", ""},
		{config.Secret{Provider: "env", Ref: "UNSET"}, "", "is not set"},
		{config.Secret{Provider: "env", Ref: "EMPTY"}, "", "is empty"},
		{config.Secret{Provider: "file", Ref: file}, "s3cr3t-from-file", ""},
		{config.Secret{Provider: "file", Ref: filepath.Join(dir, "missing")}, "", "does not exist"},
		{config.Secret{Provider: "file", Ref: empty}, "", "is empty"},
		{config.Secret{Provider: "file", Ref: big}, "", "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.ref.String(), func(t *testing.T) {
			v, err := l.Resolve(context.Background(), tt.ref)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || v.Reveal() != tt.want {
				t.Fatalf("got %q, %v", v.Reveal(), err)
			}
		})
	}
	_, err := l.Resolve(context.Background(), config.Secret{Provider: "env", Ref: "UNSET"})
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing env var is not ErrNotFound: %v", err)
	}
}

func TestValueNeverPrints(t *testing.T) {
	v := NewValue("hunter2")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", v)
	j, err := json.Marshal(map[string]any{"v": v, "in": struct{ S Value }{v}})
	if err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprint(v) + fmt.Sprintf("%v %s %+v %#v %x %X %q", v, v, v, v, v, v, v) +
		fmt.Sprintf("%+v %#v", struct{ S Value }{v}, struct{ S Value }{v}) + string(j) + buf.String()
	if strings.Contains(out, "hunter2") || strings.Contains(out, hex.EncodeToString([]byte("hunter2"))) {
		t.Fatalf("secret printed: %s", out)
	}
}
