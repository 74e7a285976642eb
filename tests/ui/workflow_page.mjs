// Opens a workflow page of the Temporal UI in headless Chromium and waits for a text to appear.
// Usage: node workflow_page.mjs URL TEXT SCREENSHOT.png   -> prints FOUND or NOT FOUND
import { chromium } from 'playwright-core';

const [url, expected, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
         '--no-first-run', '--disable-sync', '--disable-quic'],
});
try {
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  try {
    await page.getByText(expected).first().waitFor({ timeout: 45000 });
    console.log('FOUND');
  } catch {
    console.log('NOT FOUND');
  }
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
} finally {
  await browser.close();
}
