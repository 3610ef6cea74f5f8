package server_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startRedisCluster runs a Redis Cluster of three primaries of its own,
// stopped (by their PIDs) when the test ends, and returns their
// addresses.
func startRedisCluster(t *testing.T) []string {
	t.Helper()
	if os.Getenv("GATEHOUSE_TEST_REDIS_URL") == "" {
		t.Skip("GATEHOUSE_TEST_REDIS_URL is not set: the Redis tests run where a Redis is installed (this one starts a Redis Cluster of its own)")
	}
	server, err1 := exec.LookPath("redis-server")
	cli, err2 := exec.LookPath("redis-cli")
	if err1 != nil || err2 != nil {
		t.Skip("redis-server and redis-cli are needed: the test starts a Redis Cluster of its own")
	}
	dir := t.TempDir()
	var addrs []string
	for range 3 {
		port := freePort(t)
		startProcess(t, server, "--port", port, "--bind", "127.0.0.1", "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes-"+port+".conf", "--cluster-node-timeout", "2000",
			"--save", "", "--appendonly", "no", "--dir", dir)
		addrs = append(addrs, "127.0.0.1:"+port)
	}
	ctx := context.Background()
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		eventually(t, 10*time.Second, "cluster node "+a+" to answer", func() bool { return c.Ping(ctx).Err() == nil })
		c.Close()
	}
	create := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...), "--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		eventually(t, 15*time.Second, "the cluster to be ready at "+a, func() bool {
			info, _ := c.ClusterInfo(ctx).Result()
			return strings.Contains(info, "cluster_state:ok")
		})
		c.Close()
	}
	return addrs
}

// With storage.redis.cluster the buckets are spread over the nodes by
// their keys' slots, and every limit is still exact.
func TestRedisCluster_LimitsSpreadOverTheNodes(t *testing.T) {
	addrs := startRedisCluster(t)
	file := rateLimitedConfig(t, fmt.Sprintf("  redis:\n    url: redis://%s?addr=%s\n    cluster: true", addrs[0], addrs[1]), 3, "header:X-User")
	g := serve(t, file, t.TempDir(), slog.New(slog.DiscardHandler))
	for u := range 12 {
		var codes []int
		for range 4 {
			req, _ := http.NewRequest("GET", g.url+"/x", nil)
			req.Header.Set("X-User", "user-"+strconv.Itoa(u))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			codes = append(codes, res.StatusCode)
		}
		if fmt.Sprint(codes) != "[200 200 200 429]" {
			t.Fatalf("user-%d: %v, want the limit of 3 then 429", u, codes)
		}
	}
	// The buckets are on more than one node.
	holding := 0
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		n, err := c.DBSize(context.Background()).Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Fatalf("12 keys' buckets are on %d node(s) of 3", holding)
	}
}
