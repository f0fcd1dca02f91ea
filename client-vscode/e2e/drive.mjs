// Drives code-server with Playwright (playwright-core + Debian chromium) and asserts what a person
// would see: run by e2e/run.sh, which sets E2E_URL, E2E_WORKSPACE, E2E_OUT (screenshots) and PW_DIR
// (where playwright-core is installed). Prints PASS/FAIL per check and a closing "N passed, N failed".
//
// What is hard: the workbench is a single page whose state arrives asynchronously (activation, the
// setup notification, pip, the model's first run, refreshes), so every check polls with a deadline
// instead of sleeping, and a failed check saves a screenshot and the editor's text, then goes on:
// one run reports everything that is wrong.
import { createRequire } from "node:module";
import * as path from "node:path";

const require = createRequire(path.join(process.env.PW_DIR, "package.json"));
const { chromium } = require("playwright-core");

const URL_ = process.env.E2E_URL;
const WORKSPACE = process.env.E2E_WORKSPACE;
const OUT = process.env.E2E_OUT;
const SETUP_TIMEOUT_MS = 8 * 60_000; // venv + pip install from PyPI + the first model run
const HINT_TIMEOUT_MS = 3 * 60_000;

const UNIT = "(?:B|KiB|MiB|GiB|TiB|µs|ms|s)";
const MAGNITUDE = "\\d+(?:\\.\\d+)?(?:e[−+-]?\\d+)?";
const NUMBER = `[−-]?${MAGNITUDE}`;
const HINT = new RegExp(`≈\\??\\s*${NUMBER}\\s*${UNIT}(?![\\w])`);
const HINT_WITH_DELTA = new RegExp(`≈\\??\\s*${NUMBER}\\s*${UNIT}(?:\\s*@\\S+)?\\s+[+−]${MAGNITUDE}\\s*${UNIT}`);

let passed = 0;
let failed = 0;
const started = Date.now();

function log(message) {
  console.log(`drive [${Math.round((Date.now() - started) / 1000)}s]: ${message}`);
}

async function check(name, page, run) {
  try {
    const detail = await run();
    passed++;
    console.log(`PASS: ${name}${detail ? ` — ${detail}` : ""}`);
  } catch (error) {
    failed++;
    console.log(`FAIL: ${name} — ${String(error?.message ?? error).split("\n")[0]}`);
    const file = `fail-${passed + failed}.png`;
    await page.screenshot({ path: path.join(OUT, file) }).catch(() => undefined);
    console.log(`      screenshot ${file}; editor text:\n${(await editorLines(page).catch(() => [])).map((line) => `      | ${line}`).join("\n")}`);
  }
}

/** Poll `probe` until it returns a truthy value or the deadline passes. */
async function until(what, probe, timeoutMs, intervalMs = 1000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await probe().catch((error) => {
      last = error;
      return undefined;
    });
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

const clean = (text) => text.replace(/\u00a0/g, " ");

/** The visible lines of the active editor, inlay hints included (they are part of the line's text). */
async function editorLines(page) {
  const editor = page.locator(".editor-group-container.active .monaco-editor .view-lines").first();
  const lines = await editor.locator(".view-line").evaluateAll((nodes) =>
    nodes.map((node) => ({ top: parseFloat(node.style.top || "0"), text: node.innerText })).sort((a, b) => a.top - b.top).map((line) => line.text),
  );
  return lines.map(clean);
}

async function lineWith(page, fragment) {
  return (await editorLines(page)).find((line) => line.includes(fragment));
}

async function openFile(page, name) {
  await page.keyboard.press("Control+P");
  await page.waitForSelector(".quick-input-widget:visible input", { timeout: 30_000 });
  await page.keyboard.type(name, { delay: 20 });
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${name}"]`, { timeout: 30_000 });
  await page.keyboard.press("Enter");
  await until(`${name} to open`, async () => (await page.title()).includes(name), 30_000, 300);
  await page.keyboard.press("Control+Home");
}

async function runCommand(page, title) {
  await page.keyboard.press("F1");
  await page.waitForSelector(".quick-input-widget:visible input", { timeout: 30_000 });
  await page.keyboard.type(title, { delay: 10 });
  await page.waitForSelector(`.quick-input-list .monaco-list-row[aria-label*="${title}"]`, { timeout: 30_000 });
  await page.keyboard.press("Enter");
}

async function goToLine(page, line) {
  await page.keyboard.press("Control+G");
  await page.waitForSelector(".quick-input-widget:visible input", { timeout: 30_000 });
  await page.keyboard.type(String(line));
  await page.keyboard.press("Enter");
  await page.waitForSelector(".quick-input-widget", { state: "hidden", timeout: 10_000 });
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, name) });
  log(`screenshot ${name}`);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
try {
  await page.goto(`${URL_}/?folder=${encodeURIComponent(WORKSPACE)}`);
  await page.waitForSelector(".monaco-workbench", { timeout: 120_000 });
  log("workbench loaded");
  await openFile(page, "buffers.py");

  await check("the extension offers to set up its server, and Install builds it", page, async () => {
    // The offer is a toast; if it has gone (toasts hide when focus moves), it is in the notification list.
    const offer = await until("the setup offer", async () => {
      const toast = page.locator(".notification-toast", { hasText: "private environment" }).first();
      if (await toast.isVisible()) return toast;
      await runCommand(page, "Notifications: Show Notifications");
      const item = page.locator(".notifications-center .notification-list-item", { hasText: "private environment" }).first();
      return (await item.isVisible({ timeout: 2000 })) ? item : undefined;
    }, 120_000, 3000);
    const offerText = clean(await offer.locator(".notification-list-item-message").first().innerText()).trim();
    await shot(page, "0-setup-offer.png");
    await offer.getByRole("button", { name: "Install", exact: true }).click();
    log("clicked Install; waiting for pip and the first prediction");
    await until("the server to be installed", async () => (await page.locator(".notification-toast", { hasText: "installed in a private environment" }).count()) > 0 || HINT.test((await lineWith(page, "def make_buffers")) ?? ""), SETUP_TIMEOUT_MS, 2000);
    return offerText;
  });

  let before = "";
  await check("a hint with a unit appears on the Python function", page, async () => {
    before = await until("a hint on `def make_buffers`", async () => {
      const line = await lineWith(page, "def make_buffers");
      return line && HINT.test(line) && !line.includes("…") ? line : undefined;
    }, HINT_TIMEOUT_MS);
    await shot(page, "1-python-hints.png");
    return before.trim();
  });

  await check("the hover names the metric, the band and the model's purpose `test`", page, async () => {
    await goToLine(page, 7);
    await page.keyboard.press("Control+K");
    await page.keyboard.press("Control+I");
    const hover = page.locator(".monaco-hover:visible").first();
    await hover.waitFor({ timeout: 30_000 });
    const text = clean(await until("hover text", async () => {
      const value = await hover.innerText();
      return value.includes("purpose") ? value : undefined;
    }, 30_000, 500));
    await shot(page, "2-hover.png");
    for (const expected of ["purpose: test", "TEST model", "p10–p90", "peak_memory", "perfhint-e2e-tiny"]) {
      if (!text.includes(expected)) throw new Error(`hover lacks "${expected}": ${text.replace(/\n/g, " | ")}`);
    }
    await page.keyboard.press("Escape");
    return text.split("\n").filter((line) => line.includes("purpose") || line.includes("median")).join(" | ");
  });

  await check("the status bar shows the model and the device", page, async () => {
    const item = page.locator(".statusbar-item", { hasText: "perfhint:" }).first();
    const text = clean(await until("the perfhint status bar item", async () => {
      const value = await item.innerText();
      return value.includes("perfhint-e2e-tiny") ? value : undefined;
    }, 60_000));
    if (!text.includes("(test)") || !text.includes("cpu")) throw new Error(`status bar: ${text}`);
    return text.trim();
  });

  await check("the code lens shows the largest cost", page, async () => {
    const lens = await until("a perfhint code lens", async () => {
      const texts = await page.locator(".editor-group-container.active .codelens-decoration").allInnerTexts();
      return clean(texts.join(" ")).match(/perfhint: .*largest[^|]*/)?.[0];
    }, 60_000);
    return lens.trim();
  });

  await check("after an edit and a save the hint changes and shows a Δ", page, async () => {
    // The first statement of the body: inside the first 64 tokens the tiny test model reads.
    await goToLine(page, 7);
    await page.keyboard.press("End");
    await page.keyboard.press("Enter");
    await page.keyboard.type("rows = [[0] * n for _ in range(n)]", { delay: 10 });
    await page.keyboard.press("Control+S");
    const after = await until("a Δ on `def make_buffers`", async () => {
      const line = await lineWith(page, "def make_buffers");
      return line && HINT_WITH_DELTA.test(line) && !line.includes("…") ? line : undefined;
    }, HINT_TIMEOUT_MS);
    await shot(page, "3-after-save-delta.png");
    if (after === before) throw new Error("the hint did not change");
    return `${before.trim()}  →  ${after.trim()}`;
  });

  await check("the status bar shows the file's Σ Δ", page, async () => {
    const item = page.locator(".statusbar-item", { hasText: "perfhint:" }).first();
    const text = clean(await until("Σ Δ in the status bar", async () => {
      const value = await item.innerText();
      return value.includes("Σ Δ") && !value.includes("Σ Δ ±0") ? value : undefined;
    }, 60_000));
    await shot(page, "4-status-bar.png");
    return text.trim();
  });

  await check("compare file with HEAD opens the before/after/Δ table", page, async () => {
    await runCommand(page, "perfhint: Compare file with HEAD");
    // The table opens as a rendered Markdown preview (a webview: its text is in a frame).
    const table = await until("the compare table", async () => {
      for (const frame of page.frames()) {
        const text = await frame.evaluate(() => document.body?.innerText ?? "").catch(() => "");
        if (text.includes("before (HEAD)") && text.includes("make_buffers")) return clean(text);
      }
      return undefined;
    }, 120_000);
    await page.waitForTimeout(2000); // the webview paints after its text is there
    await shot(page, "5-compare.png");
    return table.split("\n").filter((line) => /make_buffers|Σ Δ/.test(line)).map((line) => line.replace(/\s+/g, " ").trim()).join(" / ");
  });

  await check("a hint with a unit appears on the Triton kernel", page, async () => {
    await openFile(page, "add_kernel.py");
    // The launcher's hint is also shown on the kernel's `def` line (regions.py hint_lines).
    const line = await until("a hint on `def add`", async () => {
      const text = await lineWith(page, "def add(");
      return text && HINT.test(text) && !text.includes("…") ? text : undefined;
    }, HINT_TIMEOUT_MS);
    const kernelLine = await lineWith(page, "def add_kernel");
    await shot(page, "6-triton-hints.png");
    if (!HINT.test(kernelLine ?? "")) throw new Error(`no hint on the kernel's def line: ${kernelLine}`);
    return `${line.trim()}  /  ${kernelLine?.trim() ?? ""}`;
  });

  await check("toggle hints turns them off and on again", page, async () => {
    const status = page.locator(".statusbar-item", { hasText: "perfhint:" }).first();
    await runCommand(page, "perfhint: Toggle hints");
    await until("the hints to go", async () => !HINT.test((await lineWith(page, "def add(")) ?? "≈ 1 B") && (await status.innerText()).includes("off"), 60_000);
    await shot(page, "7-toggled-off.png");
    await runCommand(page, "perfhint: Toggle hints");
    const line = await until("the hints to come back", async () => {
      const text = await lineWith(page, "def add(");
      return text && HINT.test(text) ? text : undefined;
    }, 60_000);
    return `off, then on: ${line.trim()}`;
  });
} catch (error) {
  failed++;
  console.log(`FAIL: the run stopped — ${String(error?.message ?? error).split("\n")[0]}`);
  await page.screenshot({ path: path.join(OUT, "fail-stopped.png") }).catch(() => undefined);
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
