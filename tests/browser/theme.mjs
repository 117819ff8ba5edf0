// The default blog theme in a real browser: a post, the index and the 404 page, on a phone and
// a desktop, in light and dark mode. It checks what a reader would notice — the page fits the
// screen, text is large enough and contrasted, the subscribe form is there, the stylesheet
// loads under the site's Content-Security-Policy — and leaves screenshots in
// target/browser/ for a human look.
//
// Usage: node theme.mjs path/to/stratus [path/to/chromium]

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [binary, browserPath = "/usr/bin/chromium"] = process.argv.slice(2);
if (!binary) {
  console.error("usage: node theme.mjs path/to/stratus [path/to/chromium]");
  process.exit(2);
}
const shots = resolve(import.meta.dirname, "../../target/browser");
mkdirSync(shots, { recursive: true });
const data = mkdtempSync(join(tmpdir(), "stratus-browser-"));
const stage = ["--stage", "test", "--data-dir", data];

const POST = `---
title: A post with everything a theme must carry
slug: everything
tags: [theme, browsers]
date: 2026-11-28
---
Paragraphs of ordinary prose come first, because that is most of what a reader sees. A
sufficiently long paragraph shows whether the measure stays comfortable on a wide screen.

## Code that is wider than a phone

\`\`\`rust
fn a_rather_long_function_name_that_does_not_fit_on_a_phone(argument: &str) -> Result<(), Error> { Ok(()) }
\`\`\`

| layer | work per read | notes |
|---|---|---|
| edge | a hash lookup | from memory |
| generator | nothing | pages are rendered when written |

An unbroken URL: https://example.com/a/very/long/path/that/would/overflow/a/narrow/screen/if/not/wrapped
`;

let server;
let failures = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures += 1;
};

function run(...args) {
  return execFileSync(binary, [...args, ...stage], { encoding: "utf8", env: { ...process.env, STRATUS_LOG__FILTER: "warn" } });
}

async function serve() {
  server = spawn(binary, ["serve", "--listen", "127.0.0.1:0", ...stage], {
    stdio: ["ignore", "pipe", "ignore"],
    env: { ...process.env, STRATUS_LOG__FORMAT: "json" },
  });
  for await (const line of createInterface({ input: server.stdout })) {
    const url = line.match(/(http:\/\/\S+)\/healthz/);
    if (url) return url[1];
  }
  throw new Error("stratus serve printed no URL");
}

/// WCAG relative luminance and contrast of two `rgb(…)` colours.
function contrast(a, b) {
  const luminance = (css) => {
    const [r, g, bl] = css.match(/[\d.]+/g).slice(0, 3).map(Number).map((v) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return { ratio: (light + 0.05) / (dark + 0.05), background: luminance(b) };
}

async function inspect(browser, base, path, viewport, colorScheme) {
  const name = `${path.replaceAll("/", "_") || "_"}-${viewport.width}-${colorScheme}`;
  const context = await browser.newContext({ viewport, colorScheme });
  const page = await context.newPage();
  const problems = [];
  page.on("console", (message) => {
    // Chromium reports the 404 page's own status as an error; that status is checked below.
    const ownStatus = message.location().url === `${base}${path}`;
    if (message.type() === "error" && !ownStatus) problems.push(message.text());
  });
  page.on("pageerror", (error) => problems.push(String(error)));
  page.on("requestfailed", (request) => problems.push(`failed: ${request.url()}`));
  page.on("response", (response) => {
    if (response.status() >= 400 && response.url() !== `${base}${path}`) {
      problems.push(`${response.status()}: ${response.url()}`);
    }
  });
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) =>
      console.error(`CSP violation: ${event.violatedDirective} ${event.blockedURI}`));
  });
  const response = await page.goto(`${base}${path}`, { waitUntil: "load" });
  const facts = await page.evaluate(() => {
    const body = getComputedStyle(document.body);
    const paragraph = document.querySelector("main p:not(.meta)") ?? document.querySelector("main");
    const email = document.querySelector("form.subscribe input[type=email]");
    const emailBox = email?.getBoundingClientRect();
    return {
      overflow: document.documentElement.scrollWidth - window.innerWidth,
      background: body.backgroundColor,
      color: getComputedStyle(paragraph).color,
      fontSize: parseFloat(getComputedStyle(paragraph).fontSize),
      mainWidth: document.querySelector("main").getBoundingClientRect().width,
      styled: [...document.styleSheets].some((sheet) => sheet.cssRules.length > 0),
      formVisible: Boolean(emailBox && emailBox.width > 0 && emailBox.height > 0),
      formAction: document.querySelector("form.subscribe")?.getAttribute("action"),
    };
  });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  await context.close();

  const what = `${path} at ${viewport.width}px, ${colorScheme}`;
  const { ratio, background } = contrast(facts.color, facts.background);
  check(response.status() === (path.startsWith("/no-such") ? 404 : 200), `${what}: status ${response.status()}`);
  check(problems.length === 0, `${what}: no console errors, CSP violations or failed loads ${problems.join("; ")}`);
  check(facts.styled, `${what}: the stylesheet applies`);
  check(facts.overflow <= 0, `${what}: nothing wider than the screen (overflow ${facts.overflow}px)`);
  check(facts.fontSize >= 16, `${what}: body text ${facts.fontSize}px`);
  check(ratio >= 7, `${what}: text contrast ${ratio.toFixed(1)}:1`);
  check(colorScheme === "dark" ? background < 0.1 : background > 0.8, `${what}: ${colorScheme} background`);
  check(facts.mainWidth <= 42 * 18 + 1, `${what}: line length bounded (${facts.mainWidth}px)`);
  check(facts.formVisible && facts.formAction === "/v1/subscribers", `${what}: subscribe form`);
}

try {
  writeFileSync(join(data, "everything.md"), POST);
  run("posts", "publish", join(data, "everything.md"));
  run("site", "rebuild");
  const base = await serve();
  const browser = await chromium.launch({
    executablePath: browserPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    for (const path of ["/posts/everything/", "/", "/no-such-page/"]) {
      for (const viewport of [{ width: 390, height: 844 }, { width: 1280, height: 800 }]) {
        for (const colorScheme of ["light", "dark"]) {
          await inspect(browser, base, path, viewport, colorScheme);
        }
      }
    }
  } finally {
    await browser.close();
  }
} catch (error) {
  console.error(error);
  failures += 1;
} finally {
  server?.kill("SIGTERM");
  rmSync(data, { recursive: true, force: true });
}
console.log(failures === 0 ? "theme: all checks passed" : `theme: ${failures} checks failed`);
process.exit(failures === 0 ? 0 : 1);
