// Status bar text and the Σ Δ read from the server's code lens titles.
import assert from "node:assert/strict";
import { test } from "node:test";

import { bundleDirectory, parseManifest } from "../src/model";
import { statusView, summariseLenses, type StatusInput } from "../src/status";

const TEST_MODEL = { name: "perfhint-e2e-tiny", version: "e3937ae66107", purpose: "test" };

function check(overrides: Partial<StatusInput>, expected: string): void {
  const input: StatusInput = { state: "running", enabled: true, model: TEST_MODEL, defaultModel: false, runtimeDevice: "cpu", targetGpu: "H100", ...overrides };
  assert.equal(statusView(input).text, expected);
}

const LENSES = [
  "perfhint: [TEST model] largest peak_memory ≈ 12 MiB in make_buffers · Σ Δ +3.1 MiB vs HEAD",
  "perfhint: [TEST model] largest gpu_latency ≈ 0.97 ms @H100 in add · Σ Δ −0.2 ms vs HEAD",
];

test("status: model, device, Σ Δ per unit", () => {
  check({ lenses: summariseLenses(LENSES) }, "perfhint: perfhint-e2e-tiny (test) · cpu · Σ Δ +3.1 MiB, −0.2 ms");
});

test("status: no Δ yet, calculating, hints off", () => {
  check({ lenses: summariseLenses(["perfhint: largest peak_memory ≈ 12 MiB in f"]) }, "perfhint: perfhint-e2e-tiny (test) · cpu");
  check({ lenses: summariseLenses(["perfhint: calculating… (2 of 3 regions)"]) }, "perfhint: perfhint-e2e-tiny (test) · cpu · …");
  check({ enabled: false, lenses: summariseLenses(LENSES) }, "perfhint: perfhint-e2e-tiny (test) · cpu · off");
});

test("status: the shipped model, and the states before the server runs", () => {
  check({ model: undefined, defaultModel: true, runtimeDevice: "gpu" }, "perfhint: default model · gpu");
  check({ model: undefined, defaultModel: false }, "perfhint: no model · cpu");
  check({ state: "setup" }, "$(pulse) perfhint: set up");
  check({ state: "installing" }, "$(sync~spin) perfhint: installing");
  check({ state: "failed" }, "$(error) perfhint");
  check({ state: "stopped" }, "$(pulse) perfhint: stopped");
});

test("status tooltip says what the numbers are", () => {
  const view = statusView({ state: "running", enabled: true, model: TEST_MODEL, defaultModel: false, runtimeDevice: "cpu", targetGpu: "H100", lenses: summariseLenses(LENSES) });
  assert.match(view.tooltip as string, /TEST model: random weights/);
  assert.match(view.tooltip as string, /latencies predicted for: H100/);
  assert.match(view.tooltip as string, /Σ Δ \+3\.1 MiB vs HEAD; −0\.2 ms vs HEAD/);
});

test("lens summary: failures and whole-file problems", () => {
  const summary = summariseLenses([
    "perfhint: model bundle not found at /x; set perfhint.bundlePath to a model bundle directory",
  ]);
  assert.equal(summary.problem, "perfhint: model bundle not found at /x; set perfhint.bundlePath to a model bundle directory");
  assert.equal(summariseLenses(["perfhint: prediction failed for 1 of 2 regions, see Output > perfhint"]).failed, true);
  assert.deepEqual(summariseLenses(["perfhint: largest peak_memory ≈ 1 MiB in failed_jobs · Σ Δ ±0 B vs saved"]).deltas, ["±0 B vs saved"]);
});

test("model: bundle directory follows the server's order, manifest read defensively", () => {
  assert.equal(bundleDirectory("/b", { PERFHINT_BUNDLE: "/env" }), "/b");
  assert.equal(bundleDirectory("", { PERFHINT_BUNDLE: "/env" }), "/env");
  assert.equal(bundleDirectory(undefined, {}), undefined);
  assert.deepEqual(parseManifest(JSON.stringify({ model: TEST_MODEL, metrics: [] })), TEST_MODEL);
  assert.equal(parseManifest("{not json"), undefined);
  assert.equal(parseManifest(JSON.stringify({ model: { version: "1" } })), undefined);
  assert.deepEqual(parseManifest(JSON.stringify({ model: { name: "m" } })), { name: "m", version: "", purpose: "user" });
});
