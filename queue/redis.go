package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// The Redis layout of the fleet queue (DESIGN.md), under a prefix ("eh";
// tests use their own). Braces are hash tags: a job's hash and output
// stream share a slot, so one script can touch both.
//
//	{p}:jobs:{queue}              stream of jobs, consumer group "workers"
//	{p}:jobs:{queue}:done:{sec}   jobs finished in one second (throughput), TTL
//	{p}:job:{id}                  hash: owner, room, queue, model, created,
//	                              node (where live chunks go; "" when the
//	                              asker left), conn, attempt, state, error; TTL
//	{p}:job:{id}:out              stream of the current attempt's chunks; TTL
//	{p}:jobs:dead                 stream of dead-lettered jobs
//	{p}:user:{owner}:ai           sorted set: the user's jobs not ended, by
//	                              when they stop counting anyway; TTL
//	{p}:jobs:ctl                  pub/sub: "cancel {id}", "detach {id}" for workers
//
// A job's state is "" while it waits or runs, then "done", "cancelled",
// "failed" or "dead" (scripts also answer "stale": another attempt owns
// the job, and "gone": its hash expired); every step that changes it is a script that checks it
// first, so a cancel, a zombie worker's chunk and a retry cannot interleave.
type keys struct{ prefix string }

// Group is the consumer group of every job stream.
const Group = "workers"

// DefaultPrefix is the key prefix when none is configured.
const DefaultPrefix = "eh"

func (k keys) jobs(queue string) string { return k.prefix + ":jobs:{" + queue + "}" }
func (k keys) done(queue string, sec int64) string {
	return k.jobs(queue) + ":done:" + strconv.FormatInt(sec, 10)
}
func (k keys) job(id string) string { return k.prefix + ":job:{" + id + "}" }
func (k keys) out(id string) string { return k.job(id) + ":out" }
func (k keys) dead() string         { return k.prefix + ":jobs:dead" }
func (k keys) user(owner string) string {
	return k.prefix + ":user:{" + owner + "}:ai"
}
func (k keys) ctl() string { return k.prefix + ":jobs:ctl" }

// freeUserSlot is the command that takes job out of its user's cap.
func (k keys) freeUserSlot(c rueidis.Client, job *Job) rueidis.Completed {
	return c.B().Zrem().Key(k.user(job.Owner)).Member(job.ID).Build()
}

// throughputWindow is how far back the measured throughput of a queue
// looks, for wait estimates.
const throughputWindow = 30

// Job states in the job hash.
const (
	stateDone      = "done"
	stateCancelled = "cancelled"
	stateFailed    = "failed"
	stateDead      = "dead"
	stateStale     = "stale" // a script's answer: another attempt owns the job
)

// readScript returns the job hash and its output stream; with ARGV[1] it
// first makes that node the job's live destination (Attach).
var readScript = rueidis.NewLuaScript(`
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return false end
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'node', ARGV[1]) end
return {h, redis.call('XRANGE', KEYS[2], '-', '+')}
`)

// startScript begins attempt ARGV[1] of a job: it answers the job's state
// when it has ended, else records the attempt, clears the output of an
// earlier one and answers "", the previous attempt, the node.
var startScript = rueidis.NewLuaScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'node')
if not h[1] then return {'gone'} end
if h[1] ~= '' then return {h[1]} end
local prev = tonumber(h[2]) or 0
redis.call('HSET', KEYS[1], 'attempt', ARGV[1])
if prev > 0 then redis.call('DEL', KEYS[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'', tostring(prev), h[3] or ''}
`)

// chunkScript stores chunks of attempt ARGV[1], if that attempt still
// owns the job, and answers "" and the node live chunks go to. ARGV[2] is
// the answer's TTL; each chunk is four arguments from ARGV[3]: seq,
// content, done, reset. The last chunk keeps the job's hash as long as its
// answer.
var chunkScript = rueidis.NewLuaScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'node')
if not h[1] then return {'gone'} end
if h[1] ~= '' then return {h[1]} end
if h[2] ~= ARGV[1] then return {'stale'} end
for i = 3, #ARGV, 4 do
  redis.call('XADD', KEYS[2], '*', 'seq', ARGV[i], 'content', ARGV[i+1], 'done', ARGV[i+2], 'reset', ARGV[i+3], 'attempt', ARGV[1])
  if ARGV[i+2] == '1' then
    redis.call('HSET', KEYS[1], 'state', 'done')
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return {'', h[3] or ''}
`)

// endScript ends attempt ARGV[1] (0: any) with state ARGV[2] and reason
// ARGV[3], and answers "" and the node.
var endScript = rueidis.NewLuaScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'attempt', 'node')
if not h[1] then return {'gone'} end
if h[1] ~= '' then return {h[1]} end
if ARGV[1] ~= '0' and h[2] ~= ARGV[1] then return {'stale'} end
redis.call('HSET', KEYS[1], 'state', ARGV[2], 'error', ARGV[3])
return {'', h[3] or ''}
`)

// cancelScript cancels a job that has not ended, tells the workers, and
// answers its attempt (0: no worker started it); nil when it had ended.
var cancelScript = rueidis.NewLuaScript(`
local h = redis.call('HMGET', KEYS[1], 'state', 'attempt')
if h[1] ~= '' then return false end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'error', 'cancelled')
redis.call('PUBLISH', ARGV[1], 'cancel ' .. ARGV[2])
return h[2]
`)

// detachScript clears the job's node when it is still ARGV[1] (a resume
// elsewhere may have moved it) and tells the workers the asker left.
var detachScript = rueidis.NewLuaScript(`
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'node', '')
redis.call('PUBLISH', ARGV[2], 'detach ' .. ARGV[3])
return 1
`)

// userScript admits a job of a user with fewer than ARGV[2] jobs that
// have not ended (nor passed their horizon, ARGV[1]): 1, else 0.
var userScript = rueidis.NewLuaScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
`)

// scriptState runs a script that answers {state, values...}.
func scriptState(ctx context.Context, c rueidis.Client, s *rueidis.Lua, keys, args []string) ([]string, error) {
	return s.Exec(ctx, c, keys, args).AsStrSlice()
}

// createGroups makes the consumer group of each queue's stream, reading
// from the start so that no job added before a worker came is missed.
func createGroups(ctx context.Context, c rueidis.Client, k keys, queues []string) error {
	for _, q := range queues {
		err := c.Do(ctx, c.B().XgroupCreate().Key(k.jobs(q)).Group(Group).Id("0").Mkstream().Build()).Error()
		if err != nil && !strings.Contains(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("queue: cannot create the group of %s: %w", q, err)
		}
	}
	return nil
}

// jobFields are a job's fields, in its hash and its stream entry.
func jobFields(job *Job) []string {
	return []string{
		"id", job.ID, "owner", job.Owner, "room", job.Room, "queue", job.Queue, "model", job.Model,
		"created", strconv.FormatInt(job.Created.UnixMilli(), 10), "conn", job.Conn,
	}
}

func jobFromFields(f map[string]string) Job {
	ms, _ := strconv.ParseInt(f["created"], 10, 64)
	attempt, _ := strconv.Atoi(f["attempt"])
	return Job{
		ID: f["id"], Owner: f["owner"], Room: f["room"], Queue: f["queue"], Model: f["model"],
		Message: f["msg"], Node: f["node"], Conn: f["conn"], Created: time.UnixMilli(ms), Attempt: attempt,
	}
}

func chunkFromEntry(id string, e rueidis.XRangeEntry) Chunk {
	f := e.FieldValues
	seq, _ := strconv.Atoi(f["seq"])
	attempt, _ := strconv.Atoi(f["attempt"])
	return Chunk{Job: id, Seq: seq, Content: f["content"], Done: f["done"] == "1", Reset: f["reset"] == "1", Attempt: attempt}
}

func flag01(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// groupInfo reads the group of one queue's stream.
func groupInfo(ctx context.Context, c rueidis.Client, key string) (Stats, error) {
	groups, err := c.Do(ctx, c.B().XinfoGroups().Key(key).Build()).ToArray()
	if err != nil {
		return Stats{}, err
	}
	for _, g := range groups {
		m, err := g.AsMap()
		if err != nil {
			return Stats{}, err
		}
		name, consumersV, pendingV, lagV := m["name"], m["consumers"], m["pending"], m["lag"]
		if n, _ := name.ToString(); n != Group {
			continue
		}
		var s Stats
		consumers, _ := consumersV.AsInt64()
		pending, _ := pendingV.AsInt64()
		lag, _ := lagV.AsInt64() // nil (0) when Redis cannot tell after a trim
		s.Consumers, s.Pending, s.Length = int(consumers), int(pending), int(lag)
		return s, nil
	}
	return Stats{}, nil
}
