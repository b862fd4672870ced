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

/* KEYS: queue, job, stats, events.  ARGV: doc, id, qname, created_at, maxlen.
 * A document without id is counted by queue_start instead (no hash here). */
static const char LUA_ENQUEUE[] =
    LUA_EVENT
    "redis.call('LPUSH', KEYS[1], ARGV[1])\n"
    "if ARGV[2] == '' then return 1 end\n"
    "redis.call('DEL', KEYS[2])\n"
    "redis.call('HSET', KEYS[2], 'state', 'queued', 'attempts', 0, 'queue', ARGV[3],\n"
    "  'created_at', ARGV[4])\n"
    "redis.call('HINCRBY', KEYS[3], 'enqueued', 1)\n"
    "event(KEYS[4], ARGV[5], ARGV[2], 'queued', '', '')\n"
    "return 1\n";

/* KEYS: job, stats, events.  ARGV: worker, id, qname, now, created_at, maxlen.
 * No hash, or a hash in a final state, means a job that did not come through
 * queue_enqueue (a raw LPUSH, or the same id pushed again): count it as
 * enqueued and start its attempts from zero. The job already running on
 * this very worker means a retried start whose reply was lost: nothing
 * changes (a worker runs one job at a time, and any requeue in between
 * would have changed the state). */
static const char LUA_START[] =
    LUA_EVENT
    "if ARGV[2] == '' then\n"
    "  redis.call('HINCRBY', KEYS[2], 'enqueued', 1)\n"
    "  redis.call('HINCRBY', KEYS[2], 'started', 1)\n"
    "  return 1\n"
    "end\n"
    "local st = redis.call('HGET', KEYS[1], 'state')\n"
    "if st == 'running' and redis.call('HGET', KEYS[1], 'worker') == ARGV[1] then\n"
    "  return tonumber(redis.call('HGET', KEYS[1], 'attempts'))\n"
    "end\n"
    "if st == false or st == 'done' or st == 'dead' then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('HINCRBY', KEYS[2], 'enqueued', 1)\n"
    "  local created = ARGV[5]\n"
    "  if created == '0' then created = ARGV[4] end\n"
    "  redis.call('HSET', KEYS[1], 'created_at', created, 'attempts', 0)\n"
    "end\n"
    "local n = redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
    "redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[1], 'queue', ARGV[3],\n"
    "  'started_at', ARGV[4])\n"
    "redis.call('PERSIST', KEYS[1])\n"
    "redis.call('HINCRBY', KEYS[2], 'started', 1)\n"
    "event(KEYS[3], ARGV[6], ARGV[2], 'running', ARGV[1], '')\n"
    "return n\n";

/* The doc must leave the worker's processing list, or (taken back by
 * recovery and not yet taken again) the queue, in this very script; when it
 * is in neither, someone else holds it and will record it. */
#define LUA_CLAIM                                                              \
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 and\n"                   \
    "   redis.call('LREM', KEYS[5], -1, ARGV[1]) == 0 then return 0 end\n"

/* KEYS: processing, job, stats, events, queue.
 * ARGV: doc, id, worker, now, duration_ms, outputs, result_ttl, maxlen. */
static const char LUA_ACK[] =
    LUA_EVENT
    LUA_CLAIM
    "if ARGV[2] ~= '' then\n"
    "  redis.call('HSET', KEYS[2], 'state', 'done', 'worker', ARGV[3], 'error', '',\n"
    "    'finished_at', ARGV[4], 'duration_ms', ARGV[5], 'outputs', ARGV[6])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[7])\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[3], 'done', 1)\n"
    "event(KEYS[4], ARGV[8], ARGV[2], 'done', ARGV[3], '')\n"
    "return 1\n";

/* KEYS: processing, job, stats, events, queue, delayed, dead.
 * ARGV: doc, id, worker, now, error, mode (retry|dead), retry_doc, due_ms,
 *       dead_doc, result_ttl, maxlen, dead_max.
 * A document refused before it ever started (no live hash: a raw LPUSH of
 * garbage) is counted `enqueued` here, as queue_start counts the others, so
 * that enqueued = done + dead + in flight. */
static const char LUA_FAIL[] =
    LUA_EVENT
    LUA_CLAIM
    "if ARGV[6] == 'retry' then\n"
    "  redis.call('ZADD', KEYS[6], ARGV[8], ARGV[7])\n"
    "  if ARGV[2] ~= '' then\n"
    "    redis.call('HSET', KEYS[2], 'state', 'retrying', 'worker', ARGV[3], 'error', ARGV[5])\n"
    "  end\n"
    "  redis.call('HINCRBY', KEYS[3], 'retried', 1)\n"
    "  event(KEYS[4], ARGV[11], ARGV[2], 'retrying', ARGV[3], ARGV[5])\n"
    "  return 1\n"
    "end\n"
    "redis.call('LPUSH', KEYS[7], ARGV[9])\n"
    "redis.call('LTRIM', KEYS[7], 0, tonumber(ARGV[12]) - 1)\n"
    "local st = false\n"
    "if ARGV[2] ~= '' then st = redis.call('HGET', KEYS[2], 'state') end\n"
    "if st == false or st == 'done' or st == 'dead' then\n"
    "  redis.call('HINCRBY', KEYS[3], 'enqueued', 1)\n"
    "end\n"
    "if ARGV[2] ~= '' then\n"
    "  redis.call('HSET', KEYS[2], 'state', 'dead', 'worker', ARGV[3], 'error', ARGV[5],\n"
    "    'finished_at', ARGV[4])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[10])\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[3], 'failed', 1)\n"
    "redis.call('HINCRBY', KEYS[3], 'dead', 1)\n"
    "event(KEYS[4], ARGV[11], ARGV[2], 'dead', ARGV[3], ARGV[5])\n"
    "return 1\n";

/* KEYS: delayed, default queue, events.  ARGV: now, limit, ns, maxlen.
 * ZRANGEBYSCORE and ZREM in one script: a due job moves exactly once however
 * many supervisors call this at the same time. */
static const char LUA_PROMOTE[] =
    LUA_EVENT
    LUA_QNAME
    "local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])\n"
    "local moved = 0\n"
    "for _, doc in ipairs(due) do\n"
    "  if redis.call('ZREM', KEYS[1], doc) == 1 then\n"
    "    local target = KEYS[2]\n"
    "    local ok, j = pcall(cjson.decode, doc)\n"
    "    if ok and type(j) == 'table' and type(j.id) == 'string' and #j.id <= 64 and\n"
    "       j.id:match('^[%w_-][%w._-]*$') then\n"
    "      local jk = ARGV[3] .. 'job:' .. j.id\n"
    "      if redis.call('EXISTS', jk) == 1 then\n"
    "        target = qkey(ARGV[3], redis.call('HGET', jk, 'queue'), target)\n"
    "        redis.call('HSET', jk, 'state', 'queued')\n"
    "        event(KEYS[3], ARGV[4], j.id, 'queued', '', '')\n"
    "      end\n"
    "    end\n"
    "    redis.call('LPUSH', target, doc)\n"
    "    moved = moved + 1\n"
    "  end\n"
    "end\n"
    "return moved\n";

/* KEYS: processing, job, default queue, dead, stats, events.
 * ARGV: doc, id, max_attempts, dead_doc, ns, worker, now, result_ttl, maxlen,
 *       dead_max, error (non-empty: ident refused the doc, dead at once).
 * Returns 0 (no longer there), 1 (requeued) or 2 (dead). */
static const char LUA_REQUEUE[] =
    LUA_EVENT
    LUA_QNAME
    "if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end\n"
    "local attempts = 0\n"
    "if ARGV[2] ~= '' then\n"
    "  attempts = tonumber(redis.call('HGET', KEYS[2], 'attempts') or '0') or 0\n"
    "end\n"
    "local err = ARGV[11]\n"
    "if err == '' and ARGV[2] ~= '' and attempts >= tonumber(ARGV[3]) then\n"
    "  err = 'worker died ' .. attempts .. ' times while running it'\n"
    "end\n"
    "if err ~= '' then\n"
    "  local st = false\n"
    "  if ARGV[2] ~= '' then st = redis.call('HGET', KEYS[2], 'state') end\n"
    "  if st == false or st == 'done' or st == 'dead' then\n"
    "    redis.call('HINCRBY', KEYS[5], 'enqueued', 1)\n"
    "  end\n"
    "  redis.call('LPUSH', KEYS[4], ARGV[4])\n"
    "  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[10]) - 1)\n"
    "  if ARGV[2] ~= '' then\n"
    "    redis.call('HSET', KEYS[2], 'state', 'dead', 'error', err, 'finished_at', ARGV[7])\n"
    "    redis.call('EXPIRE', KEYS[2], ARGV[8])\n"
    "  end\n"
    "  redis.call('HINCRBY', KEYS[5], 'dead', 1)\n"
    "  event(KEYS[6], ARGV[9], ARGV[2], 'dead', ARGV[6], err)\n"
    "  return 2\n"
    "end\n"
    "local target = KEYS[3]\n"
    "if ARGV[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  target = qkey(ARGV[5], redis.call('HGET', KEYS[2], 'queue'), target)\n"
    "  redis.call('HSET', KEYS[2], 'state', 'queued')\n"
    "end\n"
    "redis.call('RPUSH', target, ARGV[1])\n"
    "redis.call('HINCRBY', KEYS[5], 'recovered', 1)\n"
    "if ARGV[2] ~= '' then event(KEYS[6], ARGV[9], ARGV[2], 'queued', ARGV[6], '') end\n"
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

const char *const script_body[S_COUNT] = {
    [S_ENQUEUE] = LUA_ENQUEUE, [S_START] = LUA_START,     [S_ACK] = LUA_ACK,
    [S_FAIL] = LUA_FAIL,       [S_PROMOTE] = LUA_PROMOTE, [S_REQUEUE] = LUA_REQUEUE,
    [S_FORGET] = LUA_FORGET,   [S_UNLOCK] = LUA_UNLOCK,   [S_DEAD_RETRY] = LUA_DEAD_RETRY,
};
