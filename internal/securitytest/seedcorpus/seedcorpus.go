// Package seedcorpus keeps the committed seed corpora of the fuzz targets
// (testdata/fuzz/<FuzzName>/) in step with seed tables written in Go. It
// has no dependencies on the gateway, so any package's tests may use it.
package seedcorpus

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// UpdateCorpusEnv, set to 1, makes CheckSeedCorpus write the seed files
// instead of checking them.
const UpdateCorpusEnv = "GATEHOUSE_UPDATE_CORPUS"

// EncodeSeed encodes fuzz arguments in the format of Go's fuzz corpus
// files ("go test fuzz v1"). Supported types: string, []byte, bool.
func EncodeSeed(args ...any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case string:
			fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
		case []byte:
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(v)))
		case bool:
			fmt.Fprintf(&b, "bool(%t)\n", v)
		default:
			panic(fmt.Sprintf("seedcorpus: unsupported seed type %T", a))
		}
	}
	return []byte(b.String())
}

// CheckSeedCorpus keeps testdata/fuzz/<fuzzName>/ in step with seeds:
// each seed is a file named after its name and content hash. With
// GATEHOUSE_UPDATE_CORPUS=1 it writes missing files; otherwise it fails
// the test for each missing one. Files that are not in seeds (found by
// the fuzzer, say) are left alone.
func CheckSeedCorpus(t *testing.T, fuzzName string, seeds map[string][]any) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", fuzzName)
	update := os.Getenv(UpdateCorpusEnv) == "1"
	if update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, args := range seeds {
		data := EncodeSeed(args...)
		sum := sha256.Sum256(data)
		file := filepath.Join(dir, "seed-"+name+"-"+hex.EncodeToString(sum[:4]))
		have, err := os.ReadFile(file)
		switch {
		case err == nil && string(have) == string(data):
		case update:
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("seed %s of %s is not in %s; run the tests with %s=1 and commit it", name, fuzzName, dir, UpdateCorpusEnv)
		}
	}
}
