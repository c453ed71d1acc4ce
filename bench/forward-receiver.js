// The downstream of bench/forward.js, in its own process so that it does not take the
// forwarder's CPU: undoes gzip, counts the records of each body the way its format frames them,
// and answers as the server would (Loki 204, Elasticsearch a bulk answer with one item per action,
// OTLP and NDJSON 200). Prints its port, then a count whenever asked with a GET.
import { createServer } from 'node:http';
import { gunzipSync } from 'node:zlib';

let received = 0;

function count(path, body) {
  if (path.endsWith('/loki/api/v1/push')) return JSON.parse(body).streams.reduce((sum, stream) => sum + stream.values.length, 0);
  if (path.endsWith('/v1/logs')) return JSON.parse(body).resourceLogs.reduce((sum, r) => sum + r.scopeLogs.reduce((s, scope) => s + scope.logRecords.length, 0), 0);
  let lines = 0;
  for (let index = body.indexOf('\n'); index >= 0; index = body.indexOf('\n', index + 1)) lines++;
  return path.endsWith('/_bulk') ? lines / 2 : lines;
}

const server = createServer((request, response) => {
  if (request.method === 'GET') {
    response.end(String(received));
    return;
  }
  const chunks = [];
  request.on('data', (chunk) => chunks.push(chunk));
  request.on('end', () => {
    let raw = Buffer.concat(chunks);
    if (request.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
    const records = count(request.url, raw.toString('utf8'));
    received += records;
    if (request.url.endsWith('/loki/api/v1/push')) {
      response.writeHead(204).end();
    } else if (request.url.endsWith('/_bulk')) {
      const item = '{"create":{"_index":"leakwatch","status":201,"result":"created"}}';
      response.writeHead(200, { 'content-type': 'application/json' }).end(`{"took":1,"errors":false,"items":[${new Array(records).fill(item).join(',')}]}`);
    } else {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    }
  });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
