package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// freePort returns a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// startProcess starts a program stopped (by its PID) when the test ends,
// or earlier by the function it returns.
func startProcess(t *testing.T, bin string, args ...string) (stop func()) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	t.Cleanup(stop)
	return stop
}

// sentinelWait bounds each wait on the Sentinel: it learns of replicas
// and reconfigures old primaries on timers of its own (seconds).
const sentinelWait = 30 * time.Second

// A primary with a replica, watched by a Sentinel: the gateway finds the
// primary through the Sentinel, keeps its buckets there, and after a
// failover follows the new primary, where the replicated buckets still
// hold what was spent.
func TestRedisSentinel_FollowsAFailover(t *testing.T) {
	if os.Getenv("GATEHOUSE_TEST_REDIS_URL") == "" {
		t.Skip("GATEHOUSE_TEST_REDIS_URL is not set: the Redis tests run where a Redis is installed (this one starts a primary, a replica and a Sentinel of its own)")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not installed: the test starts a Sentinel of its own")
	}
	dir := t.TempDir()
	primary, replica, sentinel := freePort(t), freePort(t), freePort(t)
	common := []string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}
	startProcess(t, bin, append([]string{"--port", primary}, common...)...)
	startProcess(t, bin, append([]string{"--port", replica, "--replicaof", "127.0.0.1", primary}, common...)...)
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("port %s\nbind 127.0.0.1\nsentinel monitor gh-primary 127.0.0.1 %s 1\nsentinel down-after-milliseconds gh-primary 1000\nsentinel failover-timeout gh-primary 2000\n", sentinel, primary)), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, bin, conf, "--sentinel")
	ctx := context.Background()
	sc := redis.NewSentinelClient(&redis.Options{Addr: "127.0.0.1:" + sentinel})
	defer sc.Close()
	masterPort := func() string {
		a, err := sc.GetMasterAddrByName(ctx, "gh-primary").Result()
		if err != nil || len(a) != 2 {
			return ""
		}
		return a[1]
	}
	eventually(t, sentinelWait, "the Sentinel to know the primary", func() bool { return masterPort() == primary })
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + replica})
	defer rc.Close()
	eventually(t, sentinelWait, "the replica to sync", func() bool {
		info, _ := rc.Info(ctx, "replication").Result()
		return strings.Contains(info, "master_link_status:up")
	})
	eventually(t, sentinelWait, "the Sentinel to see the replica", func() bool {
		r, err := sc.Replicas(ctx, "gh-primary").Result()
		return err == nil && len(r) == 1
	})

	file := rateLimitedConfig(t, fmt.Sprintf("  redis:\n    url: redis://127.0.0.1:%s/0\n    sentinel_master: gh-primary", sentinel), 3, "header:X-User")
	g := serve(t, file, t.TempDir(), slog.New(slog.DiscardHandler))
	call := func(user string) int {
		req, _ := http.NewRequest("GET", g.url+"/x", nil)
		req.Header.Set("X-User", user)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	var codes []int
	for range 4 {
		codes = append(codes, call("alice"))
	}
	if fmt.Sprint(codes) != "[200 200 200 429]" {
		t.Fatalf("through the Sentinel's primary: %v", codes)
	}
	pc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + primary})
	defer pc.Close()
	if n, _ := pc.DBSize(ctx).Result(); n == 0 {
		t.Fatal("no bucket on the primary")
	}
	// The replica has the bucket before the failover starts.
	eventually(t, sentinelWait, "the bucket to reach the replica", func() bool {
		n, _ := rc.DBSize(ctx).Result()
		return n > 0
	})
	// The Sentinel refuses (NOGOODSLAVE) until it has fresh news of the
	// replica; asked again until it accepts.
	var ferr error
	eventually(t, sentinelWait, "the Sentinel to accept the failover", func() bool {
		ferr = sc.Failover(ctx, "gh-primary").Err()
		if ferr != nil && !strings.Contains(ferr.Error(), "NOGOODSLAVE") {
			t.Fatal(ferr)
		}
		return ferr == nil
	})
	eventually(t, sentinelWait, "the failover to the replica", func() bool { return masterPort() == replica })
	// Until the Sentinel has made the old primary a replica, it still
	// takes writes, which its resync then drops (asynchronous replication:
	// Sentinel's own caveat); the checks below start once it has.
	eventually(t, sentinelWait, "the old primary to become a replica", func() bool {
		info, _ := pc.Info(ctx, "replication").Result()
		return strings.Contains(info, "role:slave") && strings.Contains(info, "master_link_status:up")
	})
	// The gateway follows: alice's spent bucket is on the new primary
	// (429), bob has his own limit there (decisions may fail while the
	// client learns the new primary: the test waits for the first
	// answer that is not 503).
	var first int
	eventually(t, sentinelWait, "a decision on the new primary", func() bool {
		first = call("alice")
		return first != http.StatusServiceUnavailable
	})
	if first != http.StatusTooManyRequests {
		t.Fatalf("alice after the failover: %d, want 429 (her bucket replicated)", first)
	}
	codes = codes[:0]
	for range 4 {
		codes = append(codes, call("bob"))
	}
	if fmt.Sprint(codes) != "[200 200 200 429]" {
		t.Fatalf("bob on the new primary: %v", codes)
	}
	if n, _ := rc.DBSize(ctx).Result(); n < 2 {
		t.Fatalf("the new primary holds %d buckets, want alice's and bob's", n)
	}
}
