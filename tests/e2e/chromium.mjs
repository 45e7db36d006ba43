// Headless Chromium for the browser tests: where it is, when its tests may be skipped, and how
// it is launched (playwright-core drives the system's Chromium; no browser is downloaded).
import fs from 'node:fs';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const HAVE_CHROMIUM = fs.existsSync(CHROMIUM);
/** In CI (CI=true) a missing piece is a failure, never a silent skip. */
export const IN_CI = /^(1|true)$/i.test(process.env.CI ?? '');

const NO_CHROMIUM = `no browser at ${CHROMIUM} (apt-get install -y chromium)`;

/**
 * The `skip` option of tests that need Chromium and whatever `missing` names (reasons, falsy
 * when that piece is there): the reasons, printed once as `# <what> skipped: …`, when something
 * is missing outside CI; otherwise false, so that in CI the tests run and fail.
 */
export function skipWithoutChromium(what, missing = []) {
  const reasons = [!HAVE_CHROMIUM && NO_CHROMIUM, ...missing].filter(Boolean);
  const skip = reasons.length && !IN_CI ? reasons.join('; ') : false;
  if (skip) console.log(`# ${what} skipped: ${skip}`);
  return skip;
}

/** Launches headless Chromium; without it, fails saying where it looked. */
export async function launchChromium() {
  if (!HAVE_CHROMIUM) throw new Error(`${NO_CHROMIUM}: install Chromium or set CHROMIUM_PATH (CI requires it)`);
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}
