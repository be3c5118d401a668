// NestJS's CommandBus.execute, timed the way benchmarks/_harness.py times async cases.
//
//     node benchmarks/nestjs_bench.js DIR N ROUNDS
//
// DIR holds node_modules with @nestjs/core, @nestjs/common, @nestjs/cqrs, reflect-metadata
// and rxjs (benchmarks/_peers.py installs them there). Each round awaits N calls of
// `commandBus.execute(command)` in one tight loop, minus the cost of the empty loop; round 0
// (N / 10 calls) only warms up. Prints one line of JSON: the median ns per call over ROUNDS
// rounds, every round, and the versions used.
"use strict";

const { readFileSync } = require("node:fs");
const { createRequire } = require("node:module");
const path = require("node:path");
const { pathToFileURL } = require("node:url");

const [dir, n, rounds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const fromDir = createRequire(path.join(path.resolve(dir), "package.json"));

// The packages are ES modules installed in DIR, not beside this script: resolve them there.
const load = (name) => import(pathToFileURL(fromDir.resolve(name)).href);
const version = (name) =>
  JSON.parse(readFileSync(path.join(dir, "node_modules", name, "package.json"), "utf8")).version;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function timeLoop(bus, command, count) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    await bus.execute(command);
  }
  return Number(process.hrtime.bigint() - start);
}

function emptyLoop(count) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    // the loop's own cost, taken off as the Python harness does
  }
  return Number(process.hrtime.bigint() - start);
}

async function main() {
  await load("reflect-metadata");
  const { Module } = await load("@nestjs/common");
  const { NestFactory } = await load("@nestjs/core");
  const { CommandBus, CommandHandler, CqrsModule, Command } = await load("@nestjs/cqrs");

  // What the NestJS CQRS recipe writes with decorators, applied by hand (plain JS has none).
  class Ping extends (Command ?? Object) {
    constructor(n) {
      super();
      this.n = n;
    }
  }
  class PingHandler {
    async execute(command) {
      return command.n;
    }
  }
  CommandHandler(Ping)(PingHandler);
  class AppModule {}
  Module({ imports: [CqrsModule.forRoot()], providers: [PingHandler] })(AppModule);

  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  await app.init();
  const bus = app.get(CommandBus);
  const command = new Ping(1);
  if ((await bus.execute(command)) !== 1) {
    throw new Error("NestJS did not run the handler");
  }
  const times = [];
  for (let round = 0; round <= rounds; round++) {
    const count = round === 0 ? Math.max(1, Math.floor(n / 10)) : n;
    const took = await timeLoop(bus, command, count);
    const empty = emptyLoop(count);
    if (round > 0) {
      times.push(Math.max(0, took - empty) / count);
    }
  }
  await app.close();
  const versions = {};
  for (const name of ["@nestjs/core", "@nestjs/common", "@nestjs/cqrs", "reflect-metadata", "rxjs"]) {
    versions[name] = version(name);
  }
  process.stdout.write(
    `${JSON.stringify({ median: median(times), times, node: process.version, versions })}\n`,
  );
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`);
  process.exit(1);
});
