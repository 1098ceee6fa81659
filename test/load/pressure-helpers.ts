// Test plumbing of the pressure tests: the harness of bench/pressure-harness.ts (agent, setls as a
// child process, the legitimate client, the open-files limit) and the /metrics scrape.
export { Agent, BIN, legitGet, openFilesLimit, percentile, runServer, type AgentStatus, type Served } from '../../bench/pressure-harness.js';

/** Prometheus text → the sum of the samples whose line matches `re`. */
export function metricSum(text: string, re: RegExp): number {
  return text
    .split('\n')
    .filter((l) => re.test(l))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

export function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    import('node:http').then(({ get: hget }) =>
      hget({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let s = '';
        res.on('data', (d: Buffer) => (s += d.toString()));
        res.on('end', () => resolve(s));
      }).on('error', reject),
    );
  });
}
