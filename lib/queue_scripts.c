/* queue_scripts: every Lua script of the queue, one table. See queue_int.h. */
#include "queue_int.h"

/* ------------------------------------------------------------------ */
/* Lua scripts */

/* Shared by the scripts that add an event: XADD capped with MAXLEN ~. */
#define LUA_EVENT                                                              \
    "local function event(key, maxlen, id, state, worker, err)\n"              \
    "  redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'id', id,\n"       \
    "    'state', state, 'worker', worker, 'error', err)\n"                    \
    "end\n"

/* A queue name read from a job hash, accepted only when it could have been
 * written by us (no ':' tricks into another key family). */
#define LUA_QNAME                                                              \
    "local function qkey(ns, name, fallback)\n"                                \
    "  if type(name) == 'string' and #name > 0 and #name <= 64 and\n"          \
    "     name:match('^[%w._-]+$') then return ns .. 'queue:' .. name end\n"  \
    "  return fallback\n"                                                      \
    "end\n"

/* What a job's final state (done, dead) sets off, and a batch's count
 * (docs/protocol.md "Completion callbacks", "Batches"):
 *   final(ns, id, state, outputs, err, now, cb, batch, o)
 * builds the result body {id, state, outputs, error, finished_at[, batch]}
 * only when someone wants it: a callback entry {url, body, attempts} LPUSHed
 * to NS:callbacks when cb is set, PUBLISH on NS:done when o.publish; then
 * counts the job in NS:batch:BATCH (batch_count). o: {ttl, maxlen, publish,
 * default callback url}. batch_count(ns, batch, field, delta, now, o)
 * moves one job from pending to field and completes a sealed batch whose
 * pending reaches 0: state complete, an event (id = the batch id, state
 * batch_done), its callback and publication. */
#define LUA_FINAL                                                              \
    "local function result_body(t)\n"                                          \
    "  return cjson.encode(t)\n"                                               \
    "end\n"                                                                    \
    "local function deliver(ns, cb, body, o)\n"                                \
    "  if cb and cb ~= '' then\n"                                              \
    "    redis.call('LPUSH', ns .. 'callbacks',\n"                             \
    "      cjson.encode({url = cb, body = body, attempts = 0}))\n"             \
    "  end\n"                                                                  \
    "  if o.publish == '1' then redis.call('PUBLISH', ns .. 'done', body) end\n" \
    "end\n"                                                                    \
    "local function batch_complete(ns, bk, batch, now, o)\n"                   \
    "  local h = redis.call('HMGET', bk, 'total', 'done', 'dead', 'cancelled',\n" \
    "    'callback_url')\n"                                                    \
    "  redis.call('HSET', bk, 'state', 'complete', 'finished_at', now)\n"      \
    "  redis.call('EXPIRE', bk, o.ttl)\n"                                      \
    "  redis.call('XADD', ns .. 'events', 'MAXLEN', '~', o.maxlen, '*', 'id', batch,\n" \
    "    'state', 'batch_done', 'worker', '', 'error', '')\n"                  \
    "  local body = result_body({batch = batch, state = 'complete',\n"         \
    "    total = tonumber(h[1] or 0), done = tonumber(h[2] or 0),\n"           \
    "    dead = tonumber(h[3] or 0), cancelled = tonumber(h[4] or 0),\n"       \
    "    finished_at = tonumber(now)})\n"                                      \
    "  deliver(ns, h[5], body, o)\n"                                           \
    "end\n"                                                                    \
    "local function batch_count(ns, batch, field, delta, now, o)\n"            \
    "  if not batch or batch == '' then return end\n"                         \
    "  local bk = ns .. 'batch:' .. batch\n"                                   \
    "  if redis.call('EXISTS', bk) == 0 then return end\n"                     \
    "  local left = redis.call('HINCRBY', bk, 'pending', -delta)\n"            \
    "  redis.call('HINCRBY', bk, field, delta)\n"                              \
    "  if left == 0 and redis.call('HGET', bk, 'sealed') == '1' and\n"         \
    "     redis.call('HGET', bk, 'state') ~= 'complete' then\n"                \
    "    batch_complete(ns, bk, batch, now, o)\n"                              \
    "  end\n"                                                                  \
    "end\n"                                                                    \
    "local function final(ns, id, state, outputs, err, now, cb, batch, o)\n"   \
    "  if (cb and cb ~= '') or o.publish == '1' then\n"                        \
    "    local out = {}\n"                                                     \
    "    if outputs and outputs ~= '' then\n"                                  \
    "      local ok, v = pcall(cjson.decode, outputs)\n"                       \
    "      if ok and type(v) == 'table' then out = v end\n"                    \
    "    end\n"                                                                \
    "    local t = {id = id, state = state, outputs = out, error = err,\n"     \
    "      finished_at = tonumber(now)}\n"                                     \
    "    if batch and batch ~= '' then t.batch = batch end\n"                  \
    "    deliver(ns, cb, result_body(t), o)\n"                                 \
    "  end\n"                                                                  \
    "  batch_count(ns, batch, state, 1, now, o)\n"                             \
    "end\n"

/* The cancel rule's other half (LUA_CANCEL is the first): a job cancelled
 * while its document waited keeps that document where it was and names
 * the state it had in `parked`. parked(jk, st) gives that state (false
 * when the job st is the state of is not such a one); wherever the
 * document next surfaces it is dropped and unpark(jk, ttl) ends the hash
 * like any final one, unless an enqueue revives the job first. */
#define LUA_UNPARK                                                             \
    "local function parked(jk, st)\n"                                         \
    "  if st ~= 'cancelled' then return false end\n"                          \
    "  return redis.call('HGET', jk, 'parked')\n"                              \
    "end\n"                                                                   \
    "local function unpark(jk, ttl)\n"                                         \
    "  redis.call('HDEL', jk, 'parked')\n"                                     \
    "  redis.call('EXPIRE', jk, ttl)\n"                                        \
    "end\n"

/* KEYS: queue, job, stats, events, delayed, cancelled.
 * ARGV: doc, id, qname, created_at, maxlen, max_queue_length, run_at, now,
 *       always ('1': a delete job, never deduplicated: pushed whatever the
 *       id's state; a running or retrying job's hash is still left alone),
 *       batch ('' or the batch id: counted in NS:batch:ID when enqueued),
 *       ns.
 * Returns {status, state}: status 'enqueued' (state queued or scheduled),
 * 'exists' (the id is queued, scheduled, running or retrying: nothing done,
 * state is the job's), 'revived' (cancelled while its document still waits
 * somewhere: the cancellation is taken back, state is the restored one) or
 * 'full' (the queue holds max_queue_length documents already).
 * A job in flight keeps its hash, attempts and all: re-enqueueing its id
 * never resets them. A document without id is counted by its start
 * instead (no hash here). */
static const char LUA_ENQUEUE[] =
    LUA_EVENT
    LUA_UNPARK
    "local batch, ns = ARGV[10], ARGV[11]\n"
    "local function count(delta_pending, field, delta)\n"
    "  if batch == '' then return end\n"
    "  local bk = ns .. 'batch:' .. batch\n"
    "  if redis.call('EXISTS', bk) == 0 then return end\n"
    "  redis.call('HINCRBY', bk, 'pending', delta_pending)\n"
    "  redis.call('HINCRBY', bk, field, delta)\n"
    "end\n"
    "local id = ARGV[2]\n"
    "if id ~= '' and ARGV[9] == '1' then\n"
    "  local st = redis.call('HGET', KEYS[2], 'state')\n"
    "  if st == 'running' or st == 'retrying' then\n"
    "    redis.call('LPUSH', KEYS[1], ARGV[1])\n"
    "    count(1, 'total', 1)\n"
    "    return {'enqueued', st}\n"
    "  end\n"
    "elseif id ~= '' then\n"
    "  local st = redis.call('HGET', KEYS[2], 'state')\n"
    "  if st == 'queued' or st == 'running' or st == 'retrying' or st == 'scheduled' then\n"
    "    return {'exists', st}\n"
    "  end\n"
    "  local was = parked(KEYS[2], st)\n"
    "  if was then\n"
    "    redis.call('HSET', KEYS[2], 'state', was, 'error', '')\n"
    "    redis.call('HDEL', KEYS[2], 'parked', 'finished_at')\n"
    "    redis.call('SREM', KEYS[6], id)\n"
    "    batch = redis.call('HGET', KEYS[2], 'batch') or ''\n"
    "    count(1, 'cancelled', -1)\n"
    "    event(KEYS[4], ARGV[5], id, was, '', '')\n"
    "    return {'revived', was}\n"
    "  end\n"
    "end\n"
    "local cap = tonumber(ARGV[6])\n"
    "if cap > 0 and redis.call('LLEN', KEYS[1]) >= cap then return {'full', ''} end\n"
    "local state = 'queued'\n"
    "if tonumber(ARGV[7]) > tonumber(ARGV[8]) then state = 'scheduled' end\n"
    "if state == 'scheduled' then redis.call('ZADD', KEYS[5], ARGV[7], ARGV[1])\n"
    "else redis.call('LPUSH', KEYS[1], ARGV[1]) end\n"
    "count(1, 'total', 1)\n"
    "if id == '' then return {'enqueued', state} end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('HSET', KEYS[2], 'state', state, 'attempts', 0, 'queue', ARGV[3],\n"
    "  'created_at', ARGV[4])\n"
    "if state == 'scheduled' then redis.call('HSET', KEYS[2], 'run_at', ARGV[7]) end\n"
    "if batch ~= '' then redis.call('HSET', KEYS[2], 'batch', batch) end\n"
    "redis.call('HINCRBY', KEYS[3], 'enqueued', 1)\n"
    "event(KEYS[4], ARGV[5], id, state, '', '')\n"
    "return {'enqueued', state}\n";

/* KEYS: job, stats, events, cancelled.
 * ARGV: id, now, maxlen, ns, result_ttl, publish.
 * Returns {status, state before}: 'cancelled', 'final' (done, dead or
 * cancelled already: nothing done) or 'notfound'. Removal is O(1): the
 * job's document stays where it is ('parked' names the state it had) and
 * is dropped, never run, where it next surfaces: a worker's start
 * (queued), the promotion (scheduled, retrying), the worker's outcome
 * (running: result discarded, files deleted) or recovery. */
static const char LUA_CANCEL[] =
    LUA_EVENT
    LUA_FINAL
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if not st then return {'notfound', ''} end\n"
    "if st == 'done' or st == 'dead' or st == 'cancelled' then return {'final', st} end\n"
    "redis.call('HSET', KEYS[1], 'state', 'cancelled', 'parked', st, 'error', 'cancelled',\n"
    "  'finished_at', ARGV[2])\n"
    "if st == 'running' then redis.call('SADD', KEYS[4], ARGV[1]) end\n"
    "redis.call('HINCRBY', KEYS[2], 'cancelled', 1)\n"
    "event(KEYS[3], ARGV[3], ARGV[1], 'cancelled', '', '')\n"
    "batch_count(ARGV[4], redis.call('HGET', KEYS[1], 'batch'), 'cancelled', 1, ARGV[2],\n"
    "  {ttl = ARGV[5], maxlen = ARGV[3], publish = ARGV[6]})\n"
    "return {'cancelled', st}\n";

/* KEYS: delayed, default queue, events.  ARGV: now, limit, ns, maxlen, result_ttl.
 * ZRANGEBYSCORE and ZREM in one script: a due job moves exactly once however
 * many supervisors call this at the same time. A cancelled job's parked
 * document is dropped here instead. Returns {moved, score of the earliest
 * job still waiting or -1}. */
static const char LUA_PROMOTE[] =
    LUA_EVENT
    LUA_QNAME
    LUA_UNPARK
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "local moved = 0\n"
    "for _, doc in ipairs(due) do\n"
    "  if redis.call('ZREM', KEYS[1], doc) == 1 then\n"
    "    local target = KEYS[2]\n"
    "    local ok, j = pcall(cjson.decode, doc)\n"
    "    if ok and type(j) == 'table' and type(j.id) == 'string' and #j.id <= 64 and\n"
    "       j.id:match('^[%w_-][%w._-]*$') then\n"
    "      local jk = ARGV[3] .. 'job:' .. j.id\n"
    "      local st = redis.call('HGET', jk, 'state')\n"
    "      if parked(jk, st) then\n"
    "        unpark(jk, ARGV[5])\n"
    "        target = false\n"
    "      elseif st then\n"
    "        target = qkey(ARGV[3], redis.call('HGET', jk, 'queue'), target)\n"
    "        redis.call('HSET', jk, 'state', 'queued')\n"
    "        event(KEYS[3], ARGV[4], j.id, 'queued', '', '')\n"
    "      end\n"
    "    end\n"
    "    if target then\n"
    "      redis.call('LPUSH', target, doc)\n"
    "      moved = moved + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "return {moved, first[2] and tonumber(first[2]) or -1}\n";

/* KEYS: processing, job, default queue, dead, stats, events, delayed.
 * ARGV: doc, id, mode, dead_doc, ns, worker, now, result_ttl, maxlen,
 *       dead_max, error, due_ms, default callback url, publish.
 * A job that dies here sets off final() with the callback_url and batch of
 * its document.
 * mode (decided in C by fate.c): 'queue' back at the head of its queue,
 * 'delay' into NS:delayed at due_ms (a timed-out attempt), 'dead'.
 * Returns 0 (no longer there), 1 (requeued), 2 (dead), 3 (delayed) or 4
 * (cancelled meanwhile: dropped). */
static const char LUA_REQUEUE[] =
    LUA_EVENT
    LUA_QNAME
    LUA_UNPARK
    LUA_FINAL
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
    "local id, mode, err = ARGV[2], ARGV[3], ARGV[11]\n"
    "if id ~= '' and parked(KEYS[2], redis.call('HGET', KEYS[2], 'state')) then\n"
    "  redis.call('SREM', ARGV[5] .. 'cancelled', id)\n"
    "  unpark(KEYS[2], ARGV[8])\n"
    "  return 4\n"
    "end\n"
    "if mode == 'dead' then\n"
    "  local st = false\n"
    "  if id ~= '' then st = redis.call('HGET', KEYS[2], 'state') end\n"
    "  if st == false or st == 'done' or st == 'dead' then\n"
    "    redis.call('HINCRBY', KEYS[5], 'enqueued', 1)\n"
    "  end\n"
    "  redis.call('LPUSH', KEYS[4], ARGV[4])\n"
    "  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[10]) - 1)\n"
    "  if id ~= '' then\n"
    "    redis.call('HSET', KEYS[2], 'state', 'dead', 'error', err, 'finished_at', ARGV[7])\n"
    "    redis.call('EXPIRE', KEYS[2], ARGV[8])\n"
    "  end\n"
    "  redis.call('HINCRBY', KEYS[5], 'dead', 1)\n"
    "  event(KEYS[6], ARGV[9], id, 'dead', ARGV[6], err)\n"
    "  if id ~= '' then\n"
    "    local cb, batch = ARGV[13], ''\n"
    "    local ok, j = pcall(cjson.decode, ARGV[1])\n"
    "    if ok and type(j) == 'table' then\n"
    "      if type(j.callback_url) == 'string' then cb = j.callback_url end\n"
    "      if type(j.batch) == 'string' then batch = j.batch end\n"
    "    end\n"
    "    final(ARGV[5], id, 'dead', '', err, ARGV[7], cb, batch,\n"
    "      {ttl = ARGV[8], maxlen = ARGV[9], publish = ARGV[14]})\n"
    "  end\n"
    "  return 2\n"
    "end\n"
    "if mode == 'delay' then\n"
    "  redis.call('ZADD', KEYS[7], ARGV[12], ARGV[1])\n"
    "  if id ~= '' then\n"
    "    redis.call('HSET', KEYS[2], 'state', 'retrying', 'error', err)\n"
    "  end\n"
    "  redis.call('HINCRBY', KEYS[5], 'retried', 1)\n"
    "  event(KEYS[6], ARGV[9], id, 'retrying', ARGV[6], err)\n"
    "  return 3\n"
    "end\n"
    "local target = KEYS[3]\n"
    "if id ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  target = qkey(ARGV[5], redis.call('HGET', KEYS[2], 'queue'), target)\n"
    "  redis.call('HSET', KEYS[2], 'state', 'queued')\n"
    "end\n"
    "redis.call('RPUSH', target, ARGV[1])\n"
    "redis.call('HINCRBY', KEYS[5], 'recovered', 1)\n"
    "if id ~= '' then event(KEYS[6], ARGV[9], id, 'queued', ARGV[6], '') end\n"
    "return 1\n";

/* KEYS: worker hash, processing, workers.  ARGV: worker.
 * Deregisters a worker only if it is still silent and holds nothing: a late
 * worker that beat or took a job meanwhile stays registered. */
static const char LUA_FORGET[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "if redis.call('LLEN', KEYS[2]) > 0 then return 0 end\n"
    "return redis.call('SREM', KEYS[3], ARGV[1])\n";

/* KEYS: lock.  ARGV: token.  Compare-and-delete: never free another's lock. */
static const char LUA_UNLOCK[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

/* KEYS: dead, job, default queue, events.
 * ARGV: dead_doc, doc, id, ns, qname, maxlen, now. */
static const char LUA_DEAD_RETRY[] =
    LUA_EVENT
    LUA_QNAME
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
    "local target = KEYS[3]\n"
    "if ARGV[3] ~= '' then\n"
    "  local qn = redis.call('HGET', KEYS[2], 'queue')\n"
    "  target = qkey(ARGV[4], qn, target)\n"
    "  if not qn then\n"
    "    redis.call('HSET', KEYS[2], 'queue', ARGV[5], 'created_at', ARGV[7])\n"
    "  end\n"
    "  redis.call('HSET', KEYS[2], 'state', 'queued', 'attempts', 0, 'error', '')\n"
    "  redis.call('PERSIST', KEYS[2])\n"
    "  event(KEYS[4], ARGV[6], ARGV[3], 'queued', '', '')\n"
    "end\n"
    "redis.call('LPUSH', target, ARGV[2])\n"
    "return 1\n";

/* Marking jobs running (queue_cycle's starts; queue_start_many is a cycle
 * of starts only):
 *   start_jobs(ns, worker, qdef, now, maxlen, ttl, p, m, stats, events)
 * reads m triples (id, created_at, queue or '' for qdef) from ARGV[p] on
 * and returns the attempt number of each, 0 for a job cancelled before it
 * started (its parked document is the caller's to drop). Per job, in as few
 * calls as each case allows (this runs for every job):
 *  - the job already running on this very worker: a retried start whose
 *    reply was lost (any requeue in between would have changed the state):
 *    nothing changes, the same attempt number;
 *  - no hash, or a hash in a final state: a job that did not come through
 *    an enqueue (a raw LPUSH, or the same id pushed again after it ended):
 *    counted enqueued, a fresh hash whose attempts start from zero;
 *  - else attempts + 1, state running.
 * One `running` event (field ids) for the batch. A hash in state queued or
 * retrying has no TTL, and a fresh one none either, so nothing needs
 * PERSIST. Needs LUA_UNPARK. */
#define LUA_START \
    "local function start_jobs(ns, worker, qdef, now, maxlen, ttl, p, m, stats, events)\n" \
    "  local out, ids, nenq, nstart = {}, {}, 0, 0\n" \
    "  for i = 1, m do\n" \
    "    local id, created, qname = ARGV[p], ARGV[p + 1], ARGV[p + 2]\n" \
    "    p = p + 3\n" \
    "    if qname == '' then qname = qdef end\n" \
    "    if id == '' then\n" \
    "      nenq = nenq + 1\n" \
    "      nstart = nstart + 1\n" \
    "      out[i] = 1\n" \
    "    else\n" \
    "      local jk = ns .. 'job:' .. id\n" \
    "      local h = redis.call('HMGET', jk, 'state', 'worker', 'attempts')\n" \
    "      local st = h[1]\n" \
    "      if st == 'running' and h[2] == worker then\n" \
    "        out[i] = tonumber(h[3])\n" \
    "      elseif parked(jk, st) then\n" \
    "        unpark(jk, ttl)\n" \
    "        out[i] = 0\n" \
    "      else\n" \
    "        if st == false or st == 'done' or st == 'dead' or st == 'cancelled' then\n" \
    "          if st then redis.call('DEL', jk) end\n" \
    "          nenq = nenq + 1\n" \
    "          if created == '0' then created = now end\n" \
    "          redis.call('HSET', jk, 'created_at', created, 'attempts', '1', 'state',\n" \
    "            'running', 'worker', worker, 'queue', qname, 'started_at', now)\n" \
    "          out[i] = 1\n" \
    "        else\n" \
    "          out[i] = (tonumber(h[3]) or 0) + 1\n" \
    "          redis.call('HSET', jk, 'state', 'running', 'worker', worker, 'queue', qname,\n" \
    "            'started_at', now, 'attempts', out[i])\n" \
    "        end\n" \
    "        ids[#ids + 1] = id\n" \
    "        nstart = nstart + 1\n" \
    "      end\n" \
    "    end\n" \
    "  end\n" \
    "  if nstart > 0 then redis.call('HINCRBY', stats, 'started', nstart) end\n" \
    "  if nenq > 0 then redis.call('HINCRBY', stats, 'enqueued', nenq) end\n" \
    "  if #ids > 0 then\n" \
    "    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'ids',\n" \
    "      table.concat(ids, ' '), 'state', 'running', 'worker', worker, 'error', '')\n" \
    "  end\n" \
    "  return out\n" \
    "end\n"

/* The worker engine's batch of outcomes plus its next take.
 * KEYS: processing, default queue, stats, events, delayed, dead, metrics,
 *       cancelled, then the take queues (none: take from the default queue).
 * ARGV: ns, worker, now, result_ttl, maxlen, dead_max, n, want, limit, nmetrics,
 *       order, publish (1/0), then n outcomes of 8 (kind d|r|x|z|c, doc, id,
 *       a, b, c, callback url, batch):
 *         d: a=duration_ms b=outputs      r: a=error b=retry_doc c=due_ms
 *         x: a=error b=dead_doc           z: the same, a refused document:
 *                                            its id's hash only if queued
 *         c: dropped (cancelled before it ran)
 *       a done or dead job sets off final() (callback, NS:done, batch).
 *       then nmetrics pairs (field, increment), then the default queue's
 *       name, m and m starts of 3 (id, created_at, queue or ''): see
 *       LUA_START.
 * order: one byte per wanted document, 'a' + the index of the take queue to
 * try first for it (weights are applied in C); an empty preferred queue
 * falls through to the others in their listed order.
 * Each outcome's doc must leave the worker's processing list or (taken back
 * by recovery and not yet taken again) the queue in this very script; in
 * neither, someone else holds it and will record it: claimed 0, nothing
 * recorded. Jobs mostly finish in the order they were taken, so the
 * outcomes usually are the oldest end of the processing list: that run is
 * read with one LRANGE and cut with one LTRIM, and only the others cost an
 * LREM each (this runs for every job; a call per job is most of its cost).
 * A dead letter of a document with no live hash (it never started) counts
 * it `enqueued` too, as start_jobs (LUA_START) counts the others, so that
 * enqueued = done + dead + in flight.
 * Outcomes are recorded first, then the starts (documents the worker took
 * in an earlier call and has parsed since: their ids are in the documents,
 * which a script does not parse), then the take.
 * Returns {claimed flags (1, 0, or 2 = cancelled while running: nothing
 * recorded), taken docs, oversized (0, or 1 + index of its queue, 0 = the
 * default), index of each taken doc's queue, attempt number of each start}.
 * Counters are added once for the batch; all done ids share one event
 * (field ids, space-separated), retries and deaths have one each. The
 * take pops each queue's share with one RPOP and pushes them all with one
 * LPUSH (the same order as one LMOVE each); a document over the limit goes
 * back to the right end of its queue with every one popped after it, and
 * the worker reads such a one in pieces (queue_take_bounded). NS:cancelled
 * is looked at once per call and per job only when it is not empty. A
 * worker left holding nothing shows idle in its heartbeat hash at once (the
 * supervisor beats it busy again when it takes work), so `avatarq workers`
 * never shows a finished job as running. */
static const char LUA_CYCLE[] =
    LUA_EVENT
    LUA_UNPARK
    LUA_FINAL
    LUA_START
    "local ns, worker, now = ARGV[1], ARGV[2], ARGV[3]\n"
    "local ttl, maxlen, dmax = ARGV[4], ARGV[5], tonumber(ARGV[6])\n"
    "local n, want, limit, nm = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9]),\n"
    "  tonumber(ARGV[10])\n"
    "local order = ARGV[11]\n"
    "local o = {ttl = ttl, maxlen = maxlen, publish = ARGV[12]}\n"
    "local claimed, done_ids = {}, {}\n"
    "local ndone, nretry, ndead, nenq = 0, 0, 0, 0\n"
    "local ncanc = 0\n"
    "if n > 0 then ncanc = redis.call('SCARD', KEYS[8]) end\n"
    "local trimmed = {}\n"
    "local first = 13\n"
    "if n > 0 then\n"
    "  local mine = {}\n"
    "  for i = 1, n do\n"
    "    local d = ARGV[first + 1 + 8 * (i - 1)]\n"
    "    mine[d] = (mine[d] or 0) + 1\n"
    "  end\n"
    "  local tail, t = redis.call('LRANGE', KEYS[1], -n, -1), 0\n"
    "  for j = #tail, 1, -1 do\n"
    "    local d = tail[j]\n"
    "    if (mine[d] or 0) == 0 then break end\n"
    "    mine[d] = mine[d] - 1\n"
    "    trimmed[d] = (trimmed[d] or 0) + 1\n"
    "    t = t + 1\n"
    "  end\n"
    "  if t > 0 then redis.call('LTRIM', KEYS[1], 0, -t - 1) end\n"
    "end\n"
    "local function claim(doc)\n"
    "  local k = trimmed[doc]\n"
    "  if k and k > 0 then trimmed[doc] = k - 1 return true end\n"
    "  return redis.call('LREM', KEYS[1], 1, doc) == 1 or\n"
    "         redis.call('LREM', KEYS[2], -1, doc) == 1\n"
    "end\n"
    "local p = first\n"
    "for i = 1, n do\n"
    "  local kind, doc, id = ARGV[p], ARGV[p + 1], ARGV[p + 2]\n"
    "  local a, b, c = ARGV[p + 3], ARGV[p + 4], ARGV[p + 5]\n"
    "  local cb, batch = ARGV[p + 6], ARGV[p + 7]\n"
    "  p = p + 8\n"
    "  local ok = claim(doc)\n"
    "  claimed[i] = ok and 1 or 0\n"
    "  local jk = ns .. 'job:' .. id\n"
    "  if ok and ncanc > 0 and id ~= '' and redis.call('SREM', KEYS[8], id) == 1 then\n"
    "    unpark(jk, ttl)\n"
    "    claimed[i] = 2\n"
    "    ok = false\n"
    "  end\n"
    "  if ok and kind == 'c' then ok = false end\n"
    "  if ok then\n"
    "    if kind == 'd' then\n"
    "      if id ~= '' then\n"
    "        redis.call('HSET', jk, 'state', 'done', 'worker', worker, 'error', '',\n"
    "          'finished_at', now, 'duration_ms', a, 'outputs', b)\n"
    "        redis.call('EXPIRE', jk, ttl)\n"
    "        done_ids[#done_ids + 1] = id\n"
    "        final(ns, id, 'done', b, '', now, cb, batch, o)\n"
    "      end\n"
    "      ndone = ndone + 1\n"
    "    elseif kind == 'r' then\n"
    "      redis.call('ZADD', KEYS[5], c, b)\n"
    "      if id ~= '' then\n"
    "        redis.call('HSET', jk, 'state', 'retrying', 'worker', worker, 'error', a)\n"
    "      end\n"
    "      nretry = nretry + 1\n"
    "      event(KEYS[4], maxlen, id, 'retrying', worker, a)\n"
    "    else\n"
    "      redis.call('LPUSH', KEYS[6], b)\n"
    "      redis.call('LTRIM', KEYS[6], 0, dmax - 1)\n"
    "      local st = false\n"
    "      if id ~= '' then st = redis.call('HGET', jk, 'state') end\n"
    "      if kind == 'z' and st ~= 'queued' then id, st = '', false end\n"
    "      if st == false or st == 'done' or st == 'dead' then nenq = nenq + 1 end\n"
    "      if id ~= '' then\n"
    "        redis.call('HSET', jk, 'state', 'dead', 'worker', worker, 'error', a,\n"
    "          'finished_at', now)\n"
    "        redis.call('EXPIRE', jk, ttl)\n"
    "        final(ns, id, 'dead', '', a, now, cb, batch, o)\n"
    "      end\n"
    "      ndead = ndead + 1\n"
    "      event(KEYS[4], maxlen, id, 'dead', worker, a)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if ndone > 0 then redis.call('HINCRBY', KEYS[3], 'done', ndone) end\n"
    "if nretry > 0 then redis.call('HINCRBY', KEYS[3], 'retried', nretry) end\n"
    "if ndead > 0 then\n"
    "  redis.call('HINCRBY', KEYS[3], 'failed', ndead)\n"
    "  redis.call('HINCRBY', KEYS[3], 'dead', ndead)\n"
    "end\n"
    "if nenq > 0 then redis.call('HINCRBY', KEYS[3], 'enqueued', nenq) end\n"
    "if #done_ids > 0 then\n"
    "  redis.call('XADD', KEYS[4], 'MAXLEN', '~', maxlen, '*', 'ids',\n"
    "    table.concat(done_ids, ' '), 'state', 'done', 'worker', worker, 'error', '')\n"
    "end\n"
    "for i = 1, nm do\n"
    "  redis.call('HINCRBY', KEYS[7], ARGV[p], ARGV[p + 1])\n"
    "  p = p + 2\n"
    "end\n"
    "local started = start_jobs(ns, worker, ARGV[p], now, maxlen, ttl, p + 2,\n"
    "  tonumber(ARGV[p + 1]), KEYS[3], KEYS[4])\n"
    "local nq = #KEYS - 8\n"
    "local function qk(k) return KEYS[k == 0 and 2 or 8 + k] end\n"
    "local taken, from, over = {}, {}, 0\n"
    "local function pop(k, m)\n"
    "  if m <= 0 then return 0 end\n"
    "  local got = redis.call('RPOP', qk(k), m)\n"
    "  if not got then return m end\n"
    "  for j = 1, #got do\n"
    "    taken[#taken + 1] = got[j]\n"
    "    from[#from + 1] = k\n"
    "  end\n"
    "  return m - #got\n"
    "end\n"
    "if want > 0 and nq == 0 then pop(0, want)\n"
    "elseif want > 0 then\n"
    "  local per, short = {}, 0\n"
    "  for i = 1, want do\n"
    "    local src = (order:byte(i) or 97) - 96\n"
    "    if src < 1 or src > nq then src = 1 end\n"
    "    per[src] = (per[src] or 0) + 1\n"
    "  end\n"
    "  for k = 1, nq do short = short + pop(k, per[k] or 0) end\n"
    "  for k = 1, nq do\n"
    "    if short == 0 then break end\n"
    "    short = pop(k, short)\n"
    "  end\n"
    "end\n"
    "for i = 1, #taken do\n"
    "  if #taken[i] > limit then\n"
    "    over = from[i] + 1\n"
    "    for j = #taken, i, -1 do\n"
    "      redis.call('RPUSH', qk(from[j]), taken[j])\n"
    "      taken[j], from[j] = nil, nil\n"
    "    end\n"
    "    break\n"
    "  end\n"
    "end\n"
    "if #taken > 0 then redis.call('LPUSH', KEYS[1], unpack(taken)) end\n"
    "local wk = ns .. 'worker:' .. worker\n"
    "if n > 0 and #taken == 0 and redis.call('LLEN', KEYS[1]) == 0 and\n"
    "   redis.call('EXISTS', wk) == 1 then\n"
    "  redis.call('HSET', wk, 'state', 'idle', 'job', '', 'inflight', 0)\n"
    "end\n"
    "return {claimed, taken, over, from, started}\n";

/* A document too large to hold, moved to processing by queue_take_bounded.
 * KEYS: processing, stats, events, dead.  ARGV: size, limit, dead_doc,
 * maxlen, dead_max, worker, error. Removes the first element of exactly size
 * bytes (over limit) and records it dead. Returns 1, or 0 when none. */
static const char LUA_BURY_BIG[] =
    LUA_EVENT
    "local size, limit = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local n = redis.call('LLEN', KEYS[1])\n"
    "for i = 0, n - 1 do\n"
    "  local d = redis.call('LINDEX', KEYS[1], i)\n"
    "  if d and #d == size and #d > limit then\n"
    "    redis.call('LREM', KEYS[1], 1, d)\n"
    "    redis.call('LPUSH', KEYS[4], ARGV[3])\n"
    "    redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[5]) - 1)\n"
    "    redis.call('HINCRBY', KEYS[2], 'enqueued', 1)\n"
    "    redis.call('HINCRBY', KEYS[2], 'failed', 1)\n"
    "    redis.call('HINCRBY', KEYS[2], 'dead', 1)\n"
    "    event(KEYS[3], ARGV[4], '', 'dead', ARGV[6], ARGV[7])\n"
    "    return 1\n"
    "  end\n"
    "end\n"
    "return 0\n";

/* What a worker holds, for its reconciliation after a lost reply.
 * KEYS: processing.  ARGV: limit. Returns {docs of at most limit bytes,
 * sizes of the larger ones, their first 1024 bytes}: a document too large
 * to hold never travels whole. */
static const char LUA_HELD[] =
    "local small, sizes, heads = {}, {}, {}\n"
    "local limit = tonumber(ARGV[1])\n"
    "for _, d in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do\n"
    "  if #d <= limit then small[#small + 1] = d\n"
    "  else sizes[#sizes + 1] = #d; heads[#heads + 1] = d:sub(1, 1024) end\n"
    "end\n"
    "return {small, sizes, heads}\n";

/* ---- batches (queue_batches.c) ---- */

/* KEYS: batch.  ARGV: queue, callback_url, now.
 * Creates NS:batch:ID (state open) unless it exists. Returns 1 or 0. */
static const char LUA_BATCH_OPEN[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'state', 'open', 'queue', ARGV[1], 'callback_url', ARGV[2],\n"
    "  'created_at', ARGV[3], 'total', 0, 'pending', 0, 'done', 0, 'dead', 0,\n"
    "  'cancelled', 0, 'sealed', 0)\n"
    "return 1\n";

/* KEYS: batch.  ARGV: ns, batch id, now, result_ttl, maxlen, publish.
 * No more jobs will be added: a batch whose jobs are all final completes
 * now, the others when their last job ends (batch_count). Returns 1, or 0
 * when there is no such batch. */
static const char LUA_BATCH_SEAL[] =
    LUA_FINAL
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'sealed', 1)\n"
    "if tonumber(redis.call('HGET', KEYS[1], 'pending')) <= 0 and\n"
    "   redis.call('HGET', KEYS[1], 'state') ~= 'complete' then\n"
    "  batch_complete(ARGV[1], KEYS[1], ARGV[2], ARGV[3],\n"
    "    {ttl = ARGV[4], maxlen = ARGV[5], publish = ARGV[6]})\n"
    "end\n"
    "return 1\n";

/* ---- completion callbacks (queue_callbacks.c) ---- */

/* KEYS: sending, delayed, dead, stats.
 * ARGV: n, dead_max, then n quadruples (entry, mode sent|retry|gave_up,
 *       retry_entry, due_ms).
 * Each entry leaves NS:callbacks:sending:W in the same script that records
 * what became of it (one call for a sender's whole batch). An entry no
 * longer there (taken back by recovery) is skipped: its new holder sends it.
 * Returns how many were recorded. */
static const char LUA_CB_FINISH[] =
    "local n, dmax = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local sent, retried, failed, p = 0, 0, 0, 3\n"
    "for i = 1, n do\n"
    "  local e, mode, again, due = ARGV[p], ARGV[p + 1], ARGV[p + 2], ARGV[p + 3]\n"
    "  p = p + 4\n"
    "  if redis.call('LREM', KEYS[1], 1, e) == 1 then\n"
    "    if mode == 'retry' then\n"
    "      redis.call('ZADD', KEYS[2], due, again)\n"
    "      retried = retried + 1\n"
    "    elseif mode == 'gave_up' then\n"
    "      redis.call('LPUSH', KEYS[3], e)\n"
    "      redis.call('LTRIM', KEYS[3], 0, dmax - 1)\n"
    "      failed = failed + 1\n"
    "    else\n"
    "      sent = sent + 1\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if sent > 0 then redis.call('HINCRBY', KEYS[4], 'callbacks_sent', sent) end\n"
    "if retried > 0 then redis.call('HINCRBY', KEYS[4], 'callbacks_retried', retried) end\n"
    "if failed > 0 then redis.call('HINCRBY', KEYS[4], 'callbacks_failed', failed) end\n"
    "return sent + retried + failed\n";

/* KEYS: delayed, callbacks, sending.  ARGV: now, max.
 * Due retries back to NS:callbacks (each exactly once, whoever calls),
 * then up to max entries moved to the sender's list, without waiting.
 * Returns the entries moved. */
static const char LUA_CB_TAKE[] =
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 100)\n"
    "for _, e in ipairs(due) do\n"
    "  if redis.call('ZREM', KEYS[1], e) == 1 then redis.call('LPUSH', KEYS[2], e) end\n"
    "end\n"
    "local out = {}\n"
    "for i = 1, tonumber(ARGV[2]) do\n"
    "  local e = redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'LEFT')\n"
    "  if not e then break end\n"
    "  out[#out + 1] = e\n"
    "end\n"
    "return out\n";

/* KEYS: sending, callbacks. Everything a dead (or stopped) sender held goes
 * back to be sent by another. Returns the count. */
static const char LUA_CB_RETURN[] =
    "local n = 0\n"
    "while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'RIGHT') do n = n + 1 end\n"
    "return n\n";

const char *const script_body[S_COUNT] = {
    [S_ENQUEUE] = LUA_ENQUEUE, [S_PROMOTE] = LUA_PROMOTE, [S_REQUEUE] = LUA_REQUEUE,
    [S_FORGET] = LUA_FORGET,   [S_UNLOCK] = LUA_UNLOCK,   [S_DEAD_RETRY] = LUA_DEAD_RETRY,
    [S_CYCLE] = LUA_CYCLE,     [S_BURY_BIG] = LUA_BURY_BIG,
    [S_HELD] = LUA_HELD,
    [S_CANCEL] = LUA_CANCEL,   [S_CB_FINISH] = LUA_CB_FINISH, [S_CB_TAKE] = LUA_CB_TAKE,
    [S_CB_RETURN] = LUA_CB_RETURN, [S_BATCH_OPEN] = LUA_BATCH_OPEN,
    [S_BATCH_SEAL] = LUA_BATCH_SEAL,
};
