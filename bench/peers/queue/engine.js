// The worker-engine figures of issue 10, avatarq beside its peers, all in one
// run on this machine (started by bench/engine.sh, which provides the servers):
//   node engine.js [s3] [drain] [latency] [e2e]      (default: all four)
//
// s3       S3 behind bench/latency_proxy.js adding 30 ms, then 0 ms, to every
//          request (the same proxy both times, so only the delay differs):
//          300 jobs x 5 sizes (32..512 px). avatarq: default config with
//          processes = 2, SQLite. Peer: BullMQ, 2 processes x concurrency 50,
//          jdenticon PNGs, the five PUTs of a job in parallel with
//          @aws-sdk/client-s3. jobs/s from the first enqueue to the last done.
// drain    20,000 small jobs queued while no worker can see them, then handed
//          to 2 worker processes that are already up; between 10 % and 90 %
//          drained (steady state): Redis CPU per job (utime + stime of
//          redis-server from /proc/PID/stat), jobs/s, and Redis read events
//          per job (INFO stats total_reads_processed: one per request, or
//          per pipeline or batch of requests that arrive together, so the
//          server's view of the round trips per job of every client). avatarq: pixel 64 px,
//          local storage and SQLite on tmpfs (/dev/shm), fsync off. Peers:
//          bee-queue and BullMQ, no-op jobs, 2 processes x concurrency 50,
//          their default options otherwise: like avatarq (an NS:events entry
//          per state change, NS:job:ID kept) they record every job (bee-queue
//          publishes an event and keeps it in its succeeded set, BullMQ adds
//          to its events stream and keeps the completed job). Also "floor":
//          Redis CPU per job of only the hash writes protocol.md asks of
//          every job (FLOOR_LUA), beside bee-queue's whole job.
// latency  enqueue -> done at a steady 1,000 jobs/s, 6,000 jobs, the first
//          1,000 left out as warm-up. The producer (this process) stamps each
//          job with the monotonic clock (µs) just before sending it and takes
//          the time again when it sees the job done: avatarq through XREAD on
//          NS:events (a "done" entry naming the job in `id`, or in `ids` for
//          a batch), bee-queue through its "job succeeded" pub/sub event. avatarq: pixel 64 px, local + SQLite on
//          tmpfs; bee-queue: no-op jobs, 2 processes x concurrency 50.
// e2e      bench_e2e (AQ_BENCH_E2E_BIN): 10,000 jobs of one 128 px pixel
//          avatar, local storage on /dev/shm without fsync + SQLite.
// Every run reports the peak RSS (VmHWM) of each worker process.
// AQ_BENCH_ROUNDS=N (default 1) repeats s3, drain and latency N times and
// keeps each system's best round; every round is printed.
//
// avatarq is driven through its public interfaces only: a config.ini,
// bin/avatarq-worker, plain LPUSH of job documents, NS:stats, NS:workers,
// NS:worker:ID and NS:events. AQ_BENCH_CONCURRENCY, when set, is passed to
// the workers as AVATARQ_WORKER_CONCURRENCY. Environment: AQ_BENCH_REDIS_URL,
// AQ_BENCH_S3_ENDPOINT (+ AQ_BENCH_S3_BUCKET), AQ_BIN_DIR; AQ_BENCH_OWN_REDIS=1
// lets it FLUSHALL between runs. Every run has a deadline; every process it
// starts is stopped by PID (process group) on any exit.
'use strict'
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { execFile } = require('node:child_process')
const Redis = require('ioredis')
const c = require('./common')

const HERE = __dirname
const BIN = process.env.AQ_BIN_DIR || path.resolve(HERE, '../../../bin')
const S3_JOBS = Number(process.env.AQ_BENCH_S3_JOBS) || 300
const DRAIN_JOBS = Number(process.env.AQ_BENCH_DRAIN_JOBS) || 20000
const LAT_JOBS = Number(process.env.AQ_BENCH_LAT_JOBS) || 6000
const LAT_WARM = Math.floor(LAT_JOBS / 6)
const LAT_RATE = 1000
const SIZES = [32, 64, 128, 256, 512]
const RUN_MS = 120000 // deadline of any one run
// AQ_BENCH_ROUNDS=N runs the s3, drain and latency figures N times, each
// system in turn, and keeps each system's best round: on a machine shared
// with other work that is the figure least moved by it.
const ROUNDS = Math.max(1, Number(process.env.AQ_BENCH_ROUNDS) || 1)
const roundTag = (r) => (ROUNDS > 1 ? ` [round ${r}/${ROUNDS}]` : '')

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a')
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a')
const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a')
const note = (x) => (x.note ? ` (${x.note})` : '')

const figures = {} // what the summary prints
const rss = [] // [system, run, [kB per worker process]]
let R // the bench's own Redis connection
let redisPid

// ---------------------------------------------------------------- avatarq

/** Writes a config.ini for a run (processes = 2, SQLite in dir) and starts
 *  bin/avatarq-worker on it; resolves once both workers have registered. */
async function avatarqStart(ns, dir, storage) {
  const cfg = path.join(dir, 'config.ini')
  fs.writeFileSync(
    cfg,
    [
      `[redis]\nurl = ${process.env.AQ_BENCH_REDIS_URL}\nnamespace = ${ns}`,
      '[worker]\nprocesses = 2',
      storage,
      `[database]\nbackend = sqlite\n[database.sqlite]\npath = ${dir}/meta.db`,
      '[log]\nlevel = warn\n',
    ].join('\n'),
  )
  const env = { ...process.env }
  if (process.env.AQ_BENCH_CONCURRENCY) env.AVATARQ_WORKER_CONCURRENCY = process.env.AQ_BENCH_CONCURRENCY
  const log = fs.openSync(path.join(dir, 'worker.log'), 'a')
  const child = c.start(path.join(BIN, 'avatarq-worker'), ['-c', cfg], { env, stdio: ['ignore', log, log] })
  fs.closeSync(log)
  const ended = () => child.exitCode !== null || child.startError
  const up = await c.until(async () => ended() || (await R.scard(`${ns}:workers`)) >= 2, 30000, 50)
  if (!up || ended()) {
    await c.stop(child)
    const why = child.startError ? child.startError.message : tail(path.join(dir, 'worker.log'))
    throw new Error(`avatarq-worker did not come up: ${why}`)
  }
  return child
}

function tail(file) {
  try {
    return fs.readFileSync(file, 'utf8').slice(-600).trim()
  } catch {
    return '(no log)'
  }
}

/** PIDs of the live worker processes of a namespace (NS:worker:ID pid). */
async function avatarqPids(ns) {
  const ids = await R.smembers(`${ns}:workers`)
  const pids = await Promise.all(ids.map((id) => R.hget(`${ns}:worker:${id}`, 'pid')))
  return [...new Set(pids.filter(Boolean).map(Number))]
}

/** Jobs that reached a final state (NS:stats done + dead). */
async function avatarqFinished(ns) {
  const [done, dead] = await R.hmget(`${ns}:stats`, 'done', 'dead')
  return Number(done || 0) + Number(dead || 0)
}

/** One system's best of several rounds: for each field in `hi` the highest
 *  value, for each in `lo` the lowest (rounds without a figure left out);
 *  the other fields from the first round, notes from all. */
function bestOf(rounds, hi, lo) {
  const out = { ...rounds[0] }
  for (const k of [...hi, ...lo]) {
    const v = rounds.map((r) => r[k]).filter(Number.isFinite)
    out[k] = v.length === 0 ? NaN : hi.includes(k) ? Math.max(...v) : Math.min(...v)
  }
  out.note = [...new Set(rounds.map((r) => r.note).filter(Boolean))].join('; ')
  return out
}

/** Runs one system's part of a figure; a failure is printed and gives
 *  `empty` (NaN figures) so the other systems are still measured. */
async function guarded(what, fn, empty) {
  try {
    return await fn()
  } catch (e) {
    console.log(`${what}: failed: ${e.message}`)
    return { ...empty, note: 'failed' }
  }
}

const tmp = (tag) => c.tempDir('/dev/shm', tag)
const localStorage = (dir) => `[storage]\nbackend = local\n[storage.local]\nroot = ${dir}/root\nfsync = false`

/** Runs fn(child) against a started avatarq, then records the workers' peak
 *  RSS, stops everything and removes the run's folder. */
async function withAvatarq(tag, ns, storage, fn) {
  const dir = tmp(tag)
  let child
  try {
    child = await avatarqStart(ns, dir, storage(dir))
    const out = await fn(child)
    rss.push(['avatarq', tag, (await avatarqPids(ns)).map(c.peakRssKb)])
    return out
  } finally {
    if (child) await c.stop(child, 15000)
    c.removeDir(dir)
  }
}

// ------------------------------------------------------------------ peers

/** Starts n peer worker processes (peer_worker.js) and waits until each
 *  takes jobs. */
async function peersStart(kind, mode, queue, n = 2, env = process.env) {
  const ws = []
  for (let i = 0; i < n; i++)
    ws.push(c.start(process.execPath, [path.join(HERE, 'peer_worker.js'), kind, mode, queue, '50'], { env }))
  try {
    await Promise.all(ws.map((w) => c.waitFor(w, 'ready', 30000)))
  } catch (e) {
    await Promise.all(ws.map((w) => c.stop(w)))
    throw e
  }
  return ws
}

async function peersStop(kind, tag, ws) {
  rss.push([kind, tag, ws.map((w) => c.peakRssKb(w.pid))])
  await Promise.all(ws.map((w) => c.stop(w)))
}

const bullConn = () => {
  const { host, port, db } = c.redisAddr()
  return { host, port, db, maxRetriesPerRequest: null }
}

async function fresh() {
  if (process.env.AQ_BENCH_OWN_REDIS === '1') await R.flushall()
}

// --------------------------------------------------------------------- s3

async function proxyStart(delay) {
  const p = c.start(process.execPath, [
    path.join(HERE, '..', '..', 'latency_proxy.js'),
    '0',
    process.env.AQ_BENCH_S3_ENDPOINT,
    String(delay),
  ])
  const out = await c.waitFor(p, 'ready', 15000)
  return { p, url: `http://127.0.0.1:${out.match(/ready (\d+)/)[1]}` }
}

// Every run uploads under keys of its own (delay and round in the job ids):
// objects a former round left in the bucket must not make a run cheaper.
async function avatarqS3(url, delay, round) {
  const ns = `aqbench-s3-${delay}`
  const tag = `s3-${delay}-r${round}`
  const storage = () =>
    `[storage]\nbackend = s3\n[storage.s3]\nendpoint = ${url}\nbucket = ${process.env.AQ_BENCH_S3_BUCKET || 'bench'}\n` +
    'access_key = S3RVER\nsecret_key = S3RVER\npath_style = true'
  return withAvatarq(`s3-${delay}ms`, ns, storage, async () => {
    const docs = []
    for (let i = 0; i < S3_JOBS; i++)
      docs.push(JSON.stringify({ v: 1, id: `${tag}-${i}`, seed: `${tag}-${i}`, style: 'pixel', sizes: SIZES }))
    const t0 = c.monoUs()
    await R.lpush(`${ns}:queue:default`, ...docs)
    const ok = await c.until(async () => (await avatarqFinished(ns)) >= S3_JOBS, RUN_MS, 20)
    const secs = (c.monoUs() - t0) / 1e6
    const dead = Number((await R.hget(`${ns}:stats`, 'dead')) || 0)
    // a run with failures measures the failures: no figure then
    const why = dead ? `: ${firstDeadError(await R.lindex(`${ns}:dead`, 0))}` : ''
    return { rate: ok && !dead ? S3_JOBS / secs : NaN, note: ok ? (dead ? `${dead} dead${why}` : '') : 'did not finish' }
  })
}

/** The error of a dead letter (NS:dead entry), or the start of its text. */
function firstDeadError(doc) {
  try {
    return JSON.parse(doc).error
  } catch {
    return String(doc).slice(0, 200)
  }
}

async function bullmqS3(url, delay, round) {
  const { Queue } = require('bullmq')
  const name = `s3-${delay}-r${round}`
  const env = { ...process.env, AQ_BENCH_S3_ENDPOINT: url }
  const ws = await peersStart('bullmq', 's3', name, 2, env)
  const q = new Queue(name, { connection: bullConn() })
  try {
    const jobs = []
    for (let i = 0; i < S3_JOBS; i++) jobs.push({ name: 'avatar', data: { id: `${name}-${i}`, seed: `${name}-${i}` } })
    const t0 = c.monoUs()
    await q.addBulk(jobs)
    let failed = 0
    const ok = await c.until(
      async () => {
        const n = await q.getJobCounts('completed', 'failed')
        failed = n.failed
        return n.completed + n.failed >= S3_JOBS
      },
      RUN_MS,
      20,
    )
    const secs = (c.monoUs() - t0) / 1e6
    const why = failed ? `: ${(await q.getFailed(0, 0))[0]?.failedReason}` : ''
    return {
      rate: ok && !failed ? S3_JOBS / secs : NaN,
      note: ok ? (failed ? `${failed} failed${why}` : '') : 'did not finish',
    }
  } finally {
    await q.close()
    await peersStop('BullMQ', `s3-${delay}ms`, ws)
  }
}

const busy = (r) => (Number.isFinite(r.s3busy) ? `${Math.round(r.s3busy * 100)} %` : 'n/a')

async function figS3() {
  if (!process.env.AQ_BENCH_S3_ENDPOINT) {
    console.log('s3: skipped (no S3 test server: AQ_BENCH_S3_ENDPOINT)')
    return
  }
  for (const delay of [30, 0]) {
    const { p, url } = await proxyStart(delay)
    const as = []
    const bs = []
    try {
      for (let r = 1; r <= ROUNDS; r++) {
        const none = { rate: NaN }
        await fresh()
        const a = await guarded(`s3 +${delay} ms avatarq`, () => withS3Busy(() => avatarqS3(url, delay, r)), none)
        await fresh()
        const b = await guarded(`s3 +${delay} ms BullMQ`, () => withS3Busy(() => bullmqS3(url, delay, r)), none)
        as.push(a)
        bs.push(b)
        console.log(
          `s3 +${delay} ms${roundTag(r)}: avatarq ${f1(a.rate)} jobs/s${note(a)} ` +
            `(S3 server ${busy(a)} of a core); BullMQ + aws-sdk ${f1(b.rate)} jobs/s${note(b)} ` +
            `(S3 server ${busy(b)})`,
        )
      }
    } finally {
      await c.stop(p)
    }
    figures[`s3_${delay}`] = { a: bestOf(as, ['rate'], []), b: bestOf(bs, ['rate'], []) }
  }
}

/** The S3 test server's CPU share (1 = one core busy) while fn runs, beside
 *  fn's result: when it nears 1 the store, a single Node process, is what
 *  limits the rate, not the worker under test. */
async function withS3Busy(fn) {
  const pid = Number(process.env.AQ_BENCH_S3_PID || 0)
  const cpu = () => (pid ? c.cpuUs(pid) : NaN)
  const [c0, t0] = [cpu(), c.monoUs()]
  const out = await fn()
  out.s3busy = (cpu() - c0) / (c.monoUs() - t0)
  return out
}

// ------------------------------------------------------------------ drain

/** Read events Redis has processed (INFO stats total_reads_processed): one
 *  per request or pipeline a client sends, so per job about the round trips
 *  of every client together. */
async function redisReads() {
  return Number((await R.info('stats')).match(/total_reads_processed:(\d+)/)[1])
}

/** Samples the queue length every 10 ms while workers drain n jobs; between
 *  10 % and 90 % drained returns jobs/s, Redis CPU µs per job and Redis
 *  reads per job (the bench's own LLEN and INFO taken out). */
async function steady(llen, n) {
  let a = null
  let b = null
  let polls = 0
  const end = Date.now() + RUN_MS
  while (!b && Date.now() < end) {
    const left = await llen()
    polls++
    const s = { t: c.monoUs(), cpu: c.cpuUs(redisPid), done: n - left, polls }
    if (!a && left <= n * 0.9) a = { ...s, reads: await redisReads() }
    else if (a && left <= n * 0.1) b = { ...s, reads: await redisReads() }
    else await c.sleep(10)
  }
  if (!a || !b || b.done === a.done) return { rate: NaN, cpu: NaN, reads: NaN }
  const jobs = b.done - a.done
  const own = b.polls - a.polls + 1 // LLENs after a, and b's INFO
  return { rate: (jobs * 1e6) / (b.t - a.t), cpu: (b.cpu - a.cpu) / jobs, reads: (b.reads - a.reads - own) / jobs }
}

async function avatarqDrain() {
  const ns = 'aqbench-drain'
  return withAvatarq('drain', ns, localStorage, async () => {
    // Queued under another key, then handed over with one RENAME once both
    // workers wait: no start-up in the measured window.
    const stage = `${ns}:bench-staging`
    for (let i = 0; i < DRAIN_JOBS; i += 1000) {
      const docs = []
      for (let k = i; k < Math.min(DRAIN_JOBS, i + 1000); k++)
        docs.push(JSON.stringify({ v: 1, id: `drain-${k}`, seed: `drain-${k}`, style: 'pixel', sizes: [64] }))
      await R.lpush(stage, ...docs)
    }
    await R.rename(stage, `${ns}:queue:default`)
    const s = await steady(() => R.llen(`${ns}:queue:default`), DRAIN_JOBS)
    await c.until(async () => (await avatarqFinished(ns)) >= DRAIN_JOBS, RUN_MS, 20)
    return s
  })
}

async function bullmqDrain() {
  const { Queue } = require('bullmq')
  const q = new Queue('drain', { connection: bullConn() })
  await q.pause() // workers start and wait; resume hands them the queue
  const ws = await peersStart('bullmq', 'noop', 'drain')
  try {
    for (let i = 0; i < DRAIN_JOBS; i += 1000) {
      const jobs = []
      for (let k = i; k < Math.min(DRAIN_JOBS, i + 1000); k++) jobs.push({ name: 'noop', data: { k } })
      await q.addBulk(jobs)
    }
    await q.resume()
    const s = await steady(() => R.llen('bull:drain:wait'), DRAIN_JOBS)
    await c.until(async () => (await q.getJobCounts('completed')).completed >= DRAIN_JOBS, RUN_MS, 20)
    return s
  } finally {
    await q.close()
    await peersStop('BullMQ', 'drain', ws)
  }
}

async function beeDrain() {
  const Queue = require('bee-queue')
  const q = new Queue('drain', { redis: c.redisAddr(), isWorker: false, getEvents: false, storeJobs: false })
  await q.ready()
  const jobs = []
  for (let k = 0; k < DRAIN_JOBS; k++) jobs.push(q.createJob({ k }))
  for (let i = 0; i < jobs.length; i += 1000) await q.saveAll(jobs.slice(i, i + 1000))
  // bee-queue has no pause: the waiting list steps aside while the workers
  // start, and comes back with one RENAME.
  await R.rename('bq:drain:waiting', 'bq:drain:bench-staging')
  const ws = await peersStart('bee', 'noop', 'drain')
  try {
    await R.rename('bq:drain:bench-staging', 'bq:drain:waiting')
    const s = await steady(() => R.llen('bq:drain:waiting'), DRAIN_JOBS)
    await c.until(async () => (await q.checkHealth()).succeeded >= DRAIN_JOBS, RUN_MS, 20)
    return s
  } finally {
    await q.close()
    await peersStop('bee-queue', 'drain', ws)
  }
}

// The writes protocol.md asks of every job, alone: its hash read and written
// to start it (HMGET + HSET: attempts, state, worker, queue, started_at,
// created_at) and written with its TTL when it ends (HSET + EXPIRE), for
// FLOOR_JOBS fresh ids in scripts of 1,000 jobs each (so no round trip, no
// take, no processing list, no counter, no event). What avatarq's drain
// costs above this is its engine; this much no engine can save while each
// job keeps a hash with a running state and a TTL.
const FLOOR_LUA = `
local ns, now, out = ARGV[1], ARGV[2], '[{"size":64,"key":"k/64.png","bytes":300}]'
for i = tonumber(ARGV[3]), tonumber(ARGV[4]) do
  local jk = ns .. 'job:floor-' .. i
  local h = redis.call('HMGET', jk, 'state', 'worker', 'attempts')
  if h[1] == false then
    redis.call('HSET', jk, 'created_at', now, 'attempts', '1', 'state', 'running',
      'worker', 'host:1-abcd', 'queue', 'default', 'started_at', now)
  end
  redis.call('HSET', jk, 'state', 'done', 'worker', 'host:1-abcd', 'error', '',
    'finished_at', now, 'duration_ms', '1', 'outputs', out)
  redis.call('EXPIRE', jk, 86400)
end
return 0`

const FLOOR_JOBS = 100000 // /proc counts CPU in 10 ms ticks: enough of them

async function contractFloor() {
  const ns = 'aqbench-floor:'
  const t0 = c.cpuUs(redisPid)
  for (let i = 0; i < FLOOR_JOBS; i += 1000)
    await R.eval(FLOOR_LUA, 0, ns, String(Date.now()), String(i), String(Math.min(FLOOR_JOBS, i + 1000) - 1))
  return { cpu: (c.cpuUs(redisPid) - t0) / FLOOR_JOBS }
}

async function figDrain() {
  const systems = [
    ['avatarq', avatarqDrain],
    ['bee', beeDrain],
    ['bullmq', bullmqDrain],
    ['floor', contractFloor],
  ]
  const out = {}
  for (let r = 1; r <= ROUNDS; r++)
    for (const [name, fn] of systems) {
      await fresh()
      const x = await guarded(`drain ${name}`, fn, { rate: NaN, cpu: NaN, reads: NaN })
      ;(out[name] = out[name] || []).push(x)
      if (name === 'floor') {
        console.log(`drain floor${roundTag(r)}: the contract's per-job writes alone, Redis CPU ${f1(x.cpu)} µs/job`)
        continue
      }
      console.log(
        `drain ${name}${roundTag(r)}: ${f1(x.rate)} jobs/s, Redis CPU ${f1(x.cpu)} µs/job, ` +
          `${f2(x.reads)} Redis read events/job${note(x)}`,
      )
    }
  figures.drain = {}
  for (const [name] of systems) figures.drain[name] = bestOf(out[name], ['rate'], ['cpu', 'reads'])
}

// ---------------------------------------------------------------- latency

/** Sends n jobs at `rate` per second (send(i) stamps and sends job i), then
 *  waits for all of them; returns p50/p99 in ms of the jobs after warm-up. */
async function paced(n, rate, send, lat) {
  const t0 = c.monoUs()
  let sent = 0
  while (sent < n) {
    const due = Math.min(n, Math.floor(((c.monoUs() - t0) * rate) / 1e6) + 1)
    while (sent < due) send(sent++)
    await c.sleep(1)
  }
  await c.until(() => lat.filter((x) => x !== undefined).length >= n, 20000, 20)
  const got = lat.slice(LAT_WARM).filter((x) => x !== undefined)
  got.sort((x, y) => x - y)
  return { p50: c.pct(got, 50) / 1000, p99: c.pct(got, 99) / 1000, n: got.length, missing: n - LAT_WARM - got.length }
}

async function avatarqLatency() {
  const ns = 'aqbench-lat'
  return withAvatarq('latency', ns, localStorage, async () => {
    const key = `${ns}:events`
    const reader = new Redis(bullConn())
    const last = await reader.xrevrange(key, '+', '-', 'COUNT', 1)
    let from = last.length ? last[0][0] : '0-0'
    const sentAt = new Map()
    const lat = new Array(LAT_JOBS)
    let reading = true
    const loop = (async () => {
      while (reading) {
        const r = await reader.xread('COUNT', 1000, 'BLOCK', 200, 'STREAMS', key, from)
        if (!r) continue
        const now = c.monoUs()
        for (const [entry, fields] of r[0][1]) {
          from = entry
          const f = {}
          for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1]
          if (f.state !== 'done') continue
          // one job (`id`), or a worker's batch (`ids`, separated by spaces)
          for (const id of f.ids !== undefined ? f.ids.split(' ') : [f.id]) {
            const at = sentAt.get(id)
            if (at !== undefined) lat[at[0]] = now - at[1]
          }
        }
      }
    })()
    try {
      const res = await paced(
        LAT_JOBS,
        LAT_RATE,
        (i) => {
          const id = `lat-${i}`
          const doc = JSON.stringify({ v: 1, id, seed: id, style: 'pixel', sizes: [64] })
          sentAt.set(id, [i, c.monoUs()])
          R.lpush(`${ns}:queue:default`, doc).catch(() => {})
        },
        lat,
      )
      if (res.missing) {
        // Tell a job that is not done from a "done" the stream did not show.
        const ids = []
        for (let i = LAT_WARM; i < LAT_JOBS; i++) if (lat[i] === undefined) ids.push(`lat-${i}`)
        const st = await Promise.all(ids.map((id) => R.hget(`${ns}:job:${id}`, 'state')))
        res.note = `${st.filter((x) => x === 'done').length} of them done in NS:job:ID, no "done" seen in NS:events`
      }
      return res
    } finally {
      reading = false
      await loop
      reader.disconnect()
    }
  })
}

async function beeLatency() {
  const Queue = require('bee-queue')
  const q = new Queue('lat', { redis: c.redisAddr(), isWorker: false, getEvents: true, storeJobs: false })
  await q.ready()
  const ws = await peersStart('bee', 'noop', 'lat')
  const sentAt = new Map()
  const lat = new Array(LAT_JOBS)
  q.on('job succeeded', (id) => {
    const i = sentAt.get(id)
    if (i) lat[i[0]] = c.monoUs() - i[1]
  })
  try {
    return await paced(
      LAT_JOBS,
      LAT_RATE,
      (i) => {
        const id = `lat-${i}`
        sentAt.set(id, [i, c.monoUs()])
        q.createJob({ i }).setId(id).save().catch(() => {})
      },
      lat,
    )
  } finally {
    await q.close()
    await peersStop('bee-queue', 'latency', ws)
  }
}

async function figLatency() {
  const none = { p50: NaN, p99: NaN, n: 0, missing: 0 }
  const systems = [
    ['avatarq', avatarqLatency],
    ['bee-queue', beeLatency],
  ]
  const out = {}
  for (let r = 1; r <= ROUNDS; r++)
    for (const [name, fn] of systems) {
      await fresh()
      const x = await guarded(`latency ${name}`, fn, none)
      ;(out[name] = out[name] || []).push(x)
      console.log(
        `latency ${name}${roundTag(r)} at ${LAT_RATE}/s: p50 ${f3(x.p50)} ms, p99 ${f3(x.p99)} ms (${x.n} jobs` +
          `${x.missing ? `, ${x.missing} not seen done` : ''}${x.note ? `; ${x.note}` : ''})`,
      )
    }
  figures.latency = { a: bestOf(out.avatarq, [], ['p50', 'p99']), b: bestOf(out['bee-queue'], [], ['p50', 'p99']) }
}

// -------------------------------------------------------------------- e2e

function figE2e() {
  const bin = process.env.AQ_BENCH_E2E_BIN
  if (!bin || !fs.existsSync(bin)) {
    console.log('e2e: skipped (no bench_e2e binary: AQ_BENCH_E2E_BIN)')
    return Promise.resolve()
  }
  const env = { ...process.env, AQ_BENCH_E2E_DIR: '/dev/shm', AQ_BENCH_E2E_RUNS: 'nofsync', AQ_BENCH_E2E_JOBS: '10000' }
  delete env.AQ_BENCH_PG_CONNINFO
  if (process.env.AQ_BENCH_CONCURRENCY) env.AVATARQ_WORKER_CONCURRENCY = process.env.AQ_BENCH_CONCURRENCY
  return new Promise((resolve) => {
    execFile(bin, [], { env, timeout: RUN_MS * 2 }, (err, out) => {
      process.stdout.write(out.replace(/^/gm, 'e2e| '))
      const m = out.match(/done (\d+)\/(\d+) in [\d.]+ s: (\d+) jobs\/s/)
      figures.e2e = m ? { rate: Number(m[3]), done: `${m[1]}/${m[2]}` } : null
      const peaks = [...out.matchAll(/peak (\d+) kB/g)].map((x) => Number(x[1]))
      if (peaks.length) rss.push(['avatarq', 'e2e', peaks])
      if (err) console.log(`e2e: bench_e2e: ${err.message}`)
      resolve()
    })
  })
}

// ---------------------------------------------------------------- summary

const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a')

function summary() {
  const rows = []
  const row = (what, a, peer, p, r) => rows.push([what, a, peer, p, r])
  for (const d of [30, 0]) {
    const s = figures[`s3_${d}`]
    if (s) row(`S3 +${d} ms/request, ${S3_JOBS} jobs x 5 sizes, jobs/s`, f1(s.a.rate), 'BullMQ+aws-sdk', f1(s.b.rate), ratio(s.a.rate, s.b.rate))
  }
  if (figures.s3_30 && figures.s3_0)
    row('avatarq jobs/s at +30 ms / at 0 ms', ratio(figures.s3_30.a.rate, figures.s3_0.a.rate), 'BullMQ', ratio(figures.s3_30.b.rate, figures.s3_0.b.rate), '')
  const d = figures.drain
  if (d) {
    for (const [p, k] of [
      ['bee-queue', 'bee'],
      ['BullMQ', 'bullmq'],
    ]) {
      row(`Redis CPU per job, ${DRAIN_JOBS} drain, µs (lower is better)`, f1(d.avatarq.cpu), p, f1(d[k].cpu), ratio(d.avatarq.cpu, d[k].cpu))
      row(`drain rate, 2 processes, jobs/s`, f1(d.avatarq.rate), p, f1(d[k].rate), ratio(d.avatarq.rate, d[k].rate))
      row('Redis read events per job (what arrives together counts once)', f2(d.avatarq.reads), p, f2(d[k].reads), ratio(d.avatarq.reads, d[k].reads))
    }
    if (d.floor && d.bee)
      row("the contract's per-job writes alone (see FLOOR_LUA), Redis µs/job", f1(d.floor.cpu), 'bee-queue', f1(d.bee.cpu), ratio(d.floor.cpu, d.bee.cpu))
  }
  const l = figures.latency
  if (l) {
    row(`latency p50 at ${LAT_RATE}/s, ms (lower is better)`, f3(l.a.p50), 'bee-queue', f3(l.b.p50), ratio(l.a.p50, l.b.p50))
    row(`latency p99 at ${LAT_RATE}/s, ms (lower is better)`, f3(l.a.p99), 'bee-queue', f3(l.b.p99), ratio(l.a.p99, l.b.p99))
  }
  if (figures.e2e) row(`end to end, 10,000 x 128 px, tmpfs, no fsync, jobs/s`, f1(figures.e2e.rate), '(no peer)', '', '')
  const peak = {}
  for (const [sys, , kbs] of rss) peak[sys] = Math.max(peak[sys] || 0, ...kbs)
  for (const p of ['bee-queue', 'BullMQ'])
    if (peak.avatarq && peak[p])
      row('worker RSS, max per process over the runs, MB (lower is better)', f1(peak.avatarq / 1024), p, f1(peak[p] / 1024), ratio(peak.avatarq, peak[p]))

  const w = [0, 1, 2, 3, 4].map((i) => Math.max(...rows.map((r) => String(r[i]).length), 8))
  const line = (r) => console.log(r.map((x, i) => (i === 0 || i === 2 ? String(x).padEnd(w[i]) : String(x).padStart(w[i]))).join('  '))
  console.log('')
  if (ROUNDS > 1) console.log(`best of ${ROUNDS} rounds per system (highest rate, lowest CPU, reads and latency):`)
  line(['figure', 'avatarq', 'peer', 'peer fig', 'avatarq/peer'])
  rows.forEach(line)
  // one line per system and run: each process's peak, rounds one after the other
  const byRun = new Map()
  for (const [sys, run, kbs] of rss) {
    const k = `${sys.padEnd(9)} ${run.padEnd(9)}`
    byRun.set(k, [...(byRun.get(k) || []), kbs.map((kb) => (kb / 1024).toFixed(1)).join(', ')])
  }
  console.log('\nworker RSS per process (peak, MB), by run:')
  for (const [k, v] of byRun) console.log(`  ${k} ${v.join(' | ')}`)
}

// ------------------------------------------------------------------- main

const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ')

async function main() {
  const want = process.argv.slice(2)
  const all = { s3: figS3, drain: figDrain, latency: figLatency, e2e: figE2e }
  const which = want.length ? want : Object.keys(all)
  for (const w of which) if (!all[w]) throw new Error(`unknown figure "${w}" (s3, drain, latency, e2e)`)
  R = new Redis(bullConn())
  redisPid = Number((await R.info('server')).match(/process_id:(\d+)/)[1])
  console.log(
    `avatarq worker concurrency: ${process.env.AQ_BENCH_CONCURRENCY || 'its default (AQ_BENCH_CONCURRENCY unset)'}; ` +
      `${os.cpus().length} cores, load average ${loadavg()} (other work on the machine moves every figure); ` +
      `node ${process.version}`,
  )
  for (const w of which) {
    try {
      await all[w]()
    } catch (e) {
      console.log(`${w}: failed: ${e.message}`)
    }
  }
  summary()
  console.log(`load average at the end: ${loadavg()}`)
  await fresh()
  R.disconnect()
}

/** Stops every process this run started (3 s of grace each) and exits. */
async function shutdown(why) {
  console.log(`engine: ${why}; stopping what it started`)
  await c.stopAll(3000)
  process.exit(1)
}

const limit = Number(process.env.AQ_BENCH_ENGINE_TIMEOUT_S) || 420
setTimeout(() => {
  summary()
  shutdown(`stopped after ${limit} s (AQ_BENCH_ENGINE_TIMEOUT_S)`)
}, limit * 1000).unref()
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => shutdown(`got ${sig}`))
main().then(
  () => process.exit(0),
  (e) => {
    console.error(`engine: ${e.message}`)
    process.exit(1)
  },
)
