#!/usr/bin/env node
// A signature-checking S3-compatible server for avatarq's tests:
//   node server.js PORT DIR BUCKET [BUCKET...]
// listens on 127.0.0.1:PORT, keeps objects below DIR, creates the buckets,
// and prints "ready" on stdout once it accepts connections. Access key and
// secret are s3rver's fixed pair S3RVER/S3RVER, unless AQ_S3_TEST_SECRET
// gives another secret for S3RVER (to rotate credentials under a running
// client); AQ_S3_TEST_TLS_DIR makes it serve https. Signatures are verified
// (a wrong secret gives 403 SignatureDoesNotMatch).
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const pkg = path.join(__dirname, 'node_modules', '@20minutes', 's3rver')
const S3rver = require(pkg)

if (process.env.AQ_S3_TEST_SECRET) {
  const { DUMMY_ACCOUNT } = require(path.join(pkg, 'lib', 'models', 'account.js'))
  DUMMY_ACCOUNT.createKeyPair('S3RVER', process.env.AQ_S3_TEST_SECRET)
}

const [port, directory, ...buckets] = process.argv.slice(2)
if (!port || !directory || buckets.length === 0) {
  console.error('usage: node server.js PORT DIR BUCKET [BUCKET...]')
  process.exit(2)
}

// AQ_S3_TEST_TLS_DIR: serve https with DIR/key.pem and DIR/cert.pem.
const tlsDir = process.env.AQ_S3_TEST_TLS_DIR
const tls = tlsDir
  ? {
      key: fs.readFileSync(path.join(tlsDir, 'key.pem')),
      cert: fs.readFileSync(path.join(tlsDir, 'cert.pem')),
    }
  : {}

new S3rver({
  address: '127.0.0.1',
  port: Number(port),
  directory,
  silent: true,
  configureBuckets: buckets.map((name) => ({ name, configs: [] })),
  ...tls,
})
  .run()
  .then(() => console.log('ready'))
  .catch((err) => {
    console.error(`s3 test server: ${err.message}`)
    process.exit(1)
  })
