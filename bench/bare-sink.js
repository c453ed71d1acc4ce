// The least any Node.js sink does with the HTTP bench's traffic, as the same-run yardstick for
// `http_lines_per_s`: read each body, gunzip it when it says so, JSON.parse it, answer 200 with
// the count. No journal, no grouping, no store. Prints its URL on stdout once it listens.
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';

const server = createServer((request, response) => {
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    const raw = Buffer.concat(chunks);
    const body = request.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
    const records = JSON.parse(body.toString('utf8'));
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ accepted: records.length }));
  });
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(`http://127.0.0.1:${port}\n`);
});
