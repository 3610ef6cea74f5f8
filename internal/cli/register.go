package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

type registerFlags struct {
	admin    adminFlags
	ecs      bool
	service  string
	rawURL   string
	port     int
	scheme   string
	ttl      time.Duration
	weight   int
	zone     string
	metadata []string
	once     bool
	logs     logFlags
}

// registeredInstance is the admin API's view of an instance.
type registeredInstance struct {
	Service string `json:"service"`
	ID      string `json:"id"`
	Expires string `json:"expires"`
}

func (s *streams) registerCmd() *cobra.Command {
	var f registerFlags
	cmd := &cobra.Command{
		Use:   "register (--ecs --port PORT | --service NAME --url URL)",
		Short: "Register this instance with a gateway, heartbeat, and deregister on SIGTERM",
		Long: `Register an instance of a backend service through the gateway's admin API,
renew the registration every TTL/3, and deregister it on SIGTERM or SIGINT
(the gateway then sends it no new requests), then exit 0.

  --ecs     run in (or beside) an Amazon ECS task: the task's private IPv4,
            cluster, service (or family), revision, task ARN and availability
            zone are read from the task metadata endpoint v4
            ($ECS_CONTAINER_METADATA_URI_V4); give the port with --port.
  --url     any deployment pipeline: register scheme://ip:port as --service.

The admin credential (an admin API key or a JWT with the registrar role for
the service) is read from $GATEHOUSE_ADMIN_TOKEN or --token-file, never from
the command line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			logger, _, err := f.logs.loggers(s)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return runRegister(ctx, cmd.Context(), &f, logger)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.ecs, "ecs", false, "read the task's address and metadata from the ECS task metadata endpoint v4")
	fl.StringVar(&f.service, "service", "", "service to register into (with --ecs, default the ECS service name, else the task family)")
	fl.StringVar(&f.rawURL, "url", "", "instance base URL, scheme://ip:port (without --ecs)")
	fl.IntVar(&f.port, "port", 0, "with --ecs: the port the container serves on")
	fl.StringVar(&f.scheme, "scheme", "http", "with --ecs: http or https")
	fl.DurationVar(&f.ttl, "ttl", 30*time.Second, "registration TTL; heartbeats every TTL/3")
	fl.IntVar(&f.weight, "weight", 0, "load-balancing weight (default 1)")
	fl.StringVar(&f.zone, "zone", "", "availability zone (with --ecs, default the task's)")
	fl.StringSliceVar(&f.metadata, "meta", nil, "metadata key=value (repeatable)")
	fl.BoolVar(&f.once, "once", false, "register and exit, without heartbeats (the registration lapses after its TTL)")
	f.admin.add(cmd)
	f.logs.add(cmd, "text")
	return cmd
}

func runRegister(ctx, parent context.Context, f *registerFlags, logger *slog.Logger) error {
	client, err := f.admin.client()
	if err != nil {
		return err
	}
	body := map[string]any{"ttl": f.ttl.String()}
	md := map[string]string{}
	service := f.service
	switch {
	case f.ecs:
		if f.rawURL != "" {
			return errors.New("--ecs and --url exclude each other")
		}
		if f.port < 1 || f.port > 65535 {
			return errors.New("--ecs needs --port, the port the container serves on")
		}
		base := os.Getenv(envECSMetadata)
		if base == "" {
			return fmt.Errorf("--ecs: $%s is not set; is this an ECS task?", envECSMetadata)
		}
		info, err := readECS(ctx, strings.TrimRight(base, "/"))
		if err != nil {
			return err
		}
		if service == "" {
			service = info.Service
		}
		body["address"], body["port"], body["scheme"] = info.IP, f.port, f.scheme
		if info.Zone != "" {
			body["zone"] = info.Zone
		}
		md = info.Metadata
	default:
		if service == "" || f.rawURL == "" {
			return errors.New("give --ecs and --port, or --service and --url")
		}
		u, err := url.Parse(f.rawURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			return fmt.Errorf("--url %q must be http(s)://ip:port", f.rawURL)
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		p, _ := strconv.Atoi(port)
		body["address"], body["port"], body["scheme"] = u.Hostname(), p, u.Scheme
	}
	if service == "" {
		return errors.New("no service name: give --service")
	}
	if f.zone != "" {
		body["zone"] = f.zone
	}
	if f.weight != 0 {
		body["weight"] = f.weight
	}
	for _, kv := range f.metadata {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return fmt.Errorf("--meta %q must be key=value", kv)
		}
		md[k] = v
	}
	if len(md) > 0 {
		body["metadata"] = md
	}
	path := "/v1/services/" + url.PathEscape(service) + "/instances"
	var in registeredInstance
	if err := registerFirst(ctx, client, path, body, &in, f.once, logger); err != nil {
		return fmt.Errorf("registering into %s: %w", service, err)
	}
	logger.Info("registered", "service", in.Service, "instance", in.ID, "expires", in.Expires)
	if f.once {
		return nil
	}
	beat := path + "/" + url.PathEscape(in.ID) + "/heartbeat"
	t := time.NewTicker(max(f.ttl/3, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// Deregister with a context of its own: ctx is the signal.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(parent), 10*time.Second)
			defer cancel()
			err := client.do(dctx, "DELETE", path+"/"+url.PathEscape(in.ID), nil, nil)
			var ae *apiError
			if err != nil && !(errors.As(err, &ae) && ae.Status == 404) {
				return fmt.Errorf("deregistering %s: %w", in.ID, err)
			}
			logger.Info("deregistered", "service", service, "instance", in.ID)
			return nil
		case <-t.C:
			err := client.do(ctx, "PUT", beat, nil, nil)
			var ae *apiError
			switch {
			case err == nil:
			case errors.As(err, &ae) && ae.Status == 404:
				// Expired (the gateway or the network was away): register again.
				if err := client.do(ctx, "POST", path, body, &in); err != nil {
					logger.Warn("registering again failed; retrying at the next heartbeat", "error", err)
				} else {
					logger.Info("registered again", "service", service, "instance", in.ID)
				}
			case ctx.Err() != nil:
			default:
				logger.Warn("heartbeat failed; retrying", "error", err)
			}
		}
	}
}

// registerFirst registers the instance. Unless once, a failure that may
// pass (the gateway unreachable or restarting: a network error, 429 or a
// 5xx) is logged and retried after 1 s, then twice as long each time up
// to 30 s, until ctx is done: a container started while the gateway is
// away registers once it is back. A refusal (any other 4xx: a bad
// address, a wrong key) is returned at once.
func registerFirst(ctx context.Context, client *adminClient, path string, body any, in *registeredInstance, once bool, logger *slog.Logger) error {
	wait := firstRegisterWait
	for {
		err := client.do(ctx, "POST", path, body, in)
		var ae *apiError
		switch {
		case err == nil:
			return nil
		case once, ctx.Err() != nil:
			return err
		case errors.As(err, &ae) && ae.Status/100 == 4 && ae.Status != http.StatusTooManyRequests:
			return err
		}
		logger.Warn("registering failed; retrying", "error", err, "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, maxRegisterWait)
	}
}

// The waits between attempts of a first registration (tests shorten them).
var (
	firstRegisterWait = time.Second
	maxRegisterWait   = 30 * time.Second
)
