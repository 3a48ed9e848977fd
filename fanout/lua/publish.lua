-- Publishes one message of a room, atomically, so that the order of the
-- room's channel is the order of its offsets.
-- KEYS: 1 meta (hash: epoch), 2 offset counter, 3 history stream
-- ARGV: 1 epoch to create if the room has none, 2 history size,
--       3 history TTL (ms), 4 from, 5 data (a JSON value), 6 room,
--       7 channel
-- Returns {offset, epoch, time in ms}.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
end
local offset = redis.call('INCR', KEYS[2])
local t = redis.call('TIME')
local ms = string.format('%d%03d', t[1], math.floor(tonumber(t[2]) / 1000))
-- The stream id is the offset, so a recovery reads from offset+1 directly.
redis.call('XADD', KEYS[3], 'MAXLEN', ARGV[2], offset .. '-1', 'f', ARGV[4], 'd', ARGV[5], 't', ms)
-- None older than the TTL: trim from the oldest end (a few per publish;
-- reads skip any older ones left).
local cutoff = tonumber(ms) - tonumber(ARGV[3])
for _ = 1, 8 do
  local first = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 1)
  if #first == 0 or tonumber(first[1][2][6]) >= cutoff then break end
  redis.call('XDEL', KEYS[3], first[1][1])
end
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
-- The payload carries the message frame's JSON text ready-made: every
-- node only puts a WebSocket header in front of it.
local text = '{"type":"message","room":' .. cjson.encode(ARGV[6]) .. ',"offset":' .. offset ..
  ',"from":' .. cjson.encode(ARGV[4]) .. ',"data":' .. ARGV[5] .. '}'
redis.call('SPUBLISH', ARGV[7], 'M' .. epoch .. ':' .. offset .. ':' .. ms .. ':' .. text)
return {offset, epoch, ms}
