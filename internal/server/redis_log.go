package server

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// routeRedisLogs sends the Redis client's own messages (a dial that
// failed, a Sentinel naming a new primary, …), which it printed to stderr
// in a format of its own, to the gateway's log: a new primary at info,
// the rest at debug, since the gateway logs Redis's failures and recovery
// itself. secrets (the passwords) are redacted from them. The client has
// one logger per process: the last gateway that opens Redis sets it.
func routeRedisLogs(logger *slog.Logger, secrets []string) {
	redis.SetLogger(redisLog{logger: logger, secrets: secrets})
}

type redisLog struct {
	logger  *slog.Logger
	secrets []string
}

func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	for _, s := range l.secrets {
		msg = strings.ReplaceAll(msg, s, "REDACTED")
	}
	level := slog.LevelDebug
	if strings.HasPrefix(msg, "sentinel: new master") {
		level = slog.LevelInfo
	}
	l.logger.Log(ctx, level, "Redis client: "+msg)
}
