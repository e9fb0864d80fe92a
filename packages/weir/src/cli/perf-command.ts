import { type Command, Option } from 'commander';
import { SCENARIO_DESCRIPTIONS, SCENARIOS, PerfUsageError, type RawPerfOptions, resolvePerfOptions } from '../perf/options.js';
import { formatReport, writeJsonReport } from '../perf/report.js';
import { runPerf } from '../perf/run.js';

const SCENARIO_HELP = SCENARIOS.map((scenario) => `  ${scenario.padEnd(8)} ${SCENARIO_DESCRIPTIONS[scenario]}`).join('\n');

/**
 * `weir perf <scenario>`: a load generator against a running broker. Options are checked by resolvePerfOptions, so a
 * mistake is a usage error (status 2) with what to fix; a run that fails part-way still prints and writes its report,
 * then exits with status 1.
 */
export function registerPerfCommand(program: Command): void {
  program
    .command('perf')
    .description('measure a running broker: throughput, latency percentiles, broker CPU and memory')
    .argument('<scenario>', SCENARIOS.join(' | '))
    .addHelpText('after', `\nScenarios:\n${SCENARIO_HELP}\n\nExamples:\n  weir perf produce --size 1k --duration 30s --producers 4 --json produce.json\n  weir perf e2e --rate 10000 --duration 60s --warmup 5s --broker-pid $(pgrep -f 'weir serve')\n  weir perf queues --protocol amqp --amqp-url amqp://guest:guest@localhost:5672 --consumers 4 --prefetch 100`)
    .addOption(new Option('--protocol <protocol>', 'native | amqp (amqp needs the amqplib package) (default: native)'))
    .addOption(new Option('--broker <host:port>', 'native broker address (default: $WEIR_SERVER or localhost:7654)'))
    .addOption(new Option('--amqp-url <url>', 'AMQP broker (default: $WEIR_AMQP_URL or amqp://guest:guest@localhost:5672)'))
    .option('--size <bytes>', 'message body size: 100, 1k, 64KiB (default: 100)')
    .option('--count <n>', 'messages to send in all (consume: 100,000 and backlog: 1,000,000 by default)')
    .option('--duration <time>', 'measured time: 30s, 2m (default: 10s unless --count)')
    .option('--warmup <time>', 'time before the measured --duration (default: 0)')
    .option('--producers <n>', 'producers, each with its own connection (default: 1)')
    .option('--consumers <n>', 'consumers per topic or queue; fanout: subscribers (default: 1; fanout 4)')
    .option('--partitions <n>', 'partitions of each topic (native) (default: 8)')
    .option('--queues <n>', 'topics (native) or queues (AMQP) to spread messages over (default: 1)')
    .option('--acks <mode>', 'producer acknowledgements: none | written | durable (AMQP: none | durable = confirms) (default: durable)')
    .option('--auto-ack', 'AMQP consumers without acknowledgements (noAck)')
    .option('--batch <n>', 'messages per send call (default: 1)')
    .option('--window <n>', 'most unacknowledged messages per producer (default: 10,000; AMQP 1,000)')
    .option('--prefetch <n>', 'unacknowledged deliveries per work-queue or AMQP consumer (default: 1,000)')
    .option('--linger <ms>', 'producer linger before a batch is sent (native) (default: the client default)')
    .option('--rate <msg/s>', 'fixed rate over all producers; latencies from intended send times (corrects coordinated omission)')
    .option('--json <file>', 'write the JSON report to this file')
    .option('--broker-pid <pid>', 'pid of a local broker, to sample its CPU and RSS from /proc during the run')
    .option('--broker-data-dir <dir>', "the broker's data directory, for its filesystem in the report (default: from --broker-pid's command line)")
    .action(async (scenario: string, raw: RawPerfOptions, command: Command) => {
      let settings;
      try {
        settings = resolvePerfOptions(scenario, raw, process.env);
      } catch (error) {
        if (error instanceof PerfUsageError) command.error(`error: ${error.message}`, { exitCode: 2, code: 'weir.perf.usage' });
        throw error;
      }
      let report;
      try {
        report = await runPerf(settings);
      } catch (error) {
        if (error instanceof PerfUsageError) command.error(`error: ${error.message}`, { exitCode: 2, code: 'weir.perf.usage' });
        throw error;
      }
      // Nothing measured (the broker unreachable, the setup refused): the error alone says it.
      if (report.phases.length === 0 && report.error !== null) throw new Error(report.error);
      process.stdout.write(`${formatReport(report)}\n`);
      if (settings.jsonPath !== null) {
        await writeJsonReport(settings.jsonPath, report);
        process.stdout.write(`report written to ${settings.jsonPath}\n`);
      }
      if (report.error !== null) process.exitCode = 1;
    });
}
