package fanout

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/redis/rueidis"
)

// RedisConfig configures a Redis bus; the zero value of each field but
// URLs means its default.
type RedisConfig struct {
	// URLs is the -redis value: comma-separated redis:// URLs, each a
	// shard, or one redis-cluster://host:port of a Redis Cluster.
	URLs   string
	Prefix string // key prefix; "eh"
	NodeID string // this node's id: its channel is <prefix>:node:{<id>}

	HistorySize   int           // most messages a room keeps; DefaultHistorySize
	HistoryTTL    time.Duration // none older; DefaultHistoryTTL
	RecoveryMax   int           // messages a join may replay; the history size
	RecoveryBytes int           // bytes a join may replay; no bound

	// CacheTTL is how long a client-side cached read (room meta, token
	// revocations) may be served without Redis; invalidations end it
	// sooner. 1 minute.
	CacheTTL time.Duration
	// CacheBytes is rueidis' client-side cache per connection. Its
	// default, 128 MiB per connection, is far more than room metas and
	// revocations need: 8 MiB holds ~50,000 metas.
	CacheBytes int
	// Processors is how many goroutines hand messages from the
	// subscriptions to the node, spread by room; GOMAXPROCS.
	Processors int
	// Metrics receives the bus's metrics; nil keeps them unregistered.
	Metrics *metrics.Set
}

// Defaults of RedisConfig.
const (
	DefaultRedisPrefix     = "eh"
	DefaultCacheTTL        = time.Minute
	DefaultCacheBytes      = 8 << 20
	processorQueue         = 8192 // messages waiting per processor before they are dropped and refilled
	nodeEntryTTL           = 15 * time.Second
	subscribeRetryInterval = 500 * time.Millisecond
)

var (
	//go:embed lua/publish.lua
	publishLua string
	//go:embed lua/read.lua
	readLua string

	publishScript = rueidis.NewLuaScript(publishLua)
	readScript    = rueidis.NewLuaScript(readLua)
)

// ErrNoRedis is returned for an empty -redis value.
var ErrNoRedis = errors.New("fanout: no Redis URL")

// NewRedis returns the Bus of a fleet node on Redis: rooms are hashed onto
// the shards, each shard has a connection for commands and one for
// subscriptions. recv may be nil for a process that only publishes (an AI
// worker): it then subscribes to nothing.
func NewRedis(cfg RedisConfig, recv Receiver) (Bus, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultRedisPrefix
	}
	if cfg.HistorySize <= 0 {
		cfg.HistorySize = DefaultHistorySize
	}
	if cfg.HistoryTTL <= 0 {
		cfg.HistoryTTL = DefaultHistoryTTL
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = DefaultCacheBytes
	}
	if cfg.Processors <= 0 {
		cfg.Processors = runtime.GOMAXPROCS(0)
	}
	urls := splitURLs(cfg.URLs)
	if len(urls) == 0 {
		return nil, ErrNoRedis
	}
	b := &redisBroker{cfg: cfg, recv: recv, seed: maphash.MakeSeed(), subs: make(map[string]*subscription)}
	b.ctx, b.stop = context.WithCancel(context.Background())
	b.metrics = newRedisMetrics(cfg.Metrics, len(urls))
	for i, u := range urls {
		sh, err := dialShard(u, cfg, b.metrics.shards[i])
		if err != nil {
			b.closeShards()
			return nil, err
		}
		b.shards = append(b.shards, sh)
	}
	bus := newSyncBus(b, recv, cfg.HistorySize, syncLimits{RecoveryMax: cfg.RecoveryMax, RecoveryBytes: cfg.RecoveryBytes})
	b.bus = bus
	b.metrics.watch(bus)
	if recv == nil {
		return bus, nil
	}
	for range cfg.Processors {
		q := make(chan redisMsg, processorQueue)
		b.procs = append(b.procs, q)
		b.wg.Add(1)
		go b.process(q)
	}
	ch := b.nodeChannel(cfg.NodeID)
	sh := b.shardOf("node:" + cfg.NodeID)
	// Addressed payloads carry no offsets: a lost subscription loses what
	// was sent meanwhile, which their senders tolerate (an AI relay fills
	// from the job's output stream).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.subscribeChannel(ctx, sh, ch, nil); err != nil {
		_ = bus.Close()
		return nil, fmt.Errorf("cannot subscribe to this node's channel %s: %w", ch, err)
	}
	return bus, nil
}

// RedisClientOption parses one redis:// or redis-cluster:// URL into
// rueidis options, for other packages' clients on the same Redis.
func RedisClientOption(url string) (rueidis.ClientOption, error) {
	cluster := strings.HasPrefix(url, "redis-cluster://")
	if cluster {
		url = "redis://" + strings.TrimPrefix(url, "redis-cluster://")
	}
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		return opt, fmt.Errorf("bad Redis URL %q: %w", url, err)
	}
	// A plain redis:// is one server even when it runs in cluster mode;
	// redis-cluster:// lets rueidis discover the cluster from it.
	opt.ForceSingleClient = !cluster
	return opt, nil
}

func splitURLs(s string) []string {
	var urls []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// redisShard is one Redis server (or one cluster) of the bus.
type redisShard struct {
	cmd rueidis.Client // commands and client-side cached reads
	sub rueidis.Client // subscriptions only, so CLIENT KILL TYPE pubsub and resubscribes leave publishes alone
	m   *shardMetrics
}

func dialShard(url string, cfg RedisConfig, m *shardMetrics) (*redisShard, error) {
	opt, err := RedisClientOption(url)
	if err != nil {
		return nil, err
	}
	opt.CacheSizeEachConn = cfg.CacheBytes
	cmd, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to %s: %w", url, err)
	}
	subOpt := opt
	subOpt.DisableCache = true
	sub, err := rueidis.NewClient(subOpt)
	if err != nil {
		cmd.Close()
		return nil, fmt.Errorf("cannot connect to %s: %w", url, err)
	}
	return &redisShard{cmd: cmd, sub: sub, m: m}, nil
}

// redisBroker keeps rooms' streams in Redis.
type redisBroker struct {
	cfg     RedisConfig
	recv    Receiver
	bus     *syncBus
	seed    maphash.Seed
	shards  []*redisShard
	procs   []chan redisMsg
	metrics *redisMetrics

	mu   sync.Mutex
	subs map[string]*subscription // by channel

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// subscription is one channel's Receive loop.
type subscription struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when the loop, and its SUNSUBSCRIBE, are over
}

// redisMsg is one pub/sub message on its way to a processor.
type redisMsg struct {
	room    string
	payload string
}

// Keys, with the room (or node, or token) in a hash tag so that all of a
// room's keys and its channel live on one cluster slot.
func (b *redisBroker) key(room, what string) string {
	return b.cfg.Prefix + ":{" + room + "}:" + what
}
func (b *redisBroker) nodeChannel(id string) string { return b.cfg.Prefix + ":node:{" + id + "}" }

// shardOf picks the shard of a name with a jump consistent hash, so that
// adding a shard moves only about 1/n of the rooms.
func (b *redisBroker) shardOf(name string) *redisShard {
	return b.shards[jumpHash(stableHash(name), len(b.shards))]
}

// stableHash is a hash that every node computes alike (maphash seeds
// differ per process, FNV-1a does not).
func stableHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// jumpHash is Lamping and Veach's jump consistent hash.
func jumpHash(key uint64, buckets int) int {
	var b, j int64 = -1, 0
	for j < int64(buckets) {
		b = j
		key = key*2862933555777941757 + 1
		j = int64(float64(b+1) * (float64(int64(1)<<31) / float64((key>>33)+1)))
	}
	return int(b)
}

func (b *redisBroker) publish(ctx context.Context, room, from string, data []byte) (Message, error) {
	sh := b.shardOf(room)
	start := time.Now()
	keys := []string{b.key(room, "meta"), b.key(room, "off"), b.key(room, "hist")}
	args := []string{newEpoch(), strconv.Itoa(b.cfg.HistorySize), strconv.FormatInt(b.cfg.HistoryTTL.Milliseconds(), 10),
		from, string(data), room, b.key(room, "ch")}
	vals, err := publishScript.Exec(ctx, sh.cmd, keys, args).ToArray()
	if err != nil {
		sh.m.publishErrors.Inc()
		return Message{}, fmt.Errorf("cannot publish to Redis: %w", err)
	}
	sh.m.publish.UpdateDuration(start)
	if len(vals) != 3 {
		return Message{}, fmt.Errorf("publish script returned %d values", len(vals))
	}
	offset, _ := vals[0].AsInt64()
	epoch, _ := vals[1].ToString()
	return Message{Room: room, Epoch: epoch, Offset: uint64(offset), From: from, Data: data}, nil
}

func (b *redisBroker) read(ctx context.Context, room string, after uint64, limit int) ([]Message, Position, error) {
	sh := b.shardOf(room)
	if limit == 0 {
		if p, ok := b.cachedPosition(ctx, sh, room); ok {
			return nil, p, nil
		}
	}
	keys := []string{b.key(room, "meta"), b.key(room, "off"), b.key(room, "hist")}
	args := []string{newEpoch(), strconv.FormatUint(after+1, 10) + "-0", strconv.Itoa(limit),
		strconv.FormatInt(b.cfg.HistoryTTL.Milliseconds(), 10)}
	vals, err := readScript.Exec(ctx, sh.cmd, keys, args).ToArray()
	if err != nil {
		return nil, Position{}, fmt.Errorf("cannot read the history from Redis: %w", err)
	}
	if len(vals) < 2 || (len(vals)-2)%3 != 0 {
		return nil, Position{}, fmt.Errorf("read script returned %d values", len(vals))
	}
	var top Position
	top.Epoch, _ = vals[0].ToString()
	off, _ := vals[1].ToString()
	top.Offset, _ = strconv.ParseUint(off, 10, 64)
	var msgs []Message
	for i := 2; i < len(vals); i += 3 {
		id, _ := vals[i].ToString()
		from, _ := vals[i+1].ToString()
		data, _ := vals[i+2].ToString()
		o, _ := strconv.ParseUint(strings.TrimSuffix(id, "-1"), 10, 64)
		msgs = append(msgs, Message{Room: room, Epoch: top.Epoch, Offset: o, From: from, Data: []byte(data)})
	}
	return msgs, top, nil
}

// cachedPosition reads a room's position with its epoch from the
// client-side cache: a room first joined on this node costs one round trip
// (the offset), not two. ok is false when the room has no epoch yet: the
// read script creates it.
func (b *redisBroker) cachedPosition(ctx context.Context, sh *redisShard, room string) (Position, bool) {
	epoch, err := b.epoch(ctx, room)
	if err != nil || epoch == "" {
		return Position{}, false
	}
	off, err := sh.cmd.Do(ctx, sh.cmd.B().Get().Key(b.key(room, "off")).Build()).AsUint64()
	if err != nil && !rueidis.IsRedisNil(err) {
		return Position{}, false
	}
	return Position{Epoch: epoch, Offset: off}, true
}

func (b *redisBroker) epoch(ctx context.Context, room string) (string, error) {
	sh := b.shardOf(room)
	res := sh.cmd.DoCache(ctx, sh.cmd.B().Hget().Key(b.key(room, "meta")).Field("epoch").Cache(), b.cfg.CacheTTL)
	epoch, err := res.ToString()
	if rueidis.IsRedisNil(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("cannot read the room's epoch: %w", err)
	}
	sh.m.cache(res.IsCacheHit())
	return epoch, nil
}

func (b *redisBroker) subscribe(ctx context.Context, room string) error {
	return b.subscribeChannel(ctx, b.shardOf(room), b.key(room, "ch"), func() { b.bus.resync(room) })
}

// subscribeChannel subscribes to a channel (sharded pub/sub, so a room's
// traffic stays on its slot's master) and returns once Redis confirmed it.
// The subscription lives on until unsubscribe: rueidis subscribes again
// after a reconnect, and resync runs each time it does, since what was
// published in between is lost to pub/sub.
func (b *redisBroker) subscribeChannel(ctx context.Context, sh *redisShard, channel string, resync func()) error {
	rctx, cancel := context.WithCancel(b.ctx)
	confirmed := make(chan struct{})
	var once sync.Once
	hook := rueidis.WithOnSubscriptionHook(rctx, func(s rueidis.PubSubSubscription) {
		if s.Kind != "ssubscribe" {
			return
		}
		first := false
		once.Do(func() { first = true; close(confirmed) })
		if !first {
			sh.m.resubscribes.Inc()
			if resync != nil {
				go resync() // the hook runs on rueidis' pipeline: never block it
			}
		}
	})
	// A cancelled Receive only stops listening: the return hook sends
	// SUNSUBSCRIBE on the connection that holds the subscription.
	hook = rueidis.WithOnReceiveReturnHook(hook, func(err error, c rueidis.CommandClient) error {
		if rctx.Err() != nil && b.ctx.Err() == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = c.Do(ctx, c.B().Sunsubscribe().Channel(channel).Build()).Error()
		}
		return err
	})
	failed := make(chan error, 1)
	sub := &subscription{cancel: cancel, done: make(chan struct{})}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer close(sub.done)
		for {
			err := sh.sub.Receive(hook, sh.sub.B().Ssubscribe().Channel(channel).Build(), b.onMessage)
			if rctx.Err() != nil {
				return
			}
			select {
			case failed <- err:
			default:
			}
			select {
			case <-rctx.Done():
				return
			case <-time.After(subscribeRetryInterval):
			}
		}
	}()
	select {
	case <-confirmed:
	case err := <-failed:
		cancel()
		if err == nil {
			err = errors.New("subscription ended")
		}
		return fmt.Errorf("cannot subscribe to %s: %w", channel, err)
	case <-ctx.Done():
		cancel()
		return fmt.Errorf("cannot subscribe to %s: %w", channel, ctx.Err())
	}
	b.mu.Lock()
	b.subs[channel] = sub
	b.mu.Unlock()
	sh.m.subscriptions.Inc()
	return nil
}

// unsubscribe returns once Redis was told, so that a subscription made
// next to the same channel cannot meet this one's SUNSUBSCRIBE.
func (b *redisBroker) unsubscribe(room string) {
	channel := b.key(room, "ch")
	b.mu.Lock()
	sub := b.subs[channel]
	delete(b.subs, channel)
	b.mu.Unlock()
	if sub != nil {
		sub.cancel()
		<-sub.done
		b.shardOf(room).m.subscriptions.Dec()
	}
}

// onMessage runs on rueidis' pipeline goroutine: it only routes the
// message to its room's processor. A full processor drops it and has the
// room fill from the history instead, so the Redis read loop never waits
// for a slow node.
func (b *redisBroker) onMessage(m rueidis.PubSubMessage) {
	if m.Channel == b.nodeChannel(b.cfg.NodeID) {
		b.recv.Addressed([]byte(m.Message))
		return
	}
	room, ok := b.roomOf(m.Channel)
	if !ok {
		return
	}
	q := b.procs[maphash.String(b.seed, room)%uint64(len(b.procs))]
	select {
	case q <- redisMsg{room: room, payload: m.Message}:
	default:
		b.metrics.dropped.Inc()
		go b.bus.resync(room)
	}
}

// roomOf extracts the room from <prefix>:{room}:ch.
func (b *redisBroker) roomOf(channel string) (string, bool) {
	s, ok := strings.CutPrefix(channel, b.cfg.Prefix+":{")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(s, "}:ch")
}

// process decodes one room's messages and hands them to the sync layer,
// in the order the channel carried them (a room always maps to one
// processor).
func (b *redisBroker) process(q chan redisMsg) {
	defer b.wg.Done()
	for {
		select {
		case <-b.ctx.Done():
			return
		case rm := <-q:
			b.handle(rm)
		}
	}
}

func (b *redisBroker) handle(rm redisMsg) {
	p := rm.payload
	if p == "" {
		return
	}
	switch p[0] {
	case 'R':
		b.bus.relayed(rm.room, []byte(p[1:]))
	case 'M':
		m, ok := parseLive(rm.room, p[1:])
		if !ok {
			b.metrics.malformed.Inc()
			return
		}
		b.metrics.lag.Update(time.Since(m.Time).Seconds())
		b.bus.live(&m)
	}
}

// parseLive reads "epoch:offset:ms:text".
func parseLive(room, p string) (Message, bool) {
	epoch, p, ok1 := strings.Cut(p, ":")
	off, p, ok2 := strings.Cut(p, ":")
	ms, text, ok3 := strings.Cut(p, ":")
	offset, err1 := strconv.ParseUint(off, 10, 64)
	t, err2 := strconv.ParseInt(ms, 10, 64)
	if !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil {
		return Message{}, false
	}
	return Message{Room: room, Epoch: epoch, Offset: offset, Text: []byte(text), Time: time.UnixMilli(t)}, true
}

func (b *redisBroker) relay(ctx context.Context, room string, payload []byte) error {
	sh := b.shardOf(room)
	return sh.cmd.Do(ctx, sh.cmd.B().Spublish().Channel(b.key(room, "ch")).Message("R"+string(payload)).Build()).Error()
}

func (b *redisBroker) sendToNode(ctx context.Context, node string, payload []byte) error {
	sh := b.shardOf("node:" + node)
	return sh.cmd.Do(ctx, sh.cmd.B().Spublish().Channel(b.nodeChannel(node)).Message(string(payload)).Build()).Error()
}

// ready: every shard answers. A room whose shard is down cannot be served.
func (b *redisBroker) ready(ctx context.Context) error {
	for i, sh := range b.shards {
		if err := sh.cmd.Do(ctx, sh.cmd.B().Ping().Build()).Error(); err != nil {
			return fmt.Errorf("redis shard %d: %w", i, err)
		}
	}
	return nil
}

func (b *redisBroker) close() error {
	b.stop()
	b.wg.Wait()
	b.closeShards()
	return nil
}

func (b *redisBroker) closeShards() {
	for _, sh := range b.shards {
		sh.cmd.Close()
		sh.sub.Close()
	}
}
