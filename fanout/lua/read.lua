-- Reads a room's position and the retained messages after an offset, in
-- one atomic step (so the epoch, the offset and the history agree).
-- KEYS: 1 meta, 2 offset counter, 3 history stream
-- ARGV: 1 epoch to create if the room has none, 2 first stream id to
--       read, 3 count (0: the position only), 4 history TTL (ms)
-- Returns {epoch, offset, id, from, data, id, from, data, ...}.
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('HSET', KEYS[1], 'epoch', epoch)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
local offset = redis.call('GET', KEYS[2]) or '0'
local out = {epoch, offset}
local count = tonumber(ARGV[3])
if count > 0 then
  local t = redis.call('TIME')
  local cutoff = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[4])
  for _, e in ipairs(redis.call('XRANGE', KEYS[3], ARGV[2], '+', 'COUNT', count)) do
    local f = e[2]
    if tonumber(f[6]) >= cutoff then
      out[#out + 1] = e[1]
      out[#out + 1] = f[2]
      out[#out + 1] = f[4]
    end
  end
end
return out
