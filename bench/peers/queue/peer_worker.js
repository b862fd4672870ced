// One worker process of a peer queue, started by engine.js:
//   node peer_worker.js bullmq|bee noop|s3 QUEUE CONCURRENCY
// noop: the job does nothing (queue cost only). s3 (BullMQ only): the job
// renders a jdenticon PNG of each of the five sizes and PUTs the five in
// parallel with @aws-sdk/client-s3 to AQ_BENCH_S3_ENDPOINT (bucket
// AQ_BENCH_S3_BUCKET, keys S3RVER/S3RVER). Prints "ready" once it takes jobs;
// stops on SIGTERM.
'use strict'
const { redisAddr } = require('./common')

const [kind, mode, queueName, conc] = process.argv.slice(2)
const concurrency = Number(conc) || 50
const SIZES = [32, 64, 128, 256, 512]

function s3Processor() {
  const { S3Client, PutObjectCommand } = require('@aws-sdk/client-s3')
  const jdenticon = require('jdenticon')
  const s3 = new S3Client({
    endpoint: process.env.AQ_BENCH_S3_ENDPOINT,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    // the test server predates the SDK's default CRC checksums
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  })
  const bucket = process.env.AQ_BENCH_S3_BUCKET || 'bench'
  return async (job) => {
    await Promise.all(
      SIZES.map((size) =>
        s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: `peer/${job.data.id}/${size}.png`,
            Body: jdenticon.toPng(job.data.seed, size),
            ContentType: 'image/png',
          }),
        ),
      ),
    )
  }
}

async function bullmq() {
  const { Worker } = require('bullmq')
  const { host, port, db } = redisAddr()
  const work = mode === 's3' ? s3Processor() : async () => {}
  const w = new Worker(queueName, work, {
    connection: { host, port, db, maxRetriesPerRequest: null },
    concurrency,
  })
  w.on('error', (e) => console.error(`bullmq worker: ${e.message}`))
  await w.waitUntilReady()
  process.on('SIGTERM', () => w.close().then(() => process.exit(0)))
}

async function bee() {
  const Queue = require('bee-queue')
  const { host, port, db } = redisAddr()
  const q = new Queue(queueName, {
    redis: { host, port, db },
    isWorker: true,
    getEvents: false, // a worker needs no events; it sends them (sendEvents)
    storeJobs: false,
  })
  q.on('error', (e) => console.error(`bee-queue worker: ${e.message}`))
  await q.ready()
  q.process(concurrency, async () => {})
  process.on('SIGTERM', () => q.close(5000).then(() => process.exit(0)))
}

const run = { bullmq, bee }[kind]
if (!run || !queueName) {
  console.error('usage: node peer_worker.js bullmq|bee noop|s3 QUEUE CONCURRENCY')
  process.exit(2)
}
run()
  .then(() => console.log('ready'))
  .catch((e) => {
    console.error(`${kind} worker: ${e.message}`)
    process.exit(1)
  })
