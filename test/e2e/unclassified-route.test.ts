import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';
import { eventually } from '../helpers/serve-process.js';
import { TOMCAT_JUL_LINES as TOMCAT } from '../helpers/tomcat-lines.js';

// Issue 11: the unclassified traces seen most often, a starting point for a new rule, kept by the
// server from its engine and served at GET /unclassified (the web page's Rules view shows them).

interface UnclassifiedBody {
  total: number;
  distinct: number;
  shapes: Array<{ first_line: string; count: number; host: string; service: string; example: string[]; last_seen: string }>;
}

describe('GET /unclassified', () => {
  let server: RunningLeakwatch;
  beforeAll(async () => {
    server = await startLeakwatch('unclassified');
  });
  afterAll(() => server?.close());

  it('lists the commonest first-line shapes of records no rule classified, with an example', async () => {
    const ingest = await request(`${server.base}/ingest`, { method: 'POST', body: TOMCAT, headers: { 'content-type': 'text/plain' } });
    expect(ingest.statusCode).toBe(200);
    await ingest.body.dump();
    const body = await eventually(async () => {
      const answer = (await (await request(`${server.base}/unclassified`)).body.json()) as UnclassifiedBody;
      return answer.total >= 2 ? answer : undefined;
    }, 10_000, 100);
    expect(body).toMatchObject({ total: 2, distinct: 1 });
    expect(body.shapes).toEqual([
      {
        first_line: 'Sep N, N N:N:N PM org.apache.catalina.core.ApplicationContext log',
        count: 2,
        host: 'web-9',
        service: 'tomcat',
        last_seen: expect.stringMatching(/-09-19T12:10:59/),
        example: ['Sep 19, 2017 12:10:59 PM org.apache.catalina.core.ApplicationContext log', 'INFO: Log4jServletContextListener ensuring that Log4j shuts down properly.'],
      },
    ]);
  });

  it('refuses an unknown parameter or a limit out of range', async () => {
    for (const query of ['?top=3', '?limit=0', '?limit=201']) {
      const answer = await request(`${server.base}/unclassified${query}`);
      expect(answer.statusCode, query).toBe(400);
      expect(await answer.body.json()).toMatchObject({ code: 'LW_ERR_BAD_PARAMETER' });
    }
  });
});
