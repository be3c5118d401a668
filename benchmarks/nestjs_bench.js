// NestJS's CommandBus.execute, timed the way benchmarks/_harness.py times async cases.
//
//     node benchmarks/nestjs_bench.js DIR
//
// DIR holds node_modules with @nestjs/core, @nestjs/common, @nestjs/cqrs, reflect-metadata
// and rxjs (benchmarks/_peers.py installs them there). Once the app is up, prints one line
// of JSON (the Node.js and package versions); then, for each line N read from stdin, awaits
// N calls of `commandBus.execute(command)` in one tight loop and prints the nanoseconds
// they took, minus the cost of the empty loop. The harness sends one line per round, in
// turn with the Python cases, so that a slow spell of the machine hits them all alike.
"use strict";

const { readFileSync } = require("node:fs");
const { createRequire } = require("node:module");
const path = require("node:path");
const { pathToFileURL } = require("node:url");

const readline = require("node:readline");

const dir = process.argv[2];
const fromDir = createRequire(path.join(path.resolve(dir), "package.json"));

// The packages are ES modules installed in DIR, not beside this script: resolve them there.
const load = (name) => import(pathToFileURL(fromDir.resolve(name)).href);
const version = (name) =>
  JSON.parse(readFileSync(path.join(dir, "node_modules", name, "package.json"), "utf8")).version;

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
  const versions = {};
  for (const name of ["@nestjs/core", "@nestjs/common", "@nestjs/cqrs", "reflect-metadata", "rxjs"]) {
    versions[name] = version(name);
  }
  process.stdout.write(`${JSON.stringify({ node: process.version, versions })}\n`);
  for await (const line of readline.createInterface({ input: process.stdin })) {
    const count = Number(line);
    const took = await timeLoop(bus, command, count);
    const empty = emptyLoop(count);
    process.stdout.write(`${Math.max(0, took - empty)}\n`);
  }
  await app.close();
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`);
  process.exit(1);
});
