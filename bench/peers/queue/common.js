// Helpers shared by engine.js and peer_worker.js: the Redis address from
// AQ_BENCH_REDIS_URL, CPU and memory of a process from /proc, percentiles,
// polling with a deadline, and children that are always stopped by PID.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const { execFileSync, spawn } = require('node:child_process')

/** { host, port, db } of AQ_BENCH_REDIS_URL (redis://HOST:PORT/DB). */
function redisAddr() {
  const url = process.env.AQ_BENCH_REDIS_URL
  if (!url) throw new Error('AQ_BENCH_REDIS_URL is not set')
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port || 6379), db: Number(u.pathname.slice(1) || 0) }
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100

/** CPU microseconds (utime + stime) a process has used, from /proc/PID/stat. */
function cpuUs(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after "comm)": state is the first, utime the 12th, stime the 13th.
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLK_TCK
}

/** Peak resident set (VmHWM) of a process in kB, or 0 once it is gone. */
function peakRssKb(pid) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmHWM:\s+(\d+)/m)
    return m ? Number(m[1]) : 0
  } catch {
    return 0
  }
}

/** The p-th percentile (0..100) of an ascending array. */
function pct(sorted, p) {
  if (sorted.length === 0) return NaN
  const i = Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))
  return sorted[i]
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** Polls fn() every `every` ms until it returns a truthy value (returned) or
 *  `ms` pass (then null). */
async function until(fn, ms, every = 20) {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() >= end) return null
    await sleep(every)
  }
}

const monoUs = () => Number(process.hrtime.bigint() / 1000n)

// Every child this process starts, each leading its own process group.
// avatarq's supervisor puts each worker process in a group of its own, so
// a child's descendants are found by PID in /proc and stopped one by one.
const children = new Set()

/** PIDs of every live descendant of `pid`, from the ppid field of /proc. */
function descendants(pid) {
  const parent = new Map()
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8')
      parent.set(Number(d), Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]))
    } catch {} // gone meanwhile
  }
  const out = []
  const walk = (p) => {
    for (const [k, v] of parent)
      if (v === p) {
        out.push(k)
        walk(k)
      }
  }
  walk(pid)
  return out
}

/** SIGKILL to a child, everything below it, and its process group. */
function killTree(child) {
  const pids = descendants(child.pid) // before the child dies and they are orphaned
  for (const p of [child.pid, ...pids])
    try {
      process.kill(p, 'SIGKILL')
    } catch {}
  try {
    process.kill(-child.pid, 'SIGKILL')
  } catch {}
}

/** Starts a program in its own process group; it is killed with its group
 *  when this process exits, whatever the reason. */
function start(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], ...opts })
  children.add(child)
  child.on('exit', () => children.delete(child))
  child.on('error', (e) => {
    // could not start (or signal): keep the reason for the caller's message
    child.startError = e
    children.delete(child)
  })
  return child
}

/** Resolves with what the child printed once its stdout holds `word`;
 *  rejects when it exits first or `ms` pass. */
function waitFor(child, word, ms) {
  return new Promise((resolve, reject) => {
    let out = ''
    let err = ''
    const t = setTimeout(() => reject(new Error(`no "${word}" within ${ms} ms: ${err}`)), ms)
    child.stderr.on('data', (d) => (err = (err + d).slice(-2000)))
    child.stdout.on('data', (d) => {
      out += d
      if (out.includes(word)) {
        clearTimeout(t)
        resolve(out)
      }
    })
    child.on('exit', (code) => {
      clearTimeout(t)
      reject(new Error(`exited ${code} before "${word}": ${err}`))
    })
  })
}

/** SIGTERM to the child (a supervisor stops its own workers); after `ms`
 *  SIGKILL to it and everything below it. */
async function stop(child, ms = 10000) {
  if (child.exitCode !== null || child.signalCode !== null) {
    try {
      process.kill(-child.pid, 'SIGKILL') // anything of its group left behind
    } catch {}
    return
  }
  const gone = new Promise((r) => child.once('exit', r))
  try {
    process.kill(child.pid, 'SIGTERM')
  } catch {
    return
  }
  const t = setTimeout(() => killTree(child), ms)
  await gone
  clearTimeout(t)
  try {
    process.kill(-child.pid, 'SIGKILL')
  } catch {}
}

// Temp folders of the runs, removed on any exit.
const dirs = new Set()

/** A new folder below `base` named after `tag`, removed when this process
 *  exits if the run has not removed it. */
function tempDir(base, tag) {
  const d = fs.mkdtempSync(path.join(base, `avatarq-bench-${tag}-`))
  dirs.add(d)
  return d
}

function removeDir(d) {
  fs.rmSync(d, { recursive: true, force: true })
  dirs.delete(d)
}

/** Stops every child still running (SIGTERM, then SIGKILL after `ms`). */
async function stopAll(ms) {
  await Promise.all([...children].map((ch) => stop(ch, ms)))
}

// Last resort, synchronous: whatever is still running dies with this process.
process.on('exit', () => {
  for (const ch of children) killTree(ch)
  children.clear()
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true })
})

module.exports = {
  redisAddr,
  cpuUs,
  peakRssKb,
  pct,
  sleep,
  until,
  monoUs,
  start,
  waitFor,
  stop,
  stopAll,
  tempDir,
  removeDir,
}
