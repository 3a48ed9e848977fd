package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/rueidis"
)

// RedisConfig configures the node side of the fleet queue; the zero value
// of each field but Client and Node means the default.
type RedisConfig struct {
	Client     rueidis.Client // the queue's Redis (the node's first -redis URL); required, closed by the caller
	Prefix     string         // key prefix; DefaultPrefix
	Node       string         // this node's id, where live chunks of its askers go; required
	Rules      *Rules         // routing; DefaultRules
	Rooms      Rooms          // carries the ai-error of a room job cancelled before a worker took it
	MaxLen     int64          // approximate cap of each job stream (XADD MAXLEN ~); 100000
	MaxWaiting int            // waiting jobs of a queue beyond which Enqueue says ErrFull; DefaultMaxWaiting
	MaxPerUser int            // jobs of one user not ended (counted for Retain at most) beyond which Enqueue says ErrUserLimit; DefaultMaxPerUser
	Retain     time.Duration  // how long a job's hash and answer stay for resume; 10 minutes
}

// Redis is the node side of the fleet queue on Redis Streams: it adds
// jobs, reads and moves answers, cancels. Workers (Worker) answer the
// jobs and send the chunks to the asker's node, whose Bus hands them to
// Dispatch. Safe for concurrent use.
type Redis struct {
	cfg  RedisConfig
	k    keys
	sink Sink

	mu   sync.Mutex
	rate map[string]rateSample // per queue, refreshed at most once a second
}

type rateSample struct {
	at     time.Time
	perSec float64
}

// NewRedis returns the node side of the fleet queue; sink hears of a
// Cancel at once (workers report everything else through the Bus).
func NewRedis(ctx context.Context, cfg RedisConfig, sink Sink) (*Redis, error) {
	if cfg.Client == nil || cfg.Node == "" {
		return nil, errors.New("queue: a Redis client and the node id are required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if cfg.Rules == nil {
		cfg.Rules = DefaultRules()
	}
	if cfg.MaxLen <= 0 {
		cfg.MaxLen = 100000
	}
	if cfg.MaxWaiting <= 0 {
		cfg.MaxWaiting = DefaultMaxWaiting
	}
	if cfg.MaxPerUser <= 0 {
		cfg.MaxPerUser = DefaultMaxPerUser
	}
	if cfg.Retain <= 0 {
		cfg.Retain = 10 * time.Minute
	}
	q := &Redis{cfg: cfg, k: keys{cfg.Prefix}, sink: sink, rate: map[string]rateSample{}}
	if err := createGroups(ctx, cfg.Client, q.k, cfg.Rules.Queues()); err != nil {
		return nil, err
	}
	return q, nil
}

// Enqueue implements Queue: the job's hash first, then its stream entry,
// so a worker never takes a job without its hash.
func (q *Redis) Enqueue(ctx context.Context, job *Job, accepted func(Ticket)) error {
	c := q.cfg.Client
	if job.ID == "" {
		job.ID = NewID()
	}
	if job.Created.IsZero() {
		job.Created = time.Now()
	}
	q.cfg.Rules.route(job)
	job.Node = q.cfg.Node
	if job.Room != "" {
		job.Node = "" // the room's members get it through the Bus
	}
	st, err := groupInfo(ctx, c, q.k.jobs(job.Queue))
	if err != nil {
		return err
	}
	if st.Length >= q.cfg.MaxWaiting {
		return ErrFull
	}
	now := time.Now()
	admitted, err := userScript.Exec(ctx, c, []string{q.k.user(job.Owner)}, []string{
		strconv.FormatInt(now.UnixMilli(), 10), strconv.Itoa(q.cfg.MaxPerUser),
		strconv.FormatInt(now.Add(q.cfg.Retain).UnixMilli(), 10), job.ID, strconv.FormatInt(q.cfg.Retain.Milliseconds(), 10),
	}).AsInt64()
	if err != nil {
		return err
	}
	if admitted == 0 {
		return ErrUserLimit
	}
	fields := jobFields(job)
	hkey := q.k.job(job.ID)
	set := c.B().Hset().Key(hkey).FieldValue().FieldValue("node", job.Node).FieldValue("state", "").FieldValue("attempt", "0")
	for i := 0; i < len(fields); i += 2 {
		set = set.FieldValue(fields[i], fields[i+1])
	}
	res := c.DoMulti(ctx, set.Build(), c.B().Pexpire().Key(hkey).Milliseconds(q.cfg.Retain.Milliseconds()).Build())
	for _, r := range res {
		if err := r.Error(); err != nil {
			c.Do(ctx, q.k.freeUserSlot(c, job))
			return err
		}
	}
	t := Ticket{Position: st.Length}
	if perSec := q.throughput(ctx, job.Queue); perSec > 0 {
		t.EstimatedWait = time.Duration(float64(st.Length+1) / perSec * float64(time.Second))
	}
	accepted(t) // before the XADD: no worker has the job yet
	add := c.B().Xadd().Key(q.k.jobs(job.Queue)).Maxlen().Almost().Threshold(strconv.FormatInt(q.cfg.MaxLen, 10)).Id("*").
		FieldValue().FieldValue("msg", job.Message)
	for i := 0; i < len(fields); i += 2 {
		add = add.FieldValue(fields[i], fields[i+1])
	}
	if err := c.Do(ctx, add.Build()).Error(); err != nil {
		c.Do(ctx, q.k.freeUserSlot(c, job))
		return fmt.Errorf("%w: %v", ErrLost, err)
	}
	return nil
}

// throughput is the jobs per second the queue finished over the last
// throughputWindow seconds, as the workers count them; 0 when none.
func (q *Redis) throughput(ctx context.Context, queue string) float64 {
	now := time.Now()
	q.mu.Lock()
	s, ok := q.rate[queue]
	q.mu.Unlock()
	if ok && now.Sub(s.at) < time.Second {
		return s.perSec
	}
	keys := make([]string, throughputWindow)
	for i := range keys {
		keys[i] = q.k.done(queue, now.Unix()-int64(i)-1)
	}
	c := q.cfg.Client
	vals, err := c.Do(ctx, c.B().Mget().Key(keys...).Build()).ToArray()
	if err != nil {
		return 0
	}
	var n int64
	for _, v := range vals {
		if x, err := v.AsInt64(); err == nil {
			n += x
		}
	}
	s = rateSample{at: now, perSec: float64(n) / throughputWindow}
	q.mu.Lock()
	q.rate[queue] = s
	q.mu.Unlock()
	return s.perSec
}

// read runs readScript: node "" only reads.
func (q *Redis) read(ctx context.Context, id, node string, after int) (Answer, error) {
	res, err := readScript.Exec(ctx, q.cfg.Client, []string{q.k.job(id), q.k.out(id)}, []string{node}).ToArray()
	if rueidis.IsRedisNil(err) || (err == nil && len(res) != 2) {
		return Answer{}, ErrNotFound
	}
	if err != nil {
		return Answer{}, err
	}
	flat, err := res[0].AsStrSlice()
	if err != nil {
		return Answer{}, err
	}
	f := make(map[string]string, len(flat)/2)
	for i := 0; i+1 < len(flat); i += 2 {
		f[flat[i]] = flat[i+1]
	}
	entries, err := res[1].AsXRange()
	if err != nil {
		return Answer{}, err
	}
	chunks := make([]Chunk, len(entries))
	for i, e := range entries {
		chunks[i] = chunkFromEntry(id, e)
	}
	job := jobFromFields(f)
	state := f["state"]
	failed := ""
	if state != "" && state != stateDone {
		failed = f["error"]
	}
	return answerAfter(job, chunks, after, state != "", failed), nil
}

// Answer implements Queue.
func (q *Redis) Answer(ctx context.Context, id string, after int) (Answer, error) {
	return q.read(ctx, id, "", after)
}

// Attach implements Queue.
func (q *Redis) Attach(ctx context.Context, id string, after int) (Answer, error) {
	return q.read(ctx, id, q.cfg.Node, after)
}

// Detach implements Queue.
func (q *Redis) Detach(ctx context.Context, id string) error {
	return detachScript.Exec(ctx, q.cfg.Client, []string{q.k.job(id)}, []string{q.cfg.Node, q.k.ctl(), id}).Error()
}

// Cancel implements Queue. The sink hears of it here; the worker running
// the job (if any) stops its backend and tells the asker's node and room.
func (q *Redis) Cancel(ctx context.Context, id string) (*Job, error) {
	a, err := q.Answer(ctx, id, 1<<30)
	if err != nil {
		return nil, err
	}
	attempt, err := cancelScript.Exec(ctx, q.cfg.Client, []string{q.k.job(id)}, []string{q.k.ctl(), id}).ToString()
	if rueidis.IsRedisNil(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	job := a.Job
	if attempt == "0" && job.Room != "" && q.cfg.Rooms != nil {
		// No worker took it: none will tell the room.
		_ = q.cfg.Rooms.Relay(ctx, job.Room, ErrorFrame(&job, ReasonCancelled))
	}
	q.sink.OnFailed(&job, ReasonCancelled)
	return &job, nil
}

// Stats implements Queue.
func (q *Redis) Stats(ctx context.Context) ([]Stats, error) {
	var out []Stats
	for _, name := range q.cfg.Rules.Queues() {
		s, err := groupInfo(ctx, q.cfg.Client, q.k.jobs(name))
		if err != nil {
			return nil, err
		}
		s.Queue = name
		out = append(out, s)
	}
	return out, nil
}

// Close implements Queue; the client is the caller's.
func (q *Redis) Close() error { return nil }
