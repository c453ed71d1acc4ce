import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { artifactPath, launchChromium, type Browser } from '../helpers/browser.js';
import { startLeakwatch, type RunningLeakwatch } from '../helpers/in-process.js';
import { JOURNAL_TEXT } from '../helpers/netty-fixtures.js';
import { eventually } from '../helpers/serve-process.js';
import { TOMCAT_JUL_LINES as TOMCAT } from '../helpers/tomcat-lines.js';

// Issue 11: GET / was a JSON 404. The page, in a real chromium, against a real server with a token
// (the browser's Basic auth), after the real Netty export was posted: what a person sees.
const TOKEN = 'web-page-token';
const basic = `Basic ${Buffer.from(`sre:${TOKEN}`).toString('base64')}`;


interface IncidentBody {
  id: string;
  host: string;
  category: string;
  acked_at: string | null;
  status: string;
}

async function post(base: string, path: string, body: string): Promise<void> {
  const answer = await request(`${base}${path}`, { method: 'POST', body, headers: { 'content-type': 'text/plain', authorization: basic } });
  expect(answer.statusCode).toBe(200);
  await answer.body.dump();
}

async function api<T>(base: string, path: string): Promise<T> {
  return (await (await request(`${base}${path}`, { headers: { authorization: basic } })).body.json()) as T;
}

/** What the test reads of a canvas (the test runs without the DOM's types). */
interface CanvasLike {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, width: number, height: number): { data: Uint8ClampedArray } } | null;
}

/** Pixels of a canvas that are not transparent: something was drawn. */
function drawnPixels(page: Page, selector: string): Promise<number[]> {
  return page.$$eval(selector, (canvases) =>
    canvases.map((canvas) => {
      const element = canvas as unknown as CanvasLike;
      const { data } = element.getContext('2d')!.getImageData(0, 0, element.width, element.height);
      let painted = 0;
      for (let alpha = 3; alpha < data.length; alpha += 4) if (data[alpha]! > 0) painted++;
      return painted;
    }),
  );
}

describe('the web page', () => {
  let server: RunningLeakwatch;
  let browser: Browser;
  let page: Page;
  const errors: string[] = [];

  beforeAll(async () => {
    [server, browser] = await Promise.all([startLeakwatch('web', { token: TOKEN }), launchChromium({ httpCredentials: { username: 'sre', password: TOKEN }, viewport: { width: 1280, height: 800 } })]);
    await post(server.base, '/ingest', readFileSync(JOURNAL_TEXT, 'utf8'));
    await eventually(async () => ((await api<{ incidents: unknown[] }>(server.base, '/incidents?status=all')).incidents.length === 6 ? true : undefined), 15_000, 100);
    page = await browser.context.newPage();
    page.on('pageerror', (error) => errors.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push(`console: ${message.text()}`);
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('asks a browser without the token for Basic auth', async () => {
    const answer = await request(`${server.base}/`);
    expect(answer.statusCode).toBe(401);
    expect(answer.headers['www-authenticate']).toMatch(/^Basic realm="leakwatch"/);
    await answer.body.dump();
  });

  it('lists the open incidents of both hosts, filters them, and says where the others are', async () => {
    await page.goto(`${server.base}/?refresh=1`);
    const rows = page.locator('table.incidents tbody tr');
    await expect.poll(() => rows.count()).toBe(6);
    const text = await page.locator('table.incidents').innerText();
    for (const host of ['edge-a/linkerd', 'edge-b/linkerd']) expect(text).toContain(host);
    for (const category of ['direct-memory-exhausted', 'exception-caught-at-tail', 'buffer-leak']) expect(text.split(category).length - 1).toBe(2);
    expect(text).toContain('edge-b/linkerd: Netty direct memory 98.1% used (31.4 MiB of 32.0 MiB)');
    await page.screenshot({ path: artifactPath('web-incidents.png') });

    await page.selectOption('select[name="severity"]', 'critical');
    await page.click('form.filters button[type="submit"]');
    await expect.poll(() => rows.count()).toBe(2);
    expect(page.url()).toContain('severity=critical');

    await page.click('.tabs a:has-text("Recently resolved")');
    await expect.poll(() => page.locator('.empty').innerText()).toContain('No resolved incidents. (with these filters)');
    await page.goto(`${server.base}/?refresh=1#/incidents?status=resolved`);
    await expect.poll(() => page.locator('.empty').innerText()).toMatch(/Incidents of other statuses exist, the latest last seen .*show all incidents/s);
  });

  it("shows an incident's trace, evidence and events, and acknowledges and resolves it", async () => {
    await page.goto(`${server.base}/?refresh=1#/incidents`);
    await page.click('table.incidents tr:has-text("edge-b/linkerd: Netty direct memory") td.summary a');
    await expect.poll(() => page.locator('#trace').innerText()).toContain(
      'io.netty.util.internal.OutOfDirectMemoryError: failed to allocate 1187165 byte(s) of direct memory (used: 32902793, max: 33554432)',
    );
    expect(await page.locator('#trace').innerText()).toContain('at io.netty.util.internal.PlatformDependent.incrementMemoryCounter(PlatformDependent.java:743)');
    expect(await page.locator('table.evidence').innerText()).toMatch(/buffer-leak\s+1[\s\S]*exception-caught-at-tail\s+1/);
    expect(await page.locator('details.event').count()).toBe(1);
    await page.screenshot({ path: artifactPath('web-incident.png'), fullPage: true });

    const id = decodeURIComponent(page.url().split('#/incident/')[1]!);
    await page.click('button[data-action="ack"]');
    await expect.poll(() => page.locator('.notice.ok').innerText()).toBe('Acknowledged.');
    expect((await api<IncidentBody>(server.base, `/incidents/${id}`)).acked_at).not.toBeNull();
    await page.click('button[data-action="resolve"]');
    await expect.poll(async () => (await api<IncidentBody>(server.base, `/incidents/${id}`)).status).toBe('resolved');
    await expect.poll(() => page.locator('.incident-head .badge.resolved').count()).toBe(1);
  });

  it('draws the direct memory of each process: used, the limit, its numbers', async () => {
    await page.goto(`${server.base}/?refresh=1#/memory`);
    const cards = page.locator('article.process');
    await expect.poll(() => cards.count()).toBe(2);
    expect(await cards.first().innerText()).toMatch(/edge-b\/linkerd pid 4202[\s\S]*31\.4 MiB of 32\.0 MiB[\s\S]*98\.1%/);
    await expect.poll(async () => (await drawnPixels(page, '.chart canvas')).length).toBe(2);
    for (const painted of await drawnPixels(page, '.chart canvas')) expect(painted).toBeGreaterThan(500);
    expect(await page.locator('.chart .u-legend').first().innerText()).toMatch(/used[\s\S]*limit/i);
    await page.screenshot({ path: artifactPath('web-memory.png'), fullPage: true });
  });

  it('lists the rules in force and picks up the unclassified traces by itself', async () => {
    await page.goto(`${server.base}/?refresh=1#/rules`);
    await expect.poll(() => page.locator('table.rules tbody tr').count()).toBe(12);
    expect(await page.locator('table.rules tr:has-text("jvm-exception")').innerText()).toContain('fallback');
    expect(await page.locator('.unclassified').innerText()).toContain('None so far.');

    await post(server.base, '/ingest', TOMCAT);
    // No reload: the page refreshes itself (every second here, ?refresh=1).
    await expect.poll(() => page.locator('.shapes li').first().innerText(), { timeout: 15_000 }).toMatch(/^2× Sep N, N N:N:N PM org\.apache\.catalina\.core\.ApplicationContext log · e\.g\. on web-9\/tomcat, last seen /);
    await page.click('.shapes summary');
    expect(await page.locator('.shapes pre').innerText()).toBe('Sep 19, 2017 12:10:59 PM org.apache.catalina.core.ApplicationContext log\nINFO: Log4jServletContextListener ensuring that Log4j shuts down properly.');
  });

  it('fits a phone screen: nothing wider than the viewport', async () => {
    const phone = await browser.context.newPage();
    try {
      await phone.setViewportSize({ width: 390, height: 844 });
      for (const view of ['#/incidents?status=all', '#/memory', '#/rules']) {
        await phone.goto(`${server.base}/?refresh=1${view}`);
        await phone.waitForSelector(view === '#/memory' ? '.chart canvas' : view === '#/rules' ? 'table.rules tbody tr' : 'table.incidents tbody tr');
        expect(await phone.evaluate<number>('document.documentElement.scrollWidth'), view).toBeLessThanOrEqual(390);
      }
      await phone.goto(`${server.base}/?refresh=1#/incidents?status=all`);
      await phone.waitForSelector('table.incidents tbody tr');
      await phone.screenshot({ path: artifactPath('web-phone.png'), fullPage: true });
    } finally {
      await phone.close();
    }
  });

  it('ran without a script error or a refused resource', () => {
    expect(errors).toEqual([]);
  });
});
