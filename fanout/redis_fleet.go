package fanout

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/rueidis"
)

// The fleet's own keys live on the first shard: they are few and small.

func (b *redisBroker) fleetShard() *redisShard { return b.shards[0] }

// Register implements Fleet: the node's entry in the <prefix>:nodes hash,
// with the time it was refreshed; Nodes drops entries not refreshed within
// nodeEntryTTL.
func (b *redisBroker) Register(ctx context.Context, info NodeInfo) error {
	info.Seen = time.Now().UnixMilli()
	v, _ := json.Marshal(info)
	sh := b.fleetShard()
	return sh.cmd.Do(ctx, sh.cmd.B().Hset().Key(b.cfg.Prefix+":nodes").FieldValue().FieldValue(info.ID, string(v)).Build()).Error()
}

// Nodes implements Fleet.
func (b *redisBroker) Nodes(ctx context.Context) ([]NodeInfo, error) {
	sh := b.fleetShard()
	all, err := sh.cmd.Do(ctx, sh.cmd.B().Hgetall().Key(b.cfg.Prefix+":nodes").Build()).AsStrMap()
	if err != nil {
		return nil, fmt.Errorf("cannot read the fleet: %w", err)
	}
	cutoff := time.Now().Add(-nodeEntryTTL).UnixMilli()
	nodes := make([]NodeInfo, 0, len(all))
	var stale []string
	for id, v := range all {
		var n NodeInfo
		if json.Unmarshal([]byte(v), &n) != nil || n.Seen < cutoff {
			stale = append(stale, id)
			continue
		}
		nodes = append(nodes, n)
	}
	if len(stale) > 0 {
		_ = sh.cmd.Do(ctx, sh.cmd.B().Hdel().Key(b.cfg.Prefix+":nodes").Field(stale...).Build()).Error()
	}
	return nodes, nil
}

func (b *redisBroker) revokedKey(jti string) string { return b.cfg.Prefix + ":revoked:{" + jti + "}" }

// Revoke implements Fleet: the key refuses the token on every node from
// now on (their cached reads are invalidated), and every live node is told
// to close the connections already open with it.
func (b *redisBroker) Revoke(ctx context.Context, jti string, ttl time.Duration) error {
	sh := b.fleetShard()
	if err := sh.cmd.Do(ctx, sh.cmd.B().Set().Key(b.revokedKey(jti)).Value("1").Px(ttl).Build()).Error(); err != nil {
		return fmt.Errorf("cannot revoke: %w", err)
	}
	nodes, err := b.Nodes(ctx)
	if err != nil {
		return err
	}
	p := revokePayload(jti)
	for _, n := range nodes {
		if err := b.sendToNode(ctx, n.ID, p); err != nil {
			return fmt.Errorf("cannot tell node %s: %w", n.ID, err)
		}
	}
	return nil
}

// Revoked implements Fleet, from the client-side cache: a connect costs
// no Redis round trip for a token id checked recently.
func (b *redisBroker) Revoked(ctx context.Context, jti string) (bool, error) {
	sh := b.fleetShard()
	res := sh.cmd.DoCache(ctx, sh.cmd.B().Get().Key(b.revokedKey(jti)).Cache(), b.cfg.CacheTTL)
	err := res.Error()
	if err != nil && !rueidis.IsRedisNil(err) {
		return false, fmt.Errorf("cannot check the token: %w", err)
	}
	sh.m.cache(res.IsCacheHit())
	return err == nil, nil
}
