#!lua name=jobcast_v1
-- jobcast's Redis Functions (CLUSTER.md §5.2): what one SQLite transaction of
-- the writer does for a job, as one atomic call on the job's hash slot. The
-- rules are those of domain/job_lifecycle.cpp, check for check and message for
-- message: the store contract suite holds the two together. cluster/
-- redis_store.cpp is the only caller; it embeds this file at build time.
--
-- Every call gets KEYS[1] = the job hash "jc:{T}:job:<id>" and
-- ARGV[1] = "jc:{T}:" (the partition's key prefix), ARGV[2] = job id,
-- ARGV[3] = the partition generation the caller knows, ARGV[4] = retention ms.
-- The other keys of the job and partition are built from the prefix: they
-- share the hash slot. Lifecycle calls carry an op id (ARGV[5]); an op that
-- changed the job is remembered with its answer, so a call re-sent after a
-- lost reply answers as the first did and writes nothing. Worker ops are
-- deduplicated by wseq.
--
-- Answers (arrays): status, message, created (0/1), first seq, events
-- (flat kind, ts, data triples), the job (flat HGETALL, empty when unknown),
-- lifecycle changed (0/1); jc_apply answers a list of such entries, one per op
-- (job and changed only on the last), see there.
--
-- A job's log "ev:<id>" is a STREAM of packed entries: the events one call
-- writes, consecutive seqs, as one entry of ID <first seq>-<last seq> and
-- one field b holding them as the SQLite store packs a row
-- (persistence/event_block.hpp: a format byte 1, then per event its kind's
-- number, zigzag varint of ts minus the previous event's, varint data length,
-- data), at most BLOCK_EVENTS events and BLOCK_BYTES bytes of data (but for
-- one larger event) an entry. An event whose ts a Lua number does not hold
-- exactly (outside [0, 2^52)) gets an entry of its own, ID <seq>-0, fields k,
-- t, d (as every entry of library version 4 was). Readers
-- (cluster/event_entries.cpp, read_events below) take both.

local VERSION = '5'
local MAX_OPS = 16  -- lifecycle op answers kept per job
local BLOCK_EVENTS = 256
local BLOCK_BYTES = 65536
local BLOCK_FORMAT = '\1'
local TS_LIMIT = 4503599627370496  -- 2^52: ts and their zigzag deltas stay exact
local KIND = {state = 0, progress = 1, token = 2, log = 3, result = 4, error = 5}  -- EventKind
local KIND_NAME = {'state', 'progress', 'token', 'log', 'result', 'error'}

local function num(v) return tonumber(v) or 0 end
local function fmt(n) return string.format('%.0f', n) end

-- A whole number in [0, 2^53) as a varint (7 bits a byte, low first).
local function varint(v)
  local b = {}
  while v >= 128 do
    local low = v % 128
    b[#b + 1] = low + 128
    v = (v - low) / 128
  end
  b[#b + 1] = v
  return string.char(unpack(b))
end

-- The events of log `key` with seq in [first, last], read back: flat kind,
-- ts, data triples.
local function read_events(key, first, last)
  local out = {}
  local entries = redis.call('XREVRANGE', key, fmt(first), '-', 'COUNT', 1)
  for _, entry in ipairs(redis.call('XRANGE', key, fmt(first + 1), fmt(last))) do
    entries[#entries + 1] = entry
  end
  local function keep(seq, kind, ts, data)
    if seq >= first and seq <= last then
      out[#out + 1] = kind; out[#out + 1] = ts; out[#out + 1] = data
    end
  end
  for _, entry in ipairs(entries) do
    local lo, hi = string.match(entry[1], '^(%d+)-(%d+)$')
    local f = entry[2]
    local kv = {}
    for i = 1, #f, 2 do kv[f[i]] = f[i + 1] end
    if kv.b then
      local b, pos, ts = kv.b, 2, 0
      local function getvar()
        local v, scale = 0, 1
        repeat
          local c = string.byte(b, pos)
          pos = pos + 1
          v = v + (c % 128) * scale
          scale = scale * 128
        until c < 128
        return v
      end
      for seq = num(lo), num(hi) do
        local kind = KIND_NAME[string.byte(b, pos) + 1]
        pos = pos + 1
        local z = getvar()
        ts = ts + ((z % 2 == 0) and z / 2 or -(z + 1) / 2)
        local n = getvar()
        keep(seq, kind, fmt(ts), string.sub(b, pos, pos + n - 1))
        pos = pos + n
      end
    else
      keep(num(lo), kv.k, kv.t, kv.d)
    end
  end
  return out
end

-- The partition's generation is set once at open; a different or missing
-- one means the partition was lost and re-created: refuse, never restart seqs.
local function check_gen(prefix, gen)
  local have = redis.call('GET', prefix .. 'gen')
  if have ~= gen then
    return redis.error_reply('JCGEN partition ' .. prefix .. ' generation is ' ..
      (have or 'missing') .. ', expected ' .. gen .. ': its data was lost or re-initialized; ' ..
      'its jobs are refused')
  end
  return nil
end

local function state_json(state, attempt, qworker, qreason, resume_seq)
  local s = '{"state":"' .. state .. '","attempt":' .. fmt(attempt)
  if qworker and qworker ~= '' then s = s .. ',"worker":' .. qworker end
  if resume_seq and resume_seq ~= 0 then s = s .. ',"resume_seq":' .. fmt(resume_seq) end
  if qreason and qreason ~= '' then s = s .. ',"reason":' .. qreason end
  return s .. '}'
end

local function is_terminal(st)
  return st == 'succeeded' or st == 'failed' or st == 'cancelled'
end

-- A job being changed by one call.
local Job = {}
Job.__index = Job

local function load(key, prefix, id, retention)
  local f = redis.call('HMGET', key, 'state', 'attempt', 'max_attempts', 'wseq', 'seq', 'cancel',
    'type', 'owner', 'priority', 'idem')
  if not f[1] then return nil end
  return setmetatable({
    key = key, prefix = prefix, id = id, retention = retention,
    state = f[1], attempt = num(f[2]), max_attempts = num(f[3]), wseq = num(f[4]),
    seq = num(f[5]), cancel = f[6] == '1', type = f[7], owner = f[8],
    priority = num(f[9]), idem = f[10],
    set = {}, events = {}, first_seq = 0, changed = false,
    block = {BLOCK_FORMAT}, block_first = 0, block_n = 0, block_bytes = 0, block_ts = 0,
  }, Job)
end

function Job:put(field, value) self.set[#self.set + 1] = field; self.set[#self.set + 1] = value end

-- Writes the events packed so far as one entry of the log.
function Job:flush()
  if self.block_n == 0 then return end
  redis.call('XADD', self.prefix .. 'ev:' .. self.id,
    fmt(self.block_first) .. '-' .. fmt(self.block_first + self.block_n - 1),
    'b', table.concat(self.block))
  self.block = {BLOCK_FORMAT}
  self.block_n, self.block_bytes, self.block_ts = 0, 0, 0
end

-- The log's next event (seq = seq + 1), packed with the call's others; the
-- entry is written by flush (save does), or when it is full.
function Job:append(kind, ts, data)
  self.seq = self.seq + 1
  local code, t = KIND[kind], tonumber(ts)
  if not code or not t or t < 0 or t >= TS_LIMIT or fmt(t) ~= ts then
    self:flush()
    redis.call('XADD', self.prefix .. 'ev:' .. self.id, fmt(self.seq) .. '-0',
      'k', kind, 't', ts, 'd', data)
    return
  end
  if self.block_n == BLOCK_EVENTS or
    (self.block_n > 0 and self.block_bytes + #data > BLOCK_BYTES) then
    self:flush()
  end
  if self.block_n == 0 then self.block_first = self.seq end
  local delta = t - self.block_ts
  local b = self.block
  b[#b + 1] = string.char(code) .. varint(delta >= 0 and delta * 2 or -delta * 2 - 1) ..
    varint(#data)
  b[#b + 1] = data
  self.block_n = self.block_n + 1
  self.block_bytes = self.block_bytes + #data
  self.block_ts = t
end

-- An event the answer echoes (a broker's: state, result, error).
function Job:event(kind, ts, data)
  self:append(kind, ts, data)
  if self.first_seq == 0 then self.first_seq = self.seq end
  local e = self.events
  e[#e + 1] = kind; e[#e + 1] = ts; e[#e + 1] = data
end

-- job_lifecycle's change_state: the move, its side effects on the indexes
-- and the state event.
function Job:change(state, now, qreason, qworker)
  local from, p = self.state, self.prefix
  redis.call('HINCRBY', p .. 'stats', from, -1)
  redis.call('HINCRBY', p .. 'stats', state, 1)
  if from == 'queued' then redis.call('ZREM', p .. 'q:' .. self.type, self.id) end
  if from == 'running' then redis.call('ZREM', p .. 'leases', self.id) end
  if state == 'queued' then
    self:put('worker', '')
    redis.call('ZADD', p .. 'q:' .. self.type, -self.priority, self.id)
  elseif state == 'running' then
    redis.call('ZADD', p .. 'leases', fmt(now), self.id)
  end
  if state == 'succeeded' then self:put('progress', '1') end
  self.state = state
  self:put('state', state)
  self.changed = true
  if is_terminal(state) then
    self:put('finished', fmt(now))
    self.finished = true  -- its keys expire (save)
    if self.idem and self.idem ~= '' then redis.call('PEXPIRE', self.idem, self.retention) end
    redis.call('ZADD', p .. 'done', fmt(now + self.retention),
      self.id .. '\n' .. self.owner .. '\n' .. state)
  end
  self:event('state', fmt(now * 1000),
    state_json(state, self.attempt, qworker, qreason, state == 'running' and self.resume_seq))
end

function Job:save()
  self:flush()
  self:put('seq', fmt(self.seq))
  self:put('wseq', fmt(self.wseq))
  redis.call('HSET', self.key, unpack(self.set))
  self.set = {}
  if self.finished then
    -- History lives in RAM: the finished job's keys go after the retention.
    local p = self.prefix
    for _, k in ipairs({self.key, p .. 'ev:' .. self.id, p .. 'ck:' .. self.id}) do
      redis.call('PEXPIRE', k, self.retention)
    end
  end
end

-- The job as stored: its hash (but the op memory) and its checkpoint.
local function snapshot(key)
  local all = redis.call('HGETALL', key)
  local out = {}
  for i = 1, #all, 2 do
    if all[i] ~= 'ops' then out[#out + 1] = all[i]; out[#out + 1] = all[i + 1] end
  end
  if #out > 0 then
    local ck = redis.call('GET', (string.gsub(key, ':job:', ':ck:', 1)))
    if ck then out[#out + 1] = 'checkpoint'; out[#out + 1] = ck end
  end
  return out
end

local function answer(status, message, created, first_seq, events, job, changed)
  return {status, message, created and 1 or 0, first_seq, events, job, changed and 1 or 0}
end

-- ---- lifecycle op memory -------------------------------------------------

local function remembered(key, opid)
  local packed = redis.call('HGET', key, 'ops')
  if not packed then return nil end
  for _, op in ipairs(cmsgpack.unpack(packed)) do
    if op[1] == opid then return op end
  end
  return nil
end

-- The first answer again: the events it wrote are read back from the log.
local function replay(key, prefix, id, op)
  local events = {}
  if op[4] > 0 and op[5] > 0 then
    events = read_events(prefix .. 'ev:' .. id, op[4], op[4] + op[5] - 1)
  end
  return answer('ok', '', op[2] == 1, op[4], events, snapshot(key), op[3] == 1)
end

local function remember(job, opid, created)
  local packed = redis.call('HGET', job.key, 'ops')
  local ops = packed and cmsgpack.unpack(packed) or {}
  table.insert(ops, {opid, created and 1 or 0, job.changed and 1 or 0, job.first_seq,
    #job.events / 3})
  while #ops > MAX_OPS do table.remove(ops, 1) end
  job:put('ops', cmsgpack.pack(ops))
end

-- Runs `rule(job)` for a lifecycle op: not_found, the remembered answer of a
-- re-sent op, a refusal (nothing written) or the change, kept and remembered.
local function lifecycle(keys, args, rule)
  local key, prefix, id, opid = keys[1], args[1], args[2], args[5]
  local bad = check_gen(prefix, args[3])
  if bad then return bad end
  local job = load(key, prefix, id, num(args[4]))
  if not job then return answer('not_found', 'unknown job', false, 0, {}, {}, false) end
  local op = remembered(key, opid)
  if op then return replay(key, prefix, id, op) end
  local status, message = rule(job)
  if status then return answer(status, message, false, 0, {}, {}, false) end
  remember(job, opid, false)
  job:save()
  return answer('ok', '', false, job.first_seq, job.events, snapshot(key), job.changed)
end

-- ---- functions -----------------------------------------------------------

-- ARGV 6 type, 7 owner, 8 params, 9 priority, 10 max_attempts, 11 created ms,
-- 12 idempotency key ("" = none).
local function create(keys, args)
  local key, prefix, id, opid = keys[1], args[1], args[2], args[5]
  local bad = check_gen(prefix, args[3])
  if bad then return bad end
  local owner, idem_key = args[7], args[12]
  local idem = ''
  if idem_key ~= '' then
    idem = prefix .. 'idem:' .. owner .. ':' .. idem_key
    local existing = redis.call('GET', idem)
    if existing and existing ~= id then
      local other = prefix .. 'job:' .. existing
      local job = snapshot(other)
      if #job == 0 then
        return answer('not_found', 'idempotency key of a vanished job', false, 0, {}, {}, false)
      end
      return answer('ok', '', false, 0, {}, job, false)
    end
  end
  if redis.call('EXISTS', key) == 1 then
    local op = remembered(key, opid)
    if op then return replay(key, prefix, id, op) end
    -- The same submission again (a retry from outside, e.g. a client's) is
    -- answered with the job as it is now; anything else under the id is refused.
    local f = redis.call('HMGET', key, 'owner', 'type', 'params', 'priority', 'max_attempts',
      'created')
    local params = args[8] ~= '' and args[8] or '{}'
    if f[1] == args[7] and f[2] == args[6] and f[3] == params and num(f[4]) == num(args[9]) and
      num(f[5]) == math.max(1, num(args[10])) and num(f[6]) == num(args[11]) then
      local job = snapshot(key)
      return answer('ok', '', false, 0, {}, job, false)
    end
    return answer('conflict', 'job id ' .. id .. ' already exists', false, 0, {}, {}, false)
  end
  local created = num(args[11])
  local max_attempts = math.max(1, num(args[10]))
  local params = args[8] ~= '' and args[8] or '{}'
  redis.call('HSET', key, 'id', id, 'type', args[6], 'owner', owner, 'params', params,
    'priority', args[9], 'state', 'queued', 'attempt', '0', 'max_attempts', fmt(max_attempts),
    'worker', '', 'progress', '0', 'seq', '0', 'cseq', '0', 'wseq', '0', 'cancel', '0',
    'result', '', 'error', '', 'created', fmt(created), 'started', '0', 'finished', '0',
    'idem', idem)
  if idem ~= '' then redis.call('SET', idem, id) end
  redis.call('ZADD', prefix .. 'q:' .. args[6], -num(args[9]), id)
  redis.call('ZADD', prefix .. 'own:' .. owner, 0, id)
  redis.call('SADD', prefix .. 'types', args[6])
  redis.call('HINCRBY', prefix .. 'stats', 'queued', 1)
  local job = load(key, prefix, id, num(args[4]))
  job.changed = true
  job:event('state', fmt(created * 1000), state_json('queued', 0))
  remember(job, opid, true)
  job:save()
  return answer('ok', '', true, job.first_seq, job.events, snapshot(key), true)
end

-- ARGV 6 worker, 7 worker as a JSON string, 8 now ms. The job answered
-- brings the checkpoint of the attempts before.
local function lease(keys, args)
  return lifecycle(keys, args, function(job)
    -- The same lease again (running for that worker since then): a retry,
    -- accepted without a change.
    if job.state == 'running' and redis.call('HGET', job.key, 'worker') == args[6] and
      num(redis.call('HGET', job.key, 'started')) == num(args[8]) then
      return nil
    end
    if job.state ~= 'queued' then return 'conflict', 'job is ' .. job.state .. ', not queued' end
    if job.cancel then return 'conflict', 'cancel requested' end
    if job.attempt >= job.max_attempts then return 'conflict', 'no attempts left' end
    local now = num(args[8])
    job.attempt = job.attempt + 1
    job.wseq = 0
    job:put('attempt', fmt(job.attempt))
    job:put('worker', args[6])
    job:put('started', fmt(now))
    -- With a checkpoint, the running event says where the attempt resumes.
    if redis.call('STRLEN', job.prefix .. 'ck:' .. job.id) > 0 then
      job.resume_seq = num(redis.call('HGET', job.key, 'ckseq'))
    end
    job:change('running', now, nil, args[7])
  end)
end

-- RequeueJob's rule: ARGV 6 attempt, 7 reason (not empty), 8 reason as a
-- JSON string, 9 now ms.
local function requeue_rule(job, args)
  local attempt, now = num(args[6]), num(args[9])
  if job.state ~= 'running' then return 'conflict', 'not running: job is ' .. job.state end
  if attempt ~= job.attempt then
    return 'conflict', 'lease lost: attempt ' .. args[6] .. ' is not the current attempt ' ..
      fmt(job.attempt)
  end
  if job.cancel then
    job:change('cancelled', now, '"cancelled"')
  elseif job.attempt >= job.max_attempts then
    local tail = '; gave up after ' .. fmt(job.attempt) .. ' attempts'
    job:put('error', args[7] .. tail)
    job:change('failed', now, string.sub(args[8], 1, -2) .. tail .. '"')
  else
    job:change('queued', now, args[8])
  end
end

local function requeue(keys, args)
  return lifecycle(keys, args, function(job) return requeue_rule(job, args) end)
end

-- ARGV 6 force (0/1), 7 now ms.
local function cancel(keys, args)
  return lifecycle(keys, args, function(job)
    if is_terminal(job.state) then return 'conflict', 'already finished' end
    job.cancel = true
    job:put('cancel', '1')
    job.changed = true
    if job.state == 'queued' or args[6] == '1' then
      job:change('cancelled', num(args[7]), '"cancelled"')
    end
  end)
end

-- A worker's messages for one job, in order. ARGV 5 = their count (with a
-- '+': answer the job as the call left it even when its lifecycle did not
-- move), then per op
-- (its letter in upper case: the answer brings the job after the op):
--   'c' attempt wseq kind ts data fraction("" = none)   a chunk
--   'k' attempt wseq bytes                               a checkpoint
--   'd' attempt wseq result now                          done
--   'f' attempt wseq error_event_data error error_json retryable(0/1) now   fail
-- Answers {changed, job (flat, when changed or asked), owner, {status, acked,
-- message, first seq, events[, job]}...}; a chunk's own event is not echoed (its first seq is
-- its seq).
local WIDTH = {c = 7, k = 4, d = 5, f = 8}

local function apply(keys, args)
  local key, prefix, id = keys[1], args[1], args[2]
  local bad = check_gen(prefix, args[3])
  if bad then return bad end
  local count = num((string.gsub(args[5], '%+', '')))
  local final = string.sub(args[5], -1) == '+'
  local job = load(key, prefix, id, num(args[4]))
  local out = {0, {}, job and job.owner or ''}
  local i = 6
  for _ = 1, count do
    local t = string.lower(args[i])
    local want = t ~= args[i]
    local attempt, wseq_text = num(args[i + 1]), args[i + 2]
    local wseq = num(wseq_text)
    local r
    if not job then
      r = {'not_found', 0, 'unknown job', 0, {}}
    elseif attempt ~= job.attempt then
      r = {'conflict', 0, 'lease lost: attempt ' .. args[i + 1] ..
        ' is not the current attempt ' .. fmt(job.attempt), 0, {}}
    elseif wseq <= job.wseq then
      r = {'duplicate', job.wseq, 'already committed', 0, {}}
    elseif job.state ~= 'running' then
      r = {'conflict', job.wseq, 'not running: job is ' .. job.state, 0, {}}
    elseif wseq > job.wseq + 1 then
      r = {'gap', job.wseq, 'expected wseq ' .. fmt(job.wseq + 1) .. ', got ' .. wseq_text, 0, {}}
    elseif t == 'c' and args[i + 3] == 'state' then
      r = {'conflict', job.wseq, 'state events are written by the broker only', 0, {}}
    else
      job.wseq = wseq
      job.first_seq = 0
      job.events = {}
      if t == 'c' then
        if args[i + 6] ~= '' then job:put('progress', args[i + 6]) end
        job:append(args[i + 3], args[i + 4], args[i + 5])
        job.first_seq = job.seq
      elseif t == 'k' then
        redis.call('SET', prefix .. 'ck:' .. id, args[i + 3])
        job:put('ckseq', fmt(job.seq))
      elseif t == 'd' then
        local now = num(args[i + 4])
        job:put('result', args[i + 3])
        job:event('result', fmt(now * 1000), args[i + 3])
        job:change('succeeded', now)
      else
        local now = num(args[i + 7])
        local qerror = args[i + 5]
        job:put('error', args[i + 4])
        job:event('error', fmt(now * 1000), args[i + 3])
        if job.cancel then
          job:change('cancelled', now, '"cancelled"')
        elseif args[i + 6] == '1' and job.attempt < job.max_attempts then
          job:change('queued', now, '"retry: ' .. string.sub(qerror, 2))
        else
          job:change('failed', now, qerror)
        end
      end
      r = {'ok', wseq, '', job.first_seq, job.events}
      if want then
        job:save()
        r[6] = snapshot(key)
      end
    end
    out[#out + 1] = r
    i = i + (WIDTH[t] or 1)
  end
  if job then
    job:save()
    if job.changed then out[1] = 1 end
    if job.changed or final then out[2] = snapshot(key) end
  end
  return out
end

-- The job as stored (flat, empty when unknown). ARGV: none.
local function get(keys)
  return snapshot(keys[1])
end

-- cseq = max(cseq, n): called once a WAIT covered the job's events up to n.
-- Never past the node's own seq: a node promoted without the caller's last
-- events must not let readers see the seqs it will write next unconfirmed.
-- Answers the cseq.
local function confirm(keys, args)
  local f = redis.call('HMGET', keys[1], 'cseq', 'seq')
  local c = f[1]
  if not c then return 0 end
  local n = math.min(num(args[1]), num(f[2]))
  if n > num(c) then
    redis.call('HSET', keys[1], 'cseq', fmt(n))
    return n
  end
  return num(c)
end

-- Retention's sweep of one partition: jobs whose keys expired leave the owner
-- index and the per-state counts. KEYS[1] = "jc:{T}:done"; ARGV: prefix,
-- now ms, limit. Stops at a job still there (its expiry runs on the node's
-- clock). Answers how many left.
local function sweep(keys, args)
  local prefix = args[1]
  local gone = redis.call('ZRANGEBYSCORE', keys[1], '-inf', args[2], 'LIMIT', 0, args[3])
  local swept = 0
  for _, member in ipairs(gone) do
    local id, owner, state = string.match(member, '^([^\n]*)\n([^\n]*)\n([^\n]*)$')
    if id and redis.call('EXISTS', prefix .. 'job:' .. id) == 1 then break end
    if id then
      redis.call('ZREM', prefix .. 'own:' .. owner, id)
      redis.call('HINCRBY', prefix .. 'stats', state, -1)
    end
    redis.call('ZREM', keys[1], member)
    swept = swept + 1
  end
  return swept
end

-- ---- leases across brokers ------------------------------------------------
-- The leases index scores a running job by when its lease was taken (the
-- leasing broker's clock) or last renewed (this node's clock): the lease is
-- over once no broker renewed it for a lease timeout. The broker renewing a
-- lease is kept in the job as "<attempt>:<broker>", so a new attempt starts
-- with no broker and a stale one fences nobody.

local function now_ms()
  local t = redis.call('TIME')
  return num(t[1]) * 1000 + math.floor(num(t[2]) / 1000)
end

local function holder(f_broker, attempt)
  local a, b = string.match(f_broker or '', '^(%d+):(.*)$')
  if a and num(a) == attempt then return b end
  return ''
end

-- RequeueJob's rule for a lease nobody renewed for ARGV 10 ms; refused
-- ('lease renewed') while a broker keeps it. Brokers run it for every lease
-- jc_expired lists; two at once are harmless (fenced by attempt).
local function expire(keys, args)
  return lifecycle(keys, args, function(job)
    local renewed = redis.call('ZSCORE', job.prefix .. 'leases', job.id)
    if job.state == 'running' and renewed and num(renewed) + num(args[10]) > now_ms() then
      return 'conflict', 'lease renewed'
    end
    return requeue_rule(job, args)
  end)
end

-- The leases nobody renewed for ARGV[2] ms, oldest first, at most ARGV[3].
-- KEYS[1] = "jc:{T}:leases"; ARGV[1] = prefix. Answers flat {id, attempt}.
local function expired(keys, args)
  local ids = redis.call('ZRANGEBYSCORE', keys[1], '-inf', fmt(now_ms() - num(args[2])),
    'LIMIT', 0, num(args[3]))
  local out = {}
  for _, id in ipairs(ids) do
    out[#out + 1] = id
    out[#out + 1] = redis.call('HGET', args[1] .. 'job:' .. id, 'attempt') or '0'
  end
  return out
end

-- A broker keeps the leases its workers run. KEYS[1] = "jc:{T}:leases";
-- ARGV 1 prefix, 2 broker, then job id and attempt pairs. A lease still
-- running on that attempt and kept by no other broker is renewed (and kept
-- by this one from now); the others are lost to it. Answers {lost (flat id,
-- attempt), cancel requested (ids of renewed leases)}. It runs while the node
-- is out of memory (allow-oom): a renewal adds no data, and a running job
-- must not lose its lease because the engine refuses new writes for a while.
local function renew(keys, args)
  local prefix, broker, now = args[1], args[2], fmt(now_ms())
  local lost, cancel = {}, {}
  for i = 3, #args - 1, 2 do
    local id, attempt = args[i], num(args[i + 1])
    local key = prefix .. 'job:' .. id
    local f = redis.call('HMGET', key, 'state', 'attempt', 'broker', 'cancel')
    local kept = holder(f[3], attempt)
    if f[1] == 'running' and num(f[2]) == attempt and (kept == '' or kept == broker) then
      redis.call('ZADD', keys[1], 'XX', now, id)
      if kept == '' then redis.call('HSET', key, 'broker', fmt(attempt) .. ':' .. broker) end
      if f[4] == '1' then cancel[#cancel + 1] = id end
    else
      lost[#lost + 1] = id
      lost[#lost + 1] = args[i + 1]
    end
  end
  return {lost, cancel}
end

-- A worker whose broker went away says hello to another: that broker takes
-- over the lease when the job still runs that attempt for that worker.
-- KEYS[1] = the job hash; ARGV 1 prefix, 2 job id, 3 attempt, 4 worker,
-- 5 broker. Answers 1 (the lease is the broker's, renewed) or 0.
local function claim(keys, args)
  local f = redis.call('HMGET', keys[1], 'state', 'attempt', 'worker')
  if f[1] ~= 'running' or num(f[2]) ~= num(args[3]) or f[3] ~= args[4] then return 0 end
  redis.call('HSET', keys[1], 'broker', fmt(num(args[3])) .. ':' .. args[5])
  redis.call('ZADD', args[1] .. 'leases', 'XX', fmt(now_ms()), args[2])
  return 1
end

-- Queued jobs of the given types for a broker with free workers, best first
-- (priority, then age), at most ARGV[3]; each is reserved for ARGV[2] ms so
-- that other brokers pass it over meanwhile. The job stays queued: whichever
-- broker's lease commits first runs it, and a reservation that is not leased
-- simply ends. KEYS[1] = "jc:{T}:reserved"; ARGV 1 prefix, then the types
-- from 4. Answers flat {id, type, priority}.
local function reserve(keys, args)
  local prefix, hold, n = args[1], num(args[2]), num(args[3])
  if n < 1 then return {} end
  local now = now_ms()
  redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', fmt(now))
  local held = redis.call('ZCARD', keys[1])
  local found = {}
  for t = 4, #args do
    local page = redis.call('ZRANGE', prefix .. 'q:' .. args[t], 0, n + held - 1, 'WITHSCORES')
    for j = 1, #page, 2 do
      if not redis.call('ZSCORE', keys[1], page[j]) then
        found[#found + 1] = {id = page[j], type = args[t], priority = -num(page[j + 1])}
      end
    end
  end
  table.sort(found, function(a, b)
    if a.priority ~= b.priority then return a.priority > b.priority end
    return a.id < b.id
  end)
  local out = {}
  for k = 1, math.min(n, #found) do
    local f = found[k]
    redis.call('ZADD', keys[1], fmt(now + hold), f.id)
    out[#out + 1] = f.id; out[#out + 1] = f.type; out[#out + 1] = fmt(f.priority)
  end
  return out
end

-- ---- Durable Streams ------------------------------------------------------
-- Streams created over HTTP (persistence/stream_log.hpp), kept by
-- cluster/redis_stream_log.cpp. A stream lives in the partition of its owner
-- (all of an owner's streams share one hash slot: a fork, always of the same
-- owner's stream, is in its source's slot); its keys, built from the prefix:
--   sn:<len(owner)>:<owner><name>  STRING  the stream's id (the name index)
--   s:<id>   HASH    settings and state (see stream_create)
--   sm:<id>  STREAM  its own messages, ID <seq>-0, field d
--   sp:<id>  HASH    producer id -> "<epoch> <seq>"
--   sf:<id>  ZSET    its forks: fork id scored by its fork point
--   sid      STRING  the partition's stream counter
--   sdop:<op id>  STRING  a delete's answer, for its re-sent call
-- The rules of an append are domain/stream_rules.cpp's, run by the broker on
-- the state jc_stream_get answered: jc_stream_append applies the decision
-- only while the stream is still at the version it was decided on (`ver`),
-- else answers 'stale' and the broker decides again. As with jobs, nothing
-- is shown before a WAIT covered it: readers see seq and closed only up to
-- the confirmed cseq and cclosed (jc_stream_confirm), and a stream only once
-- its creation was confirmed (c). Every key expires with the stream: its TTL
-- after the last read or write, its Expires-At, or else the retention after
-- its last write; a fork's sources live at least as long as it does.
--
-- Forks are SQLite's (persistence/sqlite_stream_log.cpp): a fork (fo = its
-- source's id, fs = the fork point) holds only the messages after fs and
-- reads the rest along its chain of sources. A stream deleted while forks
-- read it is kept for them (del = 1) with only the messages they read, its
-- name taken, until the last of them goes; then it goes too, and so on up
-- the chain.

local STREAM_OPS = 16  -- taken appends remembered per stream (re-sent calls)

local function stream_keys(prefix, id)
  return {prefix .. 's:' .. id, prefix .. 'sm:' .. id, prefix .. 'sp:' .. id, prefix .. 'sf:' .. id}
end

local function stream_name_key(prefix, owner, name)
  return prefix .. 'sn:' .. fmt(string.len(owner)) .. ':' .. owner .. name
end

-- How long the stream's keys live from `now`.
local function stream_keep(h, now, retention)
  local ttl, at = num(h.ttl), num(h.eam)
  local keep = retention
  if at > 0 then keep = at - now elseif ttl >= 0 then keep = ttl * 1000 end
  return math.max(1, keep)
end

-- Makes key `k` live at least `keep` ms more (never shorter: a source
-- outlives its forks).
local function extend(k, keep)
  if redis.call('PTTL', k) == -1 then
    redis.call('PEXPIRE', k, keep)
  else
    redis.call('PEXPIRE', k, keep, 'GT')
  end
end

local function stream_expire(prefix, id, name_key, h, now, retention)
  local keep = fmt(stream_keep(h, now, retention))
  for _, k in ipairs(stream_keys(prefix, id)) do extend(k, keep) end
  extend(name_key, keep)
  local source = h.fo
  while source and source ~= '0' do
    local f = redis.call('HMGET', prefix .. 's:' .. source, 'fo', 'owner', 'name')
    if not f[2] then break end
    for _, k in ipairs(stream_keys(prefix, source)) do extend(k, keep) end
    extend(stream_name_key(prefix, f[2], f[3]), keep)
    source = f[1]
  end
end

local function stream_hash(key)
  local all = redis.call('HGETALL', key)
  if #all == 0 then return nil, all end
  local h = {}
  for i = 1, #all, 2 do h[all[i]] = all[i + 1] end
  return h, all
end

-- How many forks read stream `id`; those whose keys expired are forgotten.
local function stream_forks(prefix, id)
  local forks = prefix .. 'sf:' .. id
  for _, fork in ipairs(redis.call('ZRANGE', forks, 0, -1)) do
    if redis.call('EXISTS', prefix .. 's:' .. fork) == 0 then redis.call('ZREM', forks, fork) end
  end
  return redis.call('ZCARD', forks)
end

-- Deletes stream `id` (its hash `h`), or keeps it for its forks: marked
-- deleted, with only the messages they read and no producers. A stream that
-- goes frees its source if that was deleted and kept only for it, and so on
-- up the chain. True when it went.
local function stream_drop(prefix, id, h)
  local forks = prefix .. 'sf:' .. id
  if stream_forks(prefix, id) > 0 then
    local shared = redis.call('ZRANGE', forks, 0, 0, 'REV', 'WITHSCORES')[2]
    local log = prefix .. 'sm:' .. id
    while true do
      local past = redis.call('XRANGE', log, '(' .. shared .. '-0', '+', 'COUNT', 1000)
      if #past == 0 then break end
      for _, entry in ipairs(past) do redis.call('XDEL', log, entry[1]) end
    end
    redis.call('DEL', prefix .. 'sp:' .. id)
    redis.call('HSET', prefix .. 's:' .. id, 'del', '1')
    return false
  end
  while h do
    redis.call('DEL', stream_name_key(prefix, h.owner, h.name), unpack(stream_keys(prefix, id)))
    local source = h.fo or '0'
    if source == '0' then break end
    redis.call('ZREM', prefix .. 'sf:' .. source, id)
    h = stream_hash(prefix .. 's:' .. source)
    if not h or h.del ~= '1' or stream_forks(prefix, source) > 0 then break end
    id = source
  end
  return true
end

-- The stream of a name as stored (unconfirmed parts included), and the
-- state of one producer on it. KEYS[1] = name key; ARGV 1 prefix, 2
-- producer id ('' = none). Answers {id, flat hash, producer state or ''},
-- or nil.
local function stream_get(keys, args)
  local id = redis.call('GET', keys[1])
  if not id then return false end
  local h, all = stream_hash(args[1] .. 's:' .. id)
  if not h then return false end
  local producer = ''
  if args[2] ~= '' then
    producer = redis.call('HGET', args[1] .. 'sp:' .. id, args[2]) or ''
  end
  return {id, all, producer}
end

-- A new incarnation of a name, in place of `expected` (its id as the broker
-- saw it, '0' for none: an expired or deleted stream goes here, unless forks
-- still read it). KEYS[1] = name key; ARGV 1 prefix, 2 partition, 3 expected id, 4 op
-- id, 5 now ms, 6 retention ms, 7 content type, 8 ttl seconds, 9 expires at,
-- 10 expires at ms, 11 closed (0/1), 12 owner, 13 name; a fork: 14 the
-- source's id ('0': not a fork), 15 the fork point, 16 the source's name, 17
-- the fork offset asked ('-1': none), 18 the sub-offset, 19 the fork's depth;
-- then the messages (after the fork point). The broker resolved the fork on
-- the source as it was confirmed; here the source must still be that stream,
-- not deleted, and hold the fork point. Answers {'created', id}, {'stale'}
-- when the name or the source holds another stream than expected,
-- {'conflict'} when the stream in place stays for its forks, or
-- {'source_gone'}.
local function stream_create(keys, args)
  local prefix = args[1]
  local id = redis.call('GET', keys[1]) or '0'
  if id ~= args[3] then
    if id ~= '0' and redis.call('HGET', prefix .. 's:' .. id, 'cop') == args[4] then
      return {'created', id}  -- this call's own creation, re-sent
    end
    return {'stale'}
  end
  local source = args[14]
  if source ~= '0' then
    local name_key = stream_name_key(prefix, args[12], args[16])
    local f = redis.call('HMGET', prefix .. 's:' .. source, 'del', 'cseq')
    if redis.call('GET', name_key) ~= source or not f[2] then return {'stale'} end
    if f[1] == '1' then return {'source_gone'} end
    if num(f[2]) < num(args[15]) then return {'stale'} end
  end
  if id ~= '0' then
    local old = stream_hash(prefix .. 's:' .. id)
    if old and not stream_drop(prefix, id, old) then return {'conflict'} end
  end
  local n = redis.call('INCR', prefix .. 'sid')
  id = fmt(n * 16384 + num(args[2]))
  local key = prefix .. 's:' .. id
  local at = num(args[15])
  local seq = at
  for i = 20, #args do
    seq = seq + 1
    redis.call('XADD', prefix .. 'sm:' .. id, fmt(seq) .. '-0', 'd', args[i])
  end
  local h = {ttl = args[8], eam = args[10], fo = source}
  redis.call('HSET', key, 'owner', args[12], 'name', args[13], 'ct', args[7], 'ttl', args[8],
    'ea', args[9], 'eam', args[10], 'closed', args[11], 'cb', '', 'ss', '', 'seq', fmt(seq),
    'cseq', '0', 'cclosed', '0', 'created', args[5], 'accessed', args[5], 'ver', '1',
    'cop', args[4], 'fo', source, 'fs', fmt(at), 'ff', args[16], 'fof', args[17],
    'fso', args[18], 'fd', args[19], 'del', '0')
  redis.call('SET', keys[1], id)
  if source ~= '0' then
    local forks = prefix .. 'sf:' .. source
    redis.call('ZADD', forks, at, id)
    local left = redis.call('PTTL', prefix .. 's:' .. source)
    if left > 0 then redis.call('PEXPIRE', forks, left) end
  end
  stream_expire(prefix, id, keys[1], h, num(args[5]), num(args[6]))
  return {'created', id}
end

-- Keeps what the broker decided for an append, if the stream is still at
-- version ARGV[3]. KEYS[1] = the stream hash; ARGV 1 prefix, 2 id, 3
-- version, 4 op id, 5 now ms, 6 retention ms, 7 taken (0/1: the data
-- appended and the rest kept; 0: a refusal, which only keeps the stream
-- alive), 8 close (0/1), 9 closed by, 10 Stream-Seq ('' = unchanged), 11
-- producer id ('' = none), 12 its epoch, 13 its seq, then the messages.
-- Answers {'ok', seq, closed}, {'stale'} or {'gone'}.
local function stream_append(keys, args)
  local prefix, id = args[1], args[2]
  local h = stream_hash(keys[1])
  if not h or h.del == '1' then return {'gone'} end
  local ops = h.ops and cmsgpack.unpack(h.ops) or {}
  for _, op in ipairs(ops) do
    if op[1] == args[4] then return {'ok', op[2], op[3]} end
  end
  if h.ver ~= args[3] then return {'stale'} end
  local now = num(args[5])
  local seq, closed = num(h.seq), h.closed
  local set = {'accessed', fmt(math.max(num(h.accessed), now))}
  if args[7] == '1' then
    for i = 14, #args do
      seq = seq + 1
      redis.call('XADD', prefix .. 'sm:' .. id, fmt(seq) .. '-0', 'd', args[i])
    end
    if args[8] == '1' then
      closed = '1'
      set[#set + 1] = 'closed'; set[#set + 1] = '1'
      set[#set + 1] = 'cb'; set[#set + 1] = args[9]
    end
    if args[10] ~= '' then set[#set + 1] = 'ss'; set[#set + 1] = args[10] end
    if args[11] ~= '' then
      redis.call('HSET', prefix .. 'sp:' .. id, args[11], args[12] .. ' ' .. args[13])
    end
    ops[#ops + 1] = {args[4], fmt(seq), closed}
    while #ops > STREAM_OPS do table.remove(ops, 1) end
    set[#set + 1] = 'ops'; set[#set + 1] = cmsgpack.pack(ops)
    set[#set + 1] = 'seq'; set[#set + 1] = fmt(seq)
    set[#set + 1] = 'ver'; set[#set + 1] = fmt(num(h.ver) + 1)
  end
  redis.call('HSET', keys[1], unpack(set))
  stream_expire(prefix, id, stream_name_key(prefix, h.owner, h.name), h, now, num(args[6]))
  return {'ok', fmt(seq), closed}
end

-- Raises what readers see once a WAIT covered the stream up to seq ARGV[1]
-- and closed ARGV[2] (0/1), never past what this node holds (a promoted
-- replica without the last appends must not show the next ones
-- unconfirmed). KEYS[1] = the stream hash. Answers {cseq, cclosed}, or nil.
local function stream_confirm(keys, args)
  local f = redis.call('HMGET', keys[1], 'seq', 'closed', 'cseq', 'cclosed')
  if not f[1] then return false end
  local cseq = math.max(num(f[3]), math.min(num(args[1]), num(f[1])))
  local cclosed = (f[4] == '1' or (args[2] == '1' and f[2] == '1')) and '1' or '0'
  redis.call('HSET', keys[1], 'c', '1', 'cseq', fmt(cseq), 'cclosed', cclosed)
  return {fmt(cseq), cclosed}
end

-- A read of stream ARGV[2] at ARGV[3] ms keeps it alive. KEYS[1] = the
-- stream hash; ARGV 1 prefix, 4 retention ms.
local function stream_touch(keys, args)
  local h = stream_hash(keys[1])
  if not h then return 0 end
  local now = num(args[3])
  redis.call('HSET', keys[1], 'accessed', fmt(math.max(num(h.accessed), now)))
  stream_expire(args[1], args[2], stream_name_key(args[1], h.owner, h.name), h, now,
    num(args[4]))
  return 1
end

-- Deletes the stream of a name (or keeps it for its forks, deleted).
-- KEYS[1] = name key; ARGV 1 prefix, 2 op id, 3 how long (ms) the answer is
-- remembered for a re-sent call. Answers {'removed', id}, {'gone', id} (it
-- was deleted before, kept for its forks) or {'none'}; a re-sent call
-- answers as the first did.
local function stream_remove(keys, args)
  local prefix = args[1]
  local done = prefix .. 'sdop:' .. args[2]
  local before = redis.call('GET', done)
  if before then return {'removed', before} end
  local id = redis.call('GET', keys[1])
  if not id then return {'none'} end
  local h = stream_hash(prefix .. 's:' .. id)
  if not h then return {'none'} end
  if h.del == '1' then return {'gone', id} end
  stream_drop(prefix, id, h)
  redis.call('SET', done, id, 'PX', args[3])
  return {'removed', id}
end

-- Messages in (ARGV[1], cseq], at most ARGV[2], along the chain of sources
-- of a fork. KEYS[1] = the stream hash; ARGV 3 prefix, 4 id. Answers
-- {cseq, entries}, nil for no stream.
local function stream_read(keys, args)
  local c = redis.call('HGET', keys[1], 'cseq')
  if not c then return false end
  local after, left, prefix = num(args[1]), num(args[2]), args[3]
  if after >= num(c) then return {c, {}} end
  -- (id, from, to]: the seqs each stream of the chain holds itself; oldest last.
  local chain = {}
  local id, to = args[4], num(c)
  while id and id ~= '0' and after < to do
    local f = redis.call('HMGET', prefix .. 's:' .. id, 'fo', 'fs')
    chain[#chain + 1] = {id, num(f[2]), to}
    to = math.min(to, num(f[2]))
    id = f[1]
  end
  local out = {}
  for i = #chain, 1, -1 do
    local seg = chain[i]
    if left <= 0 then break end
    if after < seg[3] then
      local from = math.max(after, seg[2])
      local got = redis.call('XRANGE', prefix .. 'sm:' .. seg[1], '(' .. fmt(from) .. '-0',
        fmt(seg[3]) .. '-0', 'COUNT', left)
      for _, entry in ipairs(got) do out[#out + 1] = entry end
      left = left - #got
    end
  end
  return {c, out}
end

local function version() return VERSION end

redis.register_function('jc_create', create)
redis.register_function('jc_lease', lease)
redis.register_function('jc_requeue', requeue)
redis.register_function('jc_cancel', cancel)
redis.register_function('jc_apply', apply)
redis.register_function('jc_confirm', confirm)
redis.register_function('jc_sweep', sweep)
redis.register_function('jc_expire', expire)
redis.register_function{function_name = 'jc_renew', callback = renew, flags = {'allow-oom'}}
redis.register_function('jc_claim', claim)
redis.register_function('jc_reserve', reserve)
redis.register_function('jc_stream_create', stream_create)
redis.register_function('jc_stream_append', stream_append)
redis.register_function('jc_stream_confirm', stream_confirm)
redis.register_function('jc_stream_touch', stream_touch)
redis.register_function('jc_stream_remove', stream_remove)
redis.register_function{function_name = 'jc_stream_get', callback = stream_get,
  flags = {'no-writes'}}
redis.register_function{function_name = 'jc_stream_read', callback = stream_read,
  flags = {'no-writes'}}
redis.register_function{function_name = 'jc_expired', callback = expired, flags = {'no-writes'}}
redis.register_function{function_name = 'jc_get', callback = get, flags = {'no-writes'}}
redis.register_function{function_name = 'jc_version', callback = version, flags = {'no-writes'}}
