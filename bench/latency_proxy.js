#!/usr/bin/env node
// A latency-injecting HTTP proxy for the S3 figures of bench/engine.sh:
//   node bench/latency_proxy.js LISTEN_PORT UPSTREAM_URL DELAY_MS
// listens on 127.0.0.1:LISTEN_PORT, holds every request DELAY_MS (a timer,
// no CPU) before it forwards it to UPSTREAM_URL, and streams the answer back.
// The Host header and every other header go upstream unchanged, so a SigV4
// signature made for the proxy's address still verifies at the S3 server
// (which checks the Host it received). LISTEN_PORT 0 picks a free port;
// prints "ready PORT" once it listens.
// Plain node, no packages. Bench-only: it serves loopback and nothing else.
'use strict'
const http = require('node:http')

const [port, upstream, delay] = process.argv.slice(2)
if (!port || !upstream || delay === undefined) {
  console.error('usage: node latency_proxy.js LISTEN_PORT UPSTREAM_URL DELAY_MS')
  process.exit(2)
}
const up = new URL(upstream)
const delayMs = Number(delay)
// Keep-alive toward the server: the delay models the network, not handshakes.
const agent = new http.Agent({ keepAlive: true, maxSockets: 512 })

function forward(req, res) {
  const out = http.request(
    {
      host: up.hostname,
      port: up.port,
      method: req.method,
      path: req.url,
      headers: req.headers, // Host included, unchanged
      agent,
    },
    (ans) => {
      res.writeHead(ans.statusCode, ans.headers)
      ans.pipe(res)
    },
  )
  out.on('error', (err) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' })
    res.end(`proxy: ${err.message}\n`)
  })
  req.pipe(out)
}

const server = http.createServer((req, res) => {
  // The body waits in the paused request stream until forward() pipes it;
  // the timer is the whole added latency.
  setTimeout(() => forward(req, res), delayMs)
})
server.keepAliveTimeout = 60000
server.listen(Number(port), '127.0.0.1', () => console.log(`ready ${server.address().port}`))
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))
